import { HttpTestingController } from '@angular/common/http/testing';
import { TestBed } from '@angular/core/testing';

import { withIdleTimeout } from './config';
import { TollgateEvent } from './models';
import { TollgateIdle } from './tollgate-idle';
import { settle, setUp, signIn } from '../testing/setup';

describe('TollgateIdle', () => {
  afterEach(() => vi.useRealTimers());

  async function signedInIdle() {
    const { auth, backend } = setUp([withIdleTimeout({ idle: 10_000, warning: 4_000 })]);
    await signIn(auth, backend);
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'Date'] });
    const idle = TestBed.inject(TollgateIdle);
    idle.start();
    return { auth, backend, idle };
  }

  it('warns before the timeout, then signs out for inactivity', async () => {
    const { auth, backend, idle } = await signedInIdle();
    const events: TollgateEvent[] = [];
    auth.events.subscribe((event) => events.push(event));
    vi.advanceTimersByTime(5_000);
    expect(idle.warning()).toBe(false);
    vi.advanceTimersByTime(2_000);
    expect(idle.warning()).toBe(true);
    expect(idle.secondsLeft()).toBe(3);
    vi.advanceTimersByTime(3_000);
    vi.useRealTimers();
    backend.expectOne('/api/logout').flush(null, { status: 204, statusText: 'No Content' });
    await vi.waitFor(() => expect(auth.signedIn()).toBe(false));
    expect(events).toEqual([{ type: 'signed-out', reason: 'idle' }]);
  });

  it('is dismissed by staying, and by activity in any tab', async () => {
    const { auth, backend, idle } = await signedInIdle();
    vi.advanceTimersByTime(7_000);
    expect(idle.warning()).toBe(true);
    idle.stay();
    expect(idle.warning()).toBe(false);
    vi.advanceTimersByTime(7_000);
    expect(idle.warning()).toBe(true);
    // Another tab records activity in the shared storage.
    localStorage.setItem('tollgate.lastActivity', String(Date.now()));
    vi.advanceTimersByTime(1_000);
    expect(idle.warning()).toBe(false);
    expect(auth.signedIn()).toBe(true);
    backend.expectNone('/api/logout');
  });

  it('sends one sign-out, not one a second while the server is slow to answer', async () => {
    const { backend } = await signedInIdle();
    vi.advanceTimersByTime(13_000);
    vi.useRealTimers();
    await settle();
    expect(backend.match('/api/logout')).toHaveLength(1);
  });

  it('counts a sign-in as activity, however long ago the last was', async () => {
    localStorage.clear();
    localStorage.setItem('tollgate.lastActivity', String(Date.now() - 3_600_000));
    const { auth, backend } = setUp([withIdleTimeout({ idle: 10_000, warning: 4_000 })], { keepStorage: true });
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'Date'] });
    const idle = TestBed.inject(TollgateIdle);
    idle.start();
    vi.useRealTimers();
    await signIn(auth, backend);
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'Date'] });
    vi.advanceTimersByTime(2_000);
    expect(auth.signedIn()).toBe(true);
    expect(idle.warning()).toBe(false);
    backend.expectNone('/api/logout');
  });

  it('counts activity in this tab', async () => {
    const { auth, idle } = await signedInIdle();
    for (let second = 0; second < 30; second++) {
      vi.advanceTimersByTime(1_000);
      window.dispatchEvent(new Event('keydown'));
    }
    expect(idle.warning()).toBe(false);
    expect(auth.signedIn()).toBe(true);
    TestBed.inject(HttpTestingController).expectNone('/api/logout');
  });
});
