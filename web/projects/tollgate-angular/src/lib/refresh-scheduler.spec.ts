import { HttpTestingController } from '@angular/common/http/testing';
import { TestBed } from '@angular/core/testing';

import { withRefreshAhead } from './config';
import { session, settle, setUp, tokens, USER } from '../testing/setup';

describe('refresh ahead of expiry', () => {
  afterEach(() => TestBed.inject(HttpTestingController).verify());

  async function signedInExpiringIn(seconds: number, features = [withRefreshAhead({ marginMs: 60_000 })]) {
    vi.spyOn(document, 'visibilityState', 'get').mockReturnValue('visible');
    const { auth, backend } = setUp(features);
    const done = auth.login('user1', 'password');
    backend.expectOne('/api/login').flush({ user: USER, ...tokens('access-1', undefined, seconds) });
    await done;
    return { auth, backend };
  }

  it('refreshes when the browser comes back online with a token about to expire', async () => {
    const { backend } = await signedInExpiringIn(30);
    window.dispatchEvent(new Event('online'));
    backend.expectOne('/api/refresh-token').flush(tokens('access-2'));
    await settle();
    expect(session().accessToken()).toBe('access-2');
  });

  it('refreshes when a tab is shown again with a token about to expire', async () => {
    const { backend } = await signedInExpiringIn(30);
    document.dispatchEvent(new Event('visibilitychange'));
    backend.expectOne('/api/refresh-token').flush(tokens('access-2'));
    await settle();
  });

  it('leaves a token far from expiry alone, and does nothing without the feature', async () => {
    const { backend } = await signedInExpiringIn(900);
    window.dispatchEvent(new Event('online'));
    backend.expectNone('/api/refresh-token');
    TestBed.resetTestingModule();
    const without = await signedInExpiringIn(30, []);
    window.dispatchEvent(new Event('online'));
    without.backend.expectNone('/api/refresh-token');
  });
});
