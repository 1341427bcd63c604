// DPoP end to end: the demo client (withDpop) against a real `tollgate demo` in Chromium. The
// session is bound to a key the browser keeps in IndexedDB and cannot export; tokens taken out
// of the browser are useless without it.
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, randomUUID, sign } from 'node:crypto';
import { after, afterEach, before, describe, it } from 'node:test';

import { ACCESS_TTL, launchBrowser, newDevice, signIn, sleep, startServer } from './support.mjs';

/** The thumbprint an access token is bound to. */
function boundKey(accessToken) {
  const payload = JSON.parse(Buffer.from(accessToken.split('.')[1], 'base64url').toString());
  return payload.cnf?.jkt;
}

/** A proof signed by a key of our own (a thief's), for `method` on `url`. */
function thiefProof(method, url, accessToken) {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const { kty, crv, x, y } = publicKey.export({ format: 'jwk' });
  const part = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const claims = { jti: randomUUID(), htm: method, htu: url, iat: Math.floor(Date.now() / 1000) };
  if (accessToken) claims.ath = createHash('sha256').update(accessToken).digest('base64url');
  const input = `${part({ typ: 'dpop+jwt', alg: 'ES256', jwk: { kty, crv, x, y } })}.${part(claims)}`;
  const signature = sign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' });
  return `${input}.${signature.toString('base64url')}`;
}

/** Every API request's Authorization and DPoP headers, as the page sends them. */
function recordAuthorization(page) {
  const seen = [];
  page.on('request', (request) => {
    const headers = request.headers();
    if (new URL(request.url()).pathname.startsWith('/api/') && headers.authorization) {
      seen.push({ path: new URL(request.url()).pathname, authorization: headers.authorization, dpop: headers.dpop });
    }
  });
  return seen;
}

/** The key the page keeps in IndexedDB, as the page sees it. */
function storedKey(page) {
  return page.evaluate(
    () =>
      new Promise((resolve, reject) => {
        const opening = indexedDB.open('tollgate-angular-dpop');
        opening.onerror = () => reject(opening.error);
        opening.onsuccess = () => {
          const get = opening.result.transaction('keys').objectStore('keys').get('dpop');
          get.onerror = () => reject(get.error);
          get.onsuccess = async () => {
            const pair = get.result;
            const jwk = await crypto.subtle.exportKey('jwk', pair.publicKey);
            let exported = 'refused';
            try {
              await crypto.subtle.exportKey('jwk', pair.privateKey);
              exported = 'exported';
            } catch {
              // A non-extractable key cannot be read, only used.
            }
            resolve({ extractable: pair.privateKey.extractable, exported, x: jwk.x });
          };
        };
      }),
  );
}

describe('DPoP in the browser', () => {
  let browser;
  let server;

  before(async () => {
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
  });
  afterEach(async () => {
    await server?.stop();
    server = undefined;
  });

  it('binds the session to a key the page cannot read, across reloads, refreshes and tabs', async () => {
    server = await startServer();
    // Refreshed on a 401, through the interceptor, not ahead of time.
    const context = await newDevice(browser, { 'tollgate.refreshAhead': 'off' });
    const page = await context.newPage();
    const seen = recordAuthorization(page);
    await signIn(page, server);
    const first = seen.find((request) => request.path === '/api/job-list');
    assert.ok(first, JSON.stringify(seen));
    assert.match(first.authorization, /^DPoP ey/);
    assert.ok(first.dpop, 'a proof with the request');
    const token = first.authorization.slice('DPoP '.length);
    const jkt = boundKey(token);
    assert.ok(jkt, 'the access token is bound');

    const key = await storedKey(page);
    assert.deepEqual([key.extractable, key.exported], [false, 'refused']);

    // A reload: the same key, the same binding.
    await page.reload();
    await page.getByRole('cell', { name: 'Initech' }).waitFor();
    assert.equal((await storedKey(page)).x, key.x);

    // Past the access token's lifetime: a 401, a refresh with a proof, the request replayed;
    // still bound to the same key.
    seen.length = 0;
    const statuses = [];
    page.on('response', (response) => statuses.push(`${response.status()} ${new URL(response.url()).pathname}`));
    await sleep(ACCESS_TTL * 1000 + 500);
    await page.getByRole('link', { name: 'Home' }).click();
    await page.getByRole('link', { name: 'Profile', exact: true }).click();
    await page.getByRole('cell', { name: 'Initech' }).waitFor();
    assert.ok(statuses.includes('401 /api/job-list'), statuses.join(', '));
    assert.ok(statuses.includes('200 /api/refresh-token'), statuses.join(', '));
    const later = seen.filter((request) => request.authorization.startsWith('DPoP '));
    assert.ok(later.length > 1, JSON.stringify(seen));
    for (const request of later) {
      assert.equal(boundKey(request.authorization.slice(5)), jkt);
    }
    assert.ok(!seen.some((request) => request.authorization.startsWith('Bearer ')), 'never as Bearer');

    // A second tab of the same profile: the same key, signed in at once.
    const second = await context.newPage();
    const secondSeen = recordAuthorization(second);
    await second.goto(`${server.url}/profile`);
    await second.getByRole('cell', { name: 'Initech' }).waitFor();
    assert.equal((await storedKey(second)).x, key.x);
    const secondToken = secondSeen.find((request) => request.path === '/api/job-list');
    assert.equal(boundKey(secondToken.authorization.slice(5)), jkt);
  });

  it('tokens taken out of the browser are refused without the key', async () => {
    // Tokens that outlive the test, so that each refusal is the key's doing, not expiry's.
    server = await startServer({ '--access-ttl': '1h' });
    const context = await newDevice(browser);
    const page = await context.newPage();
    const seen = recordAuthorization(page);
    await signIn(page, server);
    const request = seen.find((request) => request.path === '/api/job-list');
    const token = request.authorization.slice('DPoP '.length);
    const jobs = `${server.url}/api/job-list`;

    // The access token: as a bearer token, as DPoP without a proof, with the page's proof
    // replayed.
    const asBearer = await fetch(jobs, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(asBearer.status, 401);
    assert.equal(asBearer.headers.get('www-authenticate'), 'DPoP error="invalid_token"');
    const noProof = await fetch(jobs, { headers: { authorization: `DPoP ${token}` } });
    assert.equal(noProof.status, 401);
    assert.equal(noProof.headers.get('www-authenticate'), 'DPoP error="invalid_dpop_proof"');
    const replayed = await fetch(jobs, { headers: { authorization: `DPoP ${token}`, dpop: request.dpop } });
    assert.equal(replayed.status, 401);
    assert.equal(replayed.headers.get('www-authenticate'), 'DPoP error="invalid_dpop_proof"');
    // A fresh, well-made proof by the thief's own key.
    const forged = await fetch(jobs, {
      headers: { authorization: `DPoP ${token}`, dpop: thiefProof('GET', jobs, token) },
    });
    assert.equal(forged.status, 401);
    assert.equal(forged.headers.get('www-authenticate'), 'DPoP error="invalid_dpop_proof"');

    // The refresh cookie, taken from the browser: refused without a proof by the key, and the
    // session lives on in the browser.
    const cookie = (await context.cookies()).find((c) => c.name === 'tollgate_refresh');
    const refreshUrl = `${server.url}/api/refresh-token`;
    for (const dpop of [undefined, thiefProof('POST', refreshUrl)]) {
      const stolen = await fetch(refreshUrl, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          cookie: `tollgate_refresh=${cookie.value}`,
          ...(dpop ? { dpop } : {}),
        },
        body: '{}',
      });
      assert.equal(stolen.status, 403, dpop ? "the thief's own proof" : 'no proof');
    }
    await page.reload();
    await page.getByRole('cell', { name: 'Initech' }).waitFor();
  });

  it('signs again when the server asks for a nonce', async () => {
    server = await startServer({ '--dpop-nonce': 'true' });
    const page = await (await newDevice(browser)).newPage();
    const statuses = [];
    page.on('response', (response) => {
      const path = new URL(response.url()).pathname;
      if (path.startsWith('/api/')) statuses.push(`${response.status()} ${path}`);
    });
    await signIn(page, server);
    assert.ok(statuses.includes('400 /api/login'), statuses.join(', '));
    assert.ok(statuses.includes('200 /api/login'), statuses.join(', '));
    await page.reload();
    await page.getByRole('cell', { name: 'Initech' }).waitFor();
  });

  it('without DPoP the client works with bearer tokens as before', async () => {
    server = await startServer();
    const page = await (await newDevice(browser, { 'tollgate.dpop': 'off' })).newPage();
    const seen = recordAuthorization(page);
    await signIn(page, server);
    assert.ok(seen.length > 0 && seen.every((request) => request.authorization.startsWith('Bearer ')));
  });
});
