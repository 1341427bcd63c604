import { HttpTestingController } from '@angular/common/http/testing';
import { TestBed } from '@angular/core/testing';

import { TollgateDevices } from './tollgate-devices';
import { describeUserAgent } from './user-agent';
import { setUp, settle, signIn } from '../testing/setup';

const SESSIONS = [
  { id: 's1', createdAt: '2026-11-01T10:00:00Z', lastUsedAt: '2026-11-29T10:00:00Z', expiresAt: '2026-12-29T10:00:00Z',
    userAgent: 'Mozilla/5.0 (X11; Linux x86_64) Chrome/156.0 Safari/537.36', ip: '192.0.2.1', current: true },
  { id: 's2', createdAt: '2026-11-02T10:00:00Z', lastUsedAt: '2026-11-28T10:00:00Z', expiresAt: '2026-12-28T10:00:00Z',
    userAgent: 'curl/8.5.0', ip: null, current: false },
];

describe('TollgateDevices', () => {
  afterEach(() => TestBed.inject(HttpTestingController).verify());

  it('lists the devices and revokes one', async () => {
    const { auth, backend } = setUp();
    await signIn(auth, backend);
    const fixture = TestBed.createComponent(TollgateDevices);
    fixture.detectChanges();
    backend.expectOne('/api/sessions').flush(SESSIONS);
    await settle();
    await fixture.whenStable();
    const element = fixture.nativeElement as HTMLElement;
    const devices = () => [...element.querySelectorAll('[data-testid=device]')].map((li) => li.textContent ?? '');
    expect(devices()).toHaveLength(2);
    expect(devices()[0]).toContain('Chrome on Linux');
    expect(devices()[0]).toContain('this device');

    element.querySelector<HTMLButtonElement>('[data-testid=device] button')?.click();
    const revoke = backend.expectOne('/api/sessions/s2');
    expect(revoke.request.method).toBe('DELETE');
    revoke.flush(null, { status: 204, statusText: 'No Content' });
    await settle();
    await fixture.whenStable();
    expect(devices()).toHaveLength(1);
  });
});

describe('describeUserAgent', () => {
  it.each([
    ['Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0 Safari/537.36', 'Chrome on Linux'],
    ['Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:140.0) Gecko/20100101 Firefox/140.0', 'Firefox on Windows'],
    ['Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 Version/18.0 Safari/604.1', 'Safari on iOS'],
    ['Mozilla/5.0 (Windows NT 10.0) AppleWebKit/537.36 Chrome/140.0 Safari/537.36 Edg/140.0', 'Edge on Windows'],
    ['curl/8.5.0', 'curl'],
  ])('names %s', (userAgent, expected) => {
    expect(describeUserAgent(userAgent)).toBe(expected);
  });

  it('copes with no user agent', () => {
    expect(describeUserAgent(null)).toBe('Unknown device');
  });
});
