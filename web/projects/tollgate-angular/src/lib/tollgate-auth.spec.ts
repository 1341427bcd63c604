import { HttpTestingController } from '@angular/common/http/testing';
import { TestBed } from '@angular/core/testing';

import { withLocalStorageTransport } from './config';
import { TollgateEvent } from './models';
import { session, settle, setUp, signIn, tokens, tokenWithClaims, USER } from '../testing/setup';

describe('TollgateAuth', () => {
  afterEach(() => TestBed.inject(HttpTestingController).verify());

  it('signs in with the cookie transport: a stable fingerprint, no tokens in storage', async () => {
    const { auth, backend } = setUp();
    const events: TollgateEvent[] = [];
    auth.events.subscribe((event) => events.push(event));
    const done = auth.login('user1', 'password');
    const login = backend.expectOne('/api/login');
    expect(login.request.body).toMatchObject({ username: 'user1', password: 'password', useCookie: true });
    const fingerprint = login.request.body.fingerprint;
    expect(fingerprint).toMatch(/^[0-9a-f-]{36}$/);
    login.flush({ user: USER, ...tokens('access-1') });
    await done;

    expect(auth.user()).toEqual(USER);
    expect(auth.signedIn()).toBe(true);
    expect(session().accessToken()).toBe('access-1');
    expect(auth.expiresAt()).toBeGreaterThan(Date.now() + 800_000);
    expect(localStorage.getItem('tollgate.accessToken')).toBeNull();
    expect(localStorage.getItem('tollgate.refreshToken')).toBeNull();

    void session().refreshAfter('access-1');
    const refresh = backend.expectOne('/api/refresh-token');
    expect(refresh.request.body).toEqual({ refreshToken: undefined, fingerprint });
    refresh.flush(tokens('access-2'));
    await settle();
    expect(session().accessToken()).toBe('access-2');
    expect(events.map((event) => event.type)).toEqual(['signed-in', 'refreshed']);
  });

  it('keeps both tokens in localStorage with the localStorage transport', async () => {
    const { auth, backend } = setUp([withLocalStorageTransport()]);
    await signIn(auth, backend, 'access-1', 'refresh-1');
    expect(localStorage.getItem('tollgate.accessToken')).toBe('access-1');
    expect(localStorage.getItem('tollgate.refreshToken')).toBe('refresh-1');

    void session().refreshAfter('access-1');
    const refresh = backend.expectOne('/api/refresh-token');
    expect(refresh.request.body.refreshToken).toBe('refresh-1');
    refresh.flush(tokens('access-2', 'refresh-2'));
    await settle();
    expect(localStorage.getItem('tollgate.refreshToken')).toBe('refresh-2');

    const done = auth.logout();
    const logout = backend.expectOne('/api/logout');
    expect(logout.request.body).toEqual({ refreshToken: 'refresh-2' });
    logout.flush(null, { status: 204, statusText: 'No Content' });
    await done;
    expect(auth.signedIn()).toBe(false);
    expect(localStorage.getItem('tollgate.accessToken')).toBeNull();
  });

  it('runs one refresh for concurrent callers', async () => {
    const { auth, backend } = setUp();
    await signIn(auth, backend);
    const first = session().refreshAfter('access-1');
    const second = session().refreshAfter('access-1');
    backend.expectOne('/api/refresh-token').flush(tokens('access-2'));
    expect(await first).toBe('access-2');
    expect(await second).toBe('access-2');
    // A caller whose token was already replaced gets the new one without a request.
    expect(await session().refreshAfter('access-1')).toBe('access-2');
  });

  it('restores a stored session on reload (localStorage transport)', async () => {
    localStorage.clear();
    localStorage.setItem('tollgate.accessToken', 'stored-access');
    localStorage.setItem('tollgate.refreshToken', 'stored-refresh');
    localStorage.setItem('tollgate.expiresAt', String(Date.now() + 60_000));
    const { auth, backend } = setUp([withLocalStorageTransport()], { keepStorage: true });
    const done = session().restore();
    const me = backend.expectOne('/api/current-user');
    expect(me.request.headers.get('Authorization')).toBe('Bearer stored-access');
    me.flush(USER);
    await done;
    expect(auth.signedIn()).toBe(true);
  });

  it('restores a cookie session by refreshing first', async () => {
    localStorage.clear();
    localStorage.setItem('tollgate.signedIn', '1');
    const { auth, backend } = setUp([], { keepStorage: true });
    const done = session().restore();
    backend.expectOne('/api/refresh-token').flush(tokens('access-9'));
    await settle();
    const me = backend.expectOne('/api/current-user');
    expect(me.request.headers.get('Authorization')).toBe('Bearer access-9');
    me.flush(USER);
    await done;
    expect(auth.user()).toEqual(USER);
  });

  it('says so when it restores a session on load', async () => {
    localStorage.clear();
    localStorage.setItem('tollgate.signedIn', '1');
    const { auth, backend } = setUp([], { keepStorage: true });
    const events: TollgateEvent[] = [];
    auth.events.subscribe((event) => events.push(event));
    const done = session().restore();
    backend.expectOne('/api/refresh-token').flush(tokens('access-9'));
    await settle();
    backend.expectOne('/api/current-user').flush(USER);
    await done;
    expect(events.map((event) => event.type)).toEqual(['refreshed', 'signed-in']);
  });

  it('signs out here at once, before the server answers', async () => {
    const { auth, backend } = setUp();
    await signIn(auth, backend);
    const done = auth.logout();
    expect(auth.signedIn()).toBe(false);
    backend.expectOne('/api/logout').error(new ProgressEvent('error'));
    await expect(done).rejects.toMatchObject({ status: 0 });
    expect(auth.signedIn()).toBe(false);
  });

  it('does not call the server on load when nobody has signed in', async () => {
    const { auth, backend } = setUp();
    await session().restore();
    backend.expectNone('/api/refresh-token');
    expect(auth.signedIn()).toBe(false);
  });

  it('keeps a stored session through an outage on load', async () => {
    localStorage.clear();
    localStorage.setItem('tollgate.accessToken', 'expired-access');
    localStorage.setItem('tollgate.refreshToken', 'stored-refresh');
    localStorage.setItem('tollgate.expiresAt', String(Date.now() - 1000));
    const { auth, backend } = setUp([withLocalStorageTransport()], { keepStorage: true });
    const done = session().restore();
    backend.expectOne('/api/refresh-token').error(new ProgressEvent('error'));
    await done;
    expect(auth.signedIn()).toBe(false);
    expect(localStorage.getItem('tollgate.refreshToken')).toBe('stored-refresh');
  });

  it('tells the other tabs when it signs out, and why', async () => {
    const { auth, backend } = setUp();
    await signIn(auth, backend);
    const otherTab = new BroadcastChannel('tollgate-auth');
    const received = new Promise((resolve) => otherTab.addEventListener('message', (e) => resolve(e.data)));
    const done = auth.logout();
    backend.expectOne('/api/logout').flush(null, { status: 204, statusText: 'No Content' });
    await done;
    expect(await received).toEqual({ type: 'logout', reason: 'logout' });
    otherTab.close();
  });

  it('signs out when another tab says so, with its reason', async () => {
    const { auth, backend } = setUp();
    await signIn(auth, backend);
    const events: TollgateEvent[] = [];
    auth.events.subscribe((event) => events.push(event));
    const otherTab = new BroadcastChannel('tollgate-auth');
    otherTab.postMessage({ type: 'logout', reason: 'idle' });
    await vi.waitFor(() => expect(auth.signedIn()).toBe(false));
    expect(events).toEqual([{ type: 'signed-out', reason: 'idle' }]);
    otherTab.close();
  });

  it('reads the roles from the access token', async () => {
    const { auth, backend } = setUp();
    await signIn(auth, backend, tokenWithClaims({ sub: USER.id, roles: ['admin', 'auditor'] }));
    expect(auth.roles()).toEqual(['admin', 'auditor']);
    expect(auth.hasRole('admin')).toBe(true);
    expect(auth.hasRole('owner')).toBe(false);
  });
});
