import { HttpClient } from '@angular/common/http';
import { HttpTestingController } from '@angular/common/http/testing';
import { TestBed } from '@angular/core/testing';
import { firstValueFrom } from 'rxjs';

import { withAllowedUrls } from './config';
import { session, settle, setUp, signIn, tokens } from '../testing/setup';

describe('tollgateInterceptor', () => {
  afterEach(() => TestBed.inject(HttpTestingController).verify());

  it('adds the bearer token to requests for the API origin only, by default', async () => {
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

  it('adds it to the URLs withAllowedUrls names too, and to no look-alike', async () => {
    const { auth, backend } = setUp([
      withAllowedUrls(['https://api.example.com/v1/', 'https://media.example.com', /^https:\/\/files\.example\.com\//]),
    ]);
    await signIn(auth, backend);
    const http = TestBed.inject(HttpClient);

    const urls = [
      'https://api.example.com/v1/orders',
      'https://media.example.com/a.png',
      'https://files.example.com/a.pdf',
      '/api/job-list',
      'https://api.example.com/v2/orders',
      'https://media.example.com.evil.example/a.png',
      'https://evil.example/?https://files.example.com/a.pdf',
    ];
    for (const url of urls) {
      http.get(url).subscribe();
    }
    const sent = urls.map((url) => backend.expectOne(url).request.headers.has('Authorization'));
    expect(sent).toEqual([true, true, true, true, false, false, false]);
  });


  it('skips sign-in, refresh and sign-out requests', async () => {
    const { auth, backend } = setUp();
    await signIn(auth, backend);

    void session().refreshAfter('access-1');
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
    expect(session().accessToken()).toBe('access-2');
  });

  it('signs out and goes to the login route when the refresh is refused (403)', async () => {
    const { auth, backend, router } = setUp();
    await signIn(auth, backend);
    const navigate = vi.spyOn(router, 'navigateByUrl').mockResolvedValue(true);
    const http = TestBed.inject(HttpClient);

    const request = firstValueFrom(http.get('/api/job-list'));
    backend.expectOne('/api/job-list').flush(null, { status: 401, statusText: 'Unauthorized' });
    await settle();
    backend.expectOne('/api/refresh-token').flush(null, { status: 403, statusText: 'Forbidden' });

    await expect(request).rejects.toMatchObject({ status: 403 });
    expect(auth.signedIn()).toBe(false);
    expect(navigate).toHaveBeenCalledWith('/login');
  });

  it('never signs out over a network error during the refresh', async () => {
    const { auth, backend, router } = setUp();
    await signIn(auth, backend);
    const navigate = vi.spyOn(router, 'navigateByUrl');
    const http = TestBed.inject(HttpClient);

    const request = firstValueFrom(http.get('/api/job-list'));
    backend.expectOne('/api/job-list').flush(null, { status: 401, statusText: 'Unauthorized' });
    await settle();
    backend.expectOne('/api/refresh-token').error(new ProgressEvent('error'));

    await expect(request).rejects.toMatchObject({ status: 0 });
    expect(auth.signedIn()).toBe(true);
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
    expect(auth.signedIn()).toBe(true);
  });

  it('waits for Retry-After on a 429 and replays the request once', async () => {
    const { auth, backend } = setUp();
    await signIn(auth, backend);
    const http = TestBed.inject(HttpClient);

    const request = firstValueFrom(http.get<string[]>('/api/job-list'));
    backend
      .expectOne('/api/job-list')
      .flush(null, { status: 429, statusText: 'Too Many Requests', headers: { 'Retry-After': '1' } });
    await settle();
    backend.expectNone('/api/job-list');
    await new Promise((resolve) => setTimeout(resolve, 1050));
    backend.expectOne('/api/job-list').flush(['job']);
    expect(await request).toEqual(['job']);
  });

  it('passes a 429 through when Retry-After is missing or too long', async () => {
    const { auth, backend } = setUp();
    await signIn(auth, backend);
    const http = TestBed.inject(HttpClient);

    for (const headers of [{ 'Retry-After': '3600' }, {} as Record<string, string>]) {
      const request = firstValueFrom(http.get('/api/job-list'));
      backend.expectOne('/api/job-list').flush(null, { status: 429, statusText: 'Too Many Requests', headers });
      await expect(request).rejects.toMatchObject({ status: 429 });
    }
  });

  it('replays after a 429 once only, and still refreshes when the replay meets a 401', async () => {
    const { auth, backend } = setUp();
    await signIn(auth, backend);
    const http = TestBed.inject(HttpClient);
    const tooMany = { status: 429, statusText: 'Too Many Requests', headers: { 'Retry-After': '0' } };

    const twice = firstValueFrom(http.get('/api/job-list'));
    backend.expectOne('/api/job-list').flush(null, tooMany);
    await new Promise((resolve) => setTimeout(resolve, 20));
    backend.expectOne('/api/job-list').flush(null, tooMany);
    await expect(twice).rejects.toMatchObject({ status: 429 });

    const expired = firstValueFrom(http.get<string[]>('/api/job-list'));
    backend.expectOne('/api/job-list').flush(null, tooMany);
    await new Promise((resolve) => setTimeout(resolve, 20));
    backend.expectOne('/api/job-list').flush(null, { status: 401, statusText: 'Unauthorized' });
    await settle();
    backend.expectOne('/api/refresh-token').flush(tokens('access-2'));
    await settle();
    const replayed = backend.expectOne('/api/job-list');
    expect(replayed.request.headers.get('Authorization')).toBe('Bearer access-2');
    replayed.flush(['job']);
    expect(await expired).toEqual(['job']);
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

describe('withAllowedUrls', () => {
  it('refuses URLs and expressions that could match elsewhere', () => {
    expect(() => withAllowedUrls([/files\.example\.com/])).toThrow();
    expect(() => withAllowedUrls([/^https:\/\/files\.example\.com\//g])).toThrow();
    expect(() => withAllowedUrls(['api.example.com'])).toThrow();
    expect(() => withAllowedUrls(['https://api.example.com/', /^https:\/\/files\.example\.com\//])).not.toThrow();
  });
});
