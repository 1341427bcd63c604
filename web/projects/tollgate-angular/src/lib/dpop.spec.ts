import { HttpClient, HttpHeaders } from '@angular/common/http';
import { HttpTestingController, TestRequest } from '@angular/common/http/testing';
import { TestBed } from '@angular/core/testing';

import { withDpop } from './config';
import { DPOP_KEY_STORE, DpopKey } from './dpop';
import { session, settle, setUp, tokens, tokenWithClaims, USER } from '../testing/setup';

function decodePart(part: string): Record<string, unknown> {
  const binary = atob(part.replace(/-/g, '+').replace(/_/g, '/'));
  return JSON.parse(new TextDecoder().decode(Uint8Array.from(binary, (c) => c.charCodeAt(0))));
}

function bytes(part: string): Uint8Array<ArrayBuffer> {
  const binary = atob(part.replace(/-/g, '+').replace(/_/g, '/'));
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

/** The proof a request carried, with its signature checked against its own `jwk`. */
async function proofOf(request: TestRequest): Promise<{ header: Record<string, unknown>; claims: Record<string, unknown> }> {
  const proof = request.request.headers.get('DPoP');
  expect(proof).toBeTruthy();
  const [header, claims, signature] = proof!.split('.');
  const jwk = decodePart(header)['jwk'] as JsonWebKey;
  const key = await crypto.subtle.importKey('jwk', jwk, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['verify']);
  const valid = await crypto.subtle.verify(
    { name: 'ECDSA', hash: 'SHA-256' },
    key,
    bytes(signature),
    new TextEncoder().encode(`${header}.${claims}`),
  );
  expect(valid).toBe(true);
  return { header: decodePart(header), claims: decodePart(claims) };
}

async function sha256(text: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text)));
  return btoa(String.fromCharCode(...digest)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** The next request to `url`, once the proof for it has been signed. */
async function next(backend: HttpTestingController, url: string): Promise<TestRequest> {
  for (let i = 0; i < 50; i += 1) {
    const found = backend.match(url);
    if (found.length > 0) {
      return found[0];
    }
    await settle();
  }
  return backend.expectOne(url);
}

/** A key of this test's own: jsdom has no IndexedDB (Chromium runs the real one, e2e). */
const inMemoryKey = {
  provide: DPOP_KEY_STORE,
  useValue: () => crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify']),
};

function withDpopSetUp() {
  return setUp([withDpop()], { providers: [inMemoryKey] });
}

describe('withDpop', () => {
  afterEach(() => TestBed.inject(HttpTestingController).verify());

  it('signs a proof with one non-extractable ES256 key: header, claims and signature', async () => {
    withDpopSetUp();
    const dpop = TestBed.inject(DpopKey);
    const [one, two] = [
      (await dpop.proof('GET', 'https://api.example.com/api/job-list?page=2#top', 'access-1')).proof,
      (await dpop.proof('POST', '/api/login')).proof,
    ];
    const [header, claims] = one.split('.').slice(0, 2).map(decodePart);
    expect(header['typ']).toBe('dpop+jwt');
    expect(header['alg']).toBe('ES256');
    expect(Object.keys(header['jwk'] as object).sort()).toEqual(['crv', 'kty', 'x', 'y']);
    expect(claims['htm']).toBe('GET');
    expect(claims['htu']).toBe('https://api.example.com/api/job-list');
    expect(claims['ath']).toBe(await sha256('access-1'));
    expect(Math.abs((claims['iat'] as number) - Date.now() / 1000)).toBeLessThan(5);
    const [header2, claims2] = two.split('.').slice(0, 2).map(decodePart);
    expect(header2['jwk']).toEqual(header['jwk']);
    expect(claims2['jti']).not.toBe(claims['jti']);
    expect(claims2['htu']).toBe(`${location.origin}/api/login`);
    expect(claims2['ath']).toBeUndefined();
  });

  it('binds the sign-in with a proof and signs again once for a nonce challenge', async () => {
    const { auth, backend } = withDpopSetUp();
    const signedIn = auth.login('user1', 'password');
    const first = await next(backend, '/api/login');
    expect((await proofOf(first)).claims['nonce']).toBeUndefined();
    first.flush(
      { status: 400 },
      { status: 400, statusText: 'Bad Request', headers: new HttpHeaders({ 'DPoP-Nonce': 'n-1' }) },
    );
    const second = await next(backend, '/api/login');
    expect((await proofOf(second)).claims['nonce']).toBe('n-1');
    second.flush({ user: USER, ...tokens('access-1') });
    await signedIn;
    expect(auth.user()).toEqual(USER);
  });

  it('sends a bound token as DPoP with a proof of it, an unbound one as Bearer', async () => {
    const { auth, backend } = withDpopSetUp();
    const bound = tokenWithClaims({ sub: USER.id, cnf: { jkt: 'thumbprint' } });
    const signedIn = auth.login('user1', 'password');
    (await next(backend, '/api/login')).flush({ user: USER, ...tokens(bound), tokenType: 'DPoP' });
    await signedIn;
    const http = TestBed.inject(HttpClient);

    http.get('/api/job-list?page=1').subscribe();
    const jobs = await next(backend, '/api/job-list?page=1');
    expect(jobs.request.headers.get('Authorization')).toBe(`DPoP ${bound}`);
    const { claims } = await proofOf(jobs);
    expect(claims['htm']).toBe('GET');
    expect(claims['htu']).toBe(`${location.origin}/api/job-list`);
    expect(claims['ath']).toBe(await sha256(bound));
    // A nonce challenge: signed again, once, with the nonce; the token stays.
    jobs.flush(null, {
      status: 401,
      statusText: 'Unauthorized',
      headers: new HttpHeaders({ 'DPoP-Nonce': 'n-2', 'WWW-Authenticate': 'DPoP error="use_dpop_nonce"' }),
    });
    const again = await next(backend, '/api/job-list?page=1');
    expect(again.request.headers.get('Authorization')).toBe(`DPoP ${bound}`);
    expect((await proofOf(again)).claims['nonce']).toBe('n-2');
    again.flush([]);
  });

  it('sends unbound tokens as Bearer without a proof', async () => {
    const { auth, backend } = withDpopSetUp();
    const signedIn = auth.login('user1', 'password');
    (await next(backend, '/api/login')).flush({ user: USER, ...tokens('access-1') });
    await signedIn;
    TestBed.inject(HttpClient).get('/api/job-list').subscribe();
    const jobs = await next(backend, '/api/job-list');
    expect(jobs.request.headers.get('Authorization')).toBe('Bearer access-1');
    expect(jobs.request.headers.has('DPoP')).toBe(false);
    jobs.flush([]);
  });

  it('signs refreshes too, and answers a nonce challenge there once without signing out', async () => {
    const { auth, backend } = withDpopSetUp();
    const bound = tokenWithClaims({ sub: USER.id, cnf: { jkt: 'thumbprint' } });
    const signedIn = auth.login('user1', 'password');
    (await next(backend, '/api/login')).flush({ user: USER, ...tokens(bound), tokenType: 'DPoP' });
    await signedIn;

    const refreshed = session().refreshAfter(bound);
    const first = await next(backend, '/api/refresh-token');
    expect((await proofOf(first)).claims['htu']).toBe(`${location.origin}/api/refresh-token`);
    const challenge = { status: 400, statusText: 'Bad Request', headers: new HttpHeaders({ 'DPoP-Nonce': 'n-3' }) };
    first.flush({ status: 400 }, challenge);
    const second = await next(backend, '/api/refresh-token');
    expect((await proofOf(second)).claims['nonce']).toBe('n-3');
    // The same nonce again: not signed a third time, and the session is kept.
    second.flush({ status: 400 }, challenge);
    await expect(refreshed).rejects.toMatchObject({ status: 400 });
    expect(auth.user()).toEqual(USER);
  });

  it('retries each of several requests challenged at once', async () => {
    const { auth, backend } = withDpopSetUp();
    const bound = tokenWithClaims({ sub: USER.id, cnf: { jkt: 'thumbprint' } });
    const signedIn = auth.login('user1', 'password');
    (await next(backend, '/api/login')).flush({ user: USER, ...tokens(bound), tokenType: 'DPoP' });
    await signedIn;
    const http = TestBed.inject(HttpClient);
    http.get('/api/job-list').subscribe();
    http.get('/api/sessions').subscribe();
    const challenge = {
      status: 401,
      statusText: 'Unauthorized',
      headers: new HttpHeaders({ 'DPoP-Nonce': 'n-4', 'WWW-Authenticate': 'DPoP error="use_dpop_nonce"' }),
    };
    (await next(backend, '/api/job-list')).flush(null, challenge);
    (await next(backend, '/api/sessions')).flush(null, challenge);
    // Both signed again with the nonce; no refresh.
    for (const url of ['/api/job-list', '/api/sessions']) {
      const again = await next(backend, url);
      expect((await proofOf(again)).claims['nonce']).toBe('n-4');
      again.flush([]);
    }
    backend.expectNone('/api/refresh-token');
  });

  it('binds nothing where no key can be kept', async () => {
    const { auth, backend } = setUp([withDpop()], {
      providers: [{ provide: DPOP_KEY_STORE, useValue: () => Promise.resolve(null) }],
    });
    const signedIn = auth.login('user1', 'password');
    const login = await next(backend, '/api/login');
    expect(login.request.headers.has('DPoP')).toBe(false);
    login.flush({ user: USER, ...tokens('access-1') });
    await signedIn;
  });
});
