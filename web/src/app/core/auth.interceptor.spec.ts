import { HttpClient } from '@angular/common/http';
import { HttpTestingController as HttpTestingControllerToken } from '@angular/common/http/testing';
import { TestBed } from '@angular/core/testing';
import { firstValueFrom } from 'rxjs';

import { setUp, settle, signIn, tokens } from './testing';

describe('authInterceptor', () => {
  afterEach(() => TestBed.inject(HttpTestingControllerToken).verify());

  it('adds the bearer token to requests for the API origin only', async () => {
    const { auth, backend } = setUp();
    await signIn(auth, backend);
    const http = TestBed.inject(HttpClient);

    http.get('/api/job-list').subscribe();
    http.get(`${location.origin}/api/sessions`).subscribe();
    http.get('https://elsewhere.example/api/job-list').subscribe();
    http.get('/assets/data.json').subscribe();

    expect(backend.expectOne('/api/job-list').request.headers.get('Authorization')).toBe('Bearer access-1');
    expect(backend.expectOne(`${location.origin}/api/sessions`).request.headers.get('Authorization')).toBe(
      'Bearer access-1',
    );
    expect(backend.expectOne('https://elsewhere.example/api/job-list').request.headers.has('Authorization')).toBe(false);
    expect(backend.expectOne('/assets/data.json').request.headers.has('Authorization')).toBe(false);
  });

  it('skips sign-in, refresh and sign-out requests', async () => {
    const { auth, backend } = setUp();
    await signIn(auth, backend);

    void auth.refresh();
    const refresh = backend.expectOne('/api/refresh-token');
    expect(refresh.request.headers.has('Authorization')).toBe(false);
    expect(refresh.request.withCredentials).toBe(true);
    refresh.flush(tokens('access-2'));
    await settle();

    void auth.logout();
    const logout = backend.expectOne('/api/logout');
    expect(logout.request.headers.has('Authorization')).toBe(false);
    logout.flush(null, { status: 204, statusText: 'No Content' });
  });

  it('refreshes once for concurrent 401s and replays every request with the new token', async () => {
    const { auth, backend } = setUp();
    await signIn(auth, backend);
    const http = TestBed.inject(HttpClient);

    const jobs = firstValueFrom(http.get<string[]>('/api/job-list'));
    const sessions = firstValueFrom(http.get<string[]>('/api/sessions'));
    backend.expectOne('/api/job-list').flush(null, { status: 401, statusText: 'Unauthorized' });
    backend.expectOne('/api/sessions').flush(null, { status: 401, statusText: 'Unauthorized' });
    await settle();

    const refreshes = backend.match('/api/refresh-token');
    expect(refreshes.length).toBe(1);
    refreshes[0].flush(tokens('access-2'));
    await settle();

    const replayedJobs = backend.expectOne('/api/job-list');
    const replayedSessions = backend.expectOne('/api/sessions');
    expect(replayedJobs.request.headers.get('Authorization')).toBe('Bearer access-2');
    expect(replayedSessions.request.headers.get('Authorization')).toBe('Bearer access-2');
    replayedJobs.flush(['job']);
    replayedSessions.flush(['session']);
    expect(await jobs).toEqual(['job']);
    expect(await sessions).toEqual(['session']);
    expect(auth.accessToken()).toBe('access-2');
  });

  it('signs out and goes to /login when the refresh is refused (403)', async () => {
    const { auth, backend, router } = setUp();
    await signIn(auth, backend);
    const navigate = vi.spyOn(router, 'navigate').mockResolvedValue(true);
    const http = TestBed.inject(HttpClient);

    const request = firstValueFrom(http.get('/api/job-list'));
    backend.expectOne('/api/job-list').flush(null, { status: 401, statusText: 'Unauthorized' });
    await settle();
    backend.expectOne('/api/refresh-token').flush(null, { status: 403, statusText: 'Forbidden' });

    await expect(request).rejects.toMatchObject({ status: 403 });
    expect(auth.isAuthenticated()).toBe(false);
    expect(navigate).toHaveBeenCalledWith(['/login']);
  });

  it('never signs out over a network error during the refresh', async () => {
    const { auth, backend, router } = setUp();
    await signIn(auth, backend);
    const navigate = vi.spyOn(router, 'navigate');
    const http = TestBed.inject(HttpClient);

    const request = firstValueFrom(http.get('/api/job-list'));
    backend.expectOne('/api/job-list').flush(null, { status: 401, statusText: 'Unauthorized' });
    await settle();
    backend.expectOne('/api/refresh-token').error(new ProgressEvent('error'));

    await expect(request).rejects.toMatchObject({ status: 0 });
    expect(auth.isAuthenticated()).toBe(true);
    expect(navigate).not.toHaveBeenCalled();
  });

  it('passes 5xx answers through without refreshing or signing out', async () => {
    const { auth, backend } = setUp();
    await signIn(auth, backend);
    const http = TestBed.inject(HttpClient);

    const request = firstValueFrom(http.get('/api/job-list'));
    backend.expectOne('/api/job-list').flush(null, { status: 503, statusText: 'Service Unavailable' });

    await expect(request).rejects.toMatchObject({ status: 503 });
    backend.expectNone('/api/refresh-token');
    expect(auth.isAuthenticated()).toBe(true);
  });

  it('does not refresh when no token was sent', async () => {
    const { backend } = setUp();
    const http = TestBed.inject(HttpClient);

    const request = firstValueFrom(http.get('/api/current-user'));
    const sent = backend.expectOne('/api/current-user');
    expect(sent.request.headers.has('Authorization')).toBe(false);
    sent.flush(null, { status: 401, statusText: 'Unauthorized' });

    await expect(request).rejects.toMatchObject({ status: 401 });
    backend.expectNone('/api/refresh-token');
  });
});
