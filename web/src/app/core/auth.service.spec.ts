import { TestBed } from '@angular/core/testing';
import { HttpTestingController } from '@angular/common/http/testing';

import { AuthService } from './auth.service';
import { setUp, settle, signIn, tokens, USER } from './testing';

describe('AuthService', () => {
  afterEach(() => TestBed.inject(HttpTestingController).verify());

  it('signs in with the cookie transport: a stable fingerprint, no tokens in storage', async () => {
    const { auth, backend } = setUp();
    const done = auth.login('user1', 'password');
    const login = backend.expectOne('/api/login');
    expect(login.request.body).toMatchObject({ username: 'user1', password: 'password', useCookie: true });
    const fingerprint = login.request.body.fingerprint;
    expect(fingerprint).toMatch(/^[0-9a-f-]{36}$/);
    login.flush({ user: USER, ...tokens('access-1') });
    await done;

    expect(auth.user()).toEqual(USER);
    expect(auth.accessToken()).toBe('access-1');
    expect(localStorage.getItem('tollgate.accessToken')).toBeNull();
    expect(localStorage.getItem('tollgate.refreshToken')).toBeNull();

    void auth.refresh();
    const refresh = backend.expectOne('/api/refresh-token');
    expect(refresh.request.body).toEqual({ refreshToken: undefined, fingerprint });
    refresh.flush(tokens('access-2'));
    await settle();
    expect(auth.accessToken()).toBe('access-2');
  });

  it('keeps both tokens in localStorage with the localStorage transport', async () => {
    const { auth, backend } = setUp({ transport: 'localStorage' });
    await signIn(auth, backend, 'access-1', 'refresh-1');
    expect(localStorage.getItem('tollgate.accessToken')).toBe('access-1');
    expect(localStorage.getItem('tollgate.refreshToken')).toBe('refresh-1');

    void auth.refresh();
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
    expect(auth.isAuthenticated()).toBe(false);
    expect(localStorage.getItem('tollgate.accessToken')).toBeNull();
  });

  it('runs one refresh for concurrent callers', async () => {
    const { auth, backend } = setUp();
    await signIn(auth, backend);
    const first = auth.refreshAccessToken('access-1');
    const second = auth.refreshAccessToken('access-1');
    backend.expectOne('/api/refresh-token').flush(tokens('access-2'));
    expect(await first).toBe('access-2');
    expect(await second).toBe('access-2');
    // A caller whose token was already replaced gets the new one without a request.
    expect(await auth.refreshAccessToken('access-1')).toBe('access-2');
  });

  it('restores a stored session on reload (localStorage transport)', async () => {
    localStorage.setItem('tollgate.accessToken', 'stored-access');
    localStorage.setItem('tollgate.refreshToken', 'stored-refresh');
    localStorage.setItem('tollgate.expiresAt', String(Date.now() + 60_000));
    const { auth, backend } = setUpKeepingStorage({ transport: 'localStorage' });
    const done = auth.restore();
    const me = backend.expectOne('/api/current-user');
    expect(me.request.headers.get('Authorization')).toBe('Bearer stored-access');
    me.flush(USER);
    await done;
    expect(auth.isAuthenticated()).toBe(true);
  });

  it('restores a cookie session by refreshing first', async () => {
    localStorage.setItem('tollgate.signedIn', '1');
    const { auth, backend } = setUpKeepingStorage();
    const done = auth.restore();
    backend.expectOne('/api/refresh-token').flush(tokens('access-9'));
    await settle();
    const me = backend.expectOne('/api/current-user');
    expect(me.request.headers.get('Authorization')).toBe('Bearer access-9');
    me.flush(USER);
    await done;
    expect(auth.user()).toEqual(USER);
  });

  it('does not call the server on load when nobody has signed in', async () => {
    const { auth, backend } = setUp();
    await auth.restore();
    backend.expectNone('/api/refresh-token');
    expect(auth.isAuthenticated()).toBe(false);
  });

  it('keeps a stored session through an outage on load', async () => {
    localStorage.setItem('tollgate.accessToken', 'expired-access');
    localStorage.setItem('tollgate.refreshToken', 'stored-refresh');
    localStorage.setItem('tollgate.expiresAt', String(Date.now() - 1000));
    const { auth, backend } = setUpKeepingStorage({ transport: 'localStorage' });
    const done = auth.restore();
    backend.expectOne('/api/refresh-token').error(new ProgressEvent('error'));
    await done;
    expect(auth.isAuthenticated()).toBe(false);
    expect(localStorage.getItem('tollgate.refreshToken')).toBe('stored-refresh');
  });

  it('tells the other tabs when it signs out', async () => {
    const { auth, backend } = setUp();
    await signIn(auth, backend);
    const otherTab = new BroadcastChannel('tollgate-auth');
    const received = new Promise((resolve) => otherTab.addEventListener('message', (e) => resolve(e.data)));
    const done = auth.logout();
    backend.expectOne('/api/logout').flush(null, { status: 204, statusText: 'No Content' });
    await done;
    expect(await received).toEqual({ type: 'logout' });
    otherTab.close();
  });

  it('signs out when another tab says so', async () => {
    const { auth, backend } = setUp();
    await signIn(auth, backend);
    const otherTab = new BroadcastChannel('tollgate-auth');
    otherTab.postMessage({ type: 'logout' });
    await vi.waitFor(() => expect(auth.isAuthenticated()).toBe(false));
    otherTab.close();
  });
});

/** `setUp` clears storage; these tests prepare it first. */
function setUpKeepingStorage(config = {}): { auth: AuthService; backend: HttpTestingController } {
  const saved = Object.entries(localStorage);
  const result = setUp(config);
  for (const [key, value] of saved) {
    localStorage.setItem(key, value);
  }
  return result;
}
