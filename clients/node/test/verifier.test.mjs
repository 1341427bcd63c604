// The middleware against a small stand-in for Tollgate's JWKS and revocation feed, with keys
// made here: every check refuses what it guards against, and the feed and keys are followed.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';

import { calculateJwkThumbprint, exportJWK, generateKeyPair, SignJWT } from 'jose';

import { DpopChecker, ProofRejected, ReplayCache, TollgateVerifier, TokenRejected, Unavailable, tokenHash, tollgate } from '../dist/index.js';
import { maxAgeMs } from '../dist/keys.js';

const quiet = { warn() {}, info() {} };
let server;
let base;
const state = { keys: [], revoked: [], jwksFetches: 0, down: false, cacheControl: null };
let key;

before(async () => {
  key = await newKey('k1');
  state.keys = [key.jwk];
  server = createServer((request, response) => {
    if (state.down) return response.destroy();
    const url = new URL(request.url, 'http://x');
    response.setHeader('Content-Type', 'application/json');
    if (url.pathname === '/.well-known/jwks.json') {
      state.jwksFetches += 1;
      if (state.cacheControl) response.setHeader('Cache-Control', state.cacheControl);
      return response.end(JSON.stringify({ keys: state.keys }));
    }
    if (url.pathname === '/api/revocations') {
      return response.end(JSON.stringify({ revoked: state.revoked, cursor: '0-x' }));
    }
    response.statusCode = 404;
    response.end('{}');
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${server.address().port}`;
});

after(() => server.close());

async function newKey(kid) {
  const { publicKey, privateKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519' });
  return { kid, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg: 'EdDSA' } };
}

function claims(overrides = {}) {
  const user = randomUUID();
  const now = Math.floor(Date.now() / 1000);
  return {
    iss: 'tollgate', aud: 'tollgate-api', sub: user, sid: randomUUID(), iat: now,
    exp: now + 900, jti: randomUUID(),
    user: { id: user, email: 'ada@example.com', username: 'ada' },
    ...overrides,
  };
}

function sign(body, { signer = key, header = {} } = {}) {
  return new SignJWT(body)
    .setProtectedHeader({ alg: 'EdDSA', typ: 'at+jwt', kid: signer.kid, ...header })
    .sign(signer.privateKey);
}

async function ready(options = {}) {
  const verifier = new TollgateVerifier({ url: base, logger: quiet, pollMs: 50, ...options });
  await verifier.follow();
  return verifier;
}

async function reason(verifier, token) {
  const error = await verifier.verify(token).then(() => null, (e) => e);
  assert.ok(error instanceof TokenRejected, `expected a rejection, got ${error}`);
  return error.reason;
}

test('a token from the key is accepted with its typed claims', async () => {
  const verifier = await ready();
  const verified = await verifier.verify(await sign(claims({ roles: ['admin'] })));
  assert.equal(verified.user.username, 'ada');
  assert.deepEqual(verified.roles, ['admin']);
  assert.deepEqual((await verifier.verify(await sign(claims()))).roles, []);
  verifier.close();
});

test('each check refuses what it guards against', async () => {
  const verifier = await ready();
  const other = await newKey('k1');
  assert.equal(await reason(verifier, await sign(claims(), { signer: other })), 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED');
  assert.equal(await reason(verifier, await sign(claims(), { header: { typ: 'rt+jwt' } })), 'wrong token type');
  const hmac = await new SignJWT(claims())
    .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid: 'k1' })
    .sign(new TextEncoder().encode('a guessable secret of 32 bytes!!'));
  assert.equal(await reason(verifier, hmac), 'unexpected algorithm');
  const part = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const none = `${part({ alg: 'none', typ: 'at+jwt', kid: 'k1' })}.${part(claims())}.`;
  assert.equal(await reason(verifier, none), 'unexpected algorithm');
  assert.equal(await reason(verifier, await sign(claims(), { header: { jku: 'https://attacker.example' } })), 'header-supplied key');
  assert.equal(await reason(verifier, await sign(claims(), { header: { jwk: other.jwk } })), 'header-supplied key');
  assert.equal(await reason(verifier, await sign(claims(), { header: { x5u: 'https://attacker.example/c' } })), 'header-supplied key');
  assert.equal(await reason(verifier, await sign(claims(), { header: { x5c: ['MIIB'] } })), 'header-supplied key');
  const noExp = claims();
  delete noExp.exp;
  assert.equal(await reason(verifier, await sign(noExp)), 'ERR_JWT_CLAIM_VALIDATION_FAILED');
  assert.throws(() => new TollgateVerifier({ url: base, algorithm: 'HS256' }));
  assert.equal(await reason(verifier, await sign(claims(), { header: { kid: undefined } })), 'no key id');
  assert.equal(await reason(verifier, await sign(claims({ iss: 'someone-else' }))), 'ERR_JWT_CLAIM_VALIDATION_FAILED');
  assert.equal(await reason(verifier, await sign(claims({ aud: 'another-api' }))), 'ERR_JWT_CLAIM_VALIDATION_FAILED');
  const now = Math.floor(Date.now() / 1000);
  assert.equal(await reason(verifier, await sign(claims({ exp: now - 1 }))), 'ERR_JWT_EXPIRED');
  assert.equal(await reason(verifier, await sign(claims({ nbf: now + 60 }))), 'ERR_JWT_CLAIM_VALIDATION_FAILED');
  assert.equal(await reason(verifier, await sign(claims({ user: 'nobody' }))), 'malformed claims');
  assert.equal(await reason(verifier, await sign(claims({ pad: 'x'.repeat(9000) }))), 'oversized token');
  assert.equal(await reason(verifier, 'not.a.token'), 'unreadable header');
  assert.throws(() => new TollgateVerifier({ url: base, leewaySeconds: 6 }));
  verifier.close();
});

test('a revoked session is refused once the feed names it, even after it was verified', async () => {
  const verifier = await ready();
  const body = claims();
  const token = await sign(body);
  await verifier.verify(token);
  state.revoked = [{ sid: body.sid, revokedAt: new Date().toISOString() }];
  await verifier.follow();
  assert.equal(await reason(verifier, token), 'session revoked');
  state.revoked = [];
  verifier.close();
});

test('an unknown kid fetches the keys at most once a second', async () => {
  const verifier = await ready();
  const rotated = await newKey('k2');
  state.keys = [key.jwk, rotated.jwk];
  const fetches = state.jwksFetches;
  await verifier.verify(await sign(claims(), { signer: rotated }));
  assert.equal(state.jwksFetches, fetches + 1);
  for (const kid of ['a', 'b', 'c']) {
    assert.equal(await reason(verifier, await sign(claims(), { header: { kid } })), 'unknown key id');
  }
  assert.equal(state.jwksFetches, fetches + 1);
  state.keys = [key.jwk];
  verifier.close();
});

test('started while Tollgate is down: unavailable, then verifying once it is back; stale feed reported', async () => {
  state.down = true;
  const warnings = [];
  // No background rounds: this test drives them.
  const verifier = new TollgateVerifier({
    url: base, pollMs: 60_000, logger: { warn: (m) => warnings.push(m), info() {} },
  });
  await verifier.follow();
  const token = await sign(claims());
  await assert.rejects(verifier.verify(token), Unavailable);
  assert.equal(verifier.revocationStaleness(), null);
  assert.equal(warnings.length, 1);
  state.down = false;
  await verifier.follow();
  assert.equal((await verifier.verify(token)).user.username, 'ada');
  // Down again: the keys held keep verifying a token never seen before.
  state.down = true;
  await verifier.follow();
  assert.equal((await verifier.verify(await sign(claims()))).user.username, 'ada');
  state.down = false;
  verifier.close();
});

test('a bound on staleness answers unavailable once the feed is older', async () => {
  const verifier = await ready({ maxRevocationStalenessMs: 300, pollMs: 60_000 });
  const token = await sign(claims());
  await verifier.verify(token);
  verifier.close();
  await new Promise((resolve) => setTimeout(resolve, 600));
  await assert.rejects(verifier.verify(token), Unavailable);
});

test('leeway of up to 5 s applies to expiry, from the cache too', async () => {
  const lenient = await ready({ leewaySeconds: 5 });
  const strict = await ready();
  const justExpired = await sign(claims({ exp: Math.floor(Date.now() / 1000) - 2 }));
  await lenient.verify(justExpired);
  await lenient.verify(justExpired);
  assert.equal(await reason(strict, justExpired), 'ERR_JWT_EXPIRED');
  // A token verified while valid is refused from the cache once it expires.
  // At least a second left when it is verified, however late in its second this runs.
  const exp = Math.floor(Date.now() / 1000) + 2;
  const shortLived = await sign(claims({ exp }));
  await strict.verify(shortLived);
  await new Promise((resolve) => setTimeout(resolve, exp * 1000 - Date.now() + 100));
  assert.equal(await reason(strict, shortLived), 'expired');
  lenient.close();
  strict.close();
});

test('a key that goes away stops verifying tokens cached under it; an empty key set is ignored', async () => {
  const verifier = await ready({ pollMs: 60_000 });
  const token = await sign(claims());
  await verifier.verify(token);
  const rotated = await newKey('k2');
  state.keys = [rotated.jwk];
  // A token of the new key makes the verifier fetch the keys, which no longer hold k1.
  await verifier.verify(await sign(claims(), { signer: rotated }));
  assert.equal(await reason(verifier, token), 'unknown key id');
  // An answer with no usable key changes nothing.
  state.keys = [];
  await new Promise((resolve) => setTimeout(resolve, 1100));
  await assert.rejects(verifier.verify(await sign(claims(), { header: { kid: 'k3' } })));
  assert.equal((await verifier.verify(await sign(claims(), { signer: rotated }))).user.username, 'ada');
  state.keys = [key.jwk];
  verifier.close();
});

test('the JWKS is kept as long as its Cache-Control allows, within bounds', () => {
  assert.equal(maxAgeMs('public, max-age=60'), 60_000);
  assert.equal(maxAgeMs('max-age=0'), 1_000);
  assert.equal(maxAgeMs('no-store'), 1_000);
  assert.equal(maxAgeMs('max-age=99999999'), 24 * 3600_000);
  assert.equal(maxAgeMs('public'), 300_000);
  assert.equal(maxAgeMs(null), 300_000);
});

test('the middleware answers 401 with a challenge, or lets the claims through', async () => {
  const middleware = tollgate(await ready());
  const call = (authorization) =>
    new Promise((resolve) => {
      const request = { headers: authorization === undefined ? {} : { authorization } };
      const headers = {};
      const response = {
        statusCode: 200,
        setHeader: (name, value) => (headers[name.toLowerCase()] = value),
        end: (body) => resolve({ status: response.statusCode, headers, body: JSON.parse(body) }),
      };
      middleware(request, response, () => resolve({ status: 'next', auth: request.auth }));
    });
  const passed = await call(`Bearer ${await sign(claims())}`);
  assert.equal(passed.status, 'next');
  assert.equal(passed.auth.user.username, 'ada');
  const missing = await call(undefined);
  assert.equal(missing.status, 401);
  assert.equal(missing.headers['www-authenticate'], 'Bearer');
  assert.equal(missing.headers['content-type'], 'application/problem+json');
  const invalid = await call('Bearer x.y.z');
  assert.equal(invalid.headers['www-authenticate'], 'Bearer error="invalid_token"');
  assert.equal((await call(`Basic abc`)).status, 401);
  // Several Authorization headers: refused, whichever comes first.
  const valid = `Bearer ${await sign(claims())}`;
  const several = await new Promise((resolve) => {
    const token = valid;
    const request = { headers: { authorization: token }, headersDistinct: { authorization: [token, token] } };
    const response = {
      statusCode: 200,
      setHeader() {},
      end: () => resolve(response.statusCode),
    };
    middleware(request, response, () => resolve('next'));
  });
  assert.equal(several, 401);
  middleware.verifier.close();
});

test('a token bound to a DPoP key passes only as DPoP with a proof by that key', async () => {
  const middleware = tollgate(await ready());
  const { publicKey, privateKey } = await generateKeyPair('ES256');
  const jwk = await exportJWK(publicKey);
  const jkt = await calculateJwkThumbprint(jwk, 'sha256');
  const token = await sign(claims({ cnf: { jkt } }));
  const url = '/api/hello';
  const proof = ({ signer = privateKey, key = jwk, htm = 'GET', htu = `http://api.test${url}`, ath = tokenHash(token), iat } = {}) =>
    new SignJWT({ jti: randomUUID(), htm, htu, ath, iat: iat ?? Math.floor(Date.now() / 1000) })
      .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: key })
      .sign(signer);
  const call = (authorization, proofs = []) =>
    new Promise((resolve) => {
      const request = {
        method: 'GET',
        url,
        socket: {},
        headers: { authorization, host: 'api.test' },
        headersDistinct: { authorization: [authorization], dpop: proofs },
      };
      const headers = {};
      const response = {
        statusCode: 200,
        setHeader: (name, value) => (headers[name.toLowerCase()] = value),
        end: () => resolve({ status: response.statusCode, challenge: headers['www-authenticate'] }),
      };
      middleware(request, response, () => resolve({ status: 'next', auth: request.auth }));
    });
  const good = await proof();
  const passed = await call(`DPoP ${token}`, [good]);
  assert.equal(passed.status, 'next');
  assert.equal(passed.auth.cnf.jkt, jkt);

  const invalidToken = { status: 401, challenge: 'DPoP error="invalid_token"' };
  const invalidProof = { status: 401, challenge: 'DPoP error="invalid_dpop_proof"' };
  // Stolen: as a bearer token, even with a proof.
  assert.deepEqual(await call(`Bearer ${token}`, [await proof()]), invalidToken);
  // An unbound token presented as DPoP.
  assert.deepEqual(await call(`DPoP ${await sign(claims())}`, [await proof()]), invalidToken);
  const other = await generateKeyPair('ES256');
  const refused = {
    'no proof': [],
    'two proofs': [await proof(), await proof()],
    'replayed': [good],
    "another key's": [await proof({ signer: other.privateKey, key: await exportJWK(other.publicKey) })],
    'htm': [await proof({ htm: 'POST' })],
    'htu': [await proof({ htu: 'http://api.test/api/other' })],
    'ath': [await proof({ ath: tokenHash('another token') })],
    'stale iat': [await proof({ iat: Math.floor(Date.now() / 1000) - 120 })],
    'private key': [await proof({ key: { ...jwk, d: 'c2VjcmV0' } })],
  };
  for (const [name, proofs] of Object.entries(refused)) {
    assert.deepEqual(await call(`DPoP ${token}`, proofs), invalidProof, name);
  }
  middleware.verifier.close();
});

test('a proof is remembered until it is stale and no longer, and held to an exp or nbf it carries', async () => {
  const cache = new ReplayCache();
  const checker = new DpopChecker({ replays: cache });
  const { publicKey, privateKey } = await generateKeyPair('ES256');
  const jwk = await exportJWK(publicKey);
  const iat = 1_800_000_000;
  const target = { method: 'GET', uri: 'https://api.test/api/hello' };
  const proof = (jti, extra = {}) =>
    new SignJWT({ jti, htm: 'GET', htu: target.uri, iat, ...extra })
      .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk })
      .sign(privateKey);
  const refusal = (reason) => (error) => error instanceof ProofRejected && error.reason === reason;
  const once = await proof('once');
  await checker.check(once, target, iat);
  // The last second the proof is fresh, it is still a replay; the next, it is stale and gone.
  await assert.rejects(checker.check(once, target, iat + 60), refusal('proof replayed (jti)'));
  await assert.rejects(checker.check(once, target, iat + 61), refusal('stale iat'));
  await checker.check(await proof('next', { iat: iat + 61 }), target, iat + 61);
  assert.equal(cache.size, 1);
  // A first use in the proof's last fresh second is accepted, and remembered.
  const late = new DpopChecker();
  const last = await proof('last');
  await late.check(last, target, iat + 60);
  await assert.rejects(late.check(last, target, iat + 60), refusal('proof replayed (jti)'));

  // A maximum age that is not a number would lift the bound altogether.
  assert.throws(() => new DpopChecker({ maxAgeSeconds: Number(undefined) }), /maxAgeSeconds/);

  const claimsRefused = refusal('bad proof key, signature or claims');
  const fresh = new DpopChecker();
  await assert.rejects(fresh.check(await proof('expired', { exp: iat - 60 }), target, iat), claimsRefused);
  await fresh.check(await proof('expiring', { exp: iat - 59 }), target, iat);
  await assert.rejects(fresh.check(await proof('early', { nbf: iat + 61 }), target, iat), claimsRefused);
  await fresh.check(await proof('soon', { nbf: iat + 60 }), target, iat);
});

test('the replay cache forgets by time whatever the order of arrival', () => {
  const cache = new ReplayCache(10);
  // A proof dated ahead comes first, and is forgotten last.
  assert.equal(cache.firstUse('ahead', 220, 100), true);
  assert.equal(cache.firstUse('now', 160, 100), true);
  assert.equal(cache.firstUse('later', 400, 161), true);
  assert.equal(cache.size, 2, 'the second key is gone, though the first is not');
  // A check whose clock was read before that comes too late to tell: refused.
  assert.equal(cache.firstUse('now', 160, 159.5), false);
  assert.equal(cache.firstUse('other', 161, 160), false);
  assert.equal(cache.firstUse('ahead', 500, 220), true);
  // A fractional time is kept to its whole second, never forgotten before it.
  const fractional = new ReplayCache();
  assert.equal(fractional.firstUse('k', 100.5, 50), true);
  assert.equal(fractional.firstUse('x', 200, 100.2), true);
  assert.equal(fractional.firstUse('k', 100.5, 100.2), false);
  assert.throws(() => fractional.firstUse('y', NaN, 100.2), TypeError);
  const full = new ReplayCache(1);
  full.firstUse('one', 200, 100);
  assert.throws(() => full.firstUse('two', 200, 150), Unavailable);
  assert.equal(full.firstUse('two', 300, 200), true);
});

test('a shared replay store makes a proof used at one instance a replay at the others', async () => {
  const { publicKey, privateKey } = await generateKeyPair('ES256');
  const jwk = await exportJWK(publicKey);
  const target = { method: 'GET', uri: 'https://api.test/api/hello' };
  const proof = (jti, iat) =>
    new SignJWT({ jti, htm: 'GET', htu: target.uri, iat })
      .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk })
      .sign(privateKey);
  const iat = 1_800_000_000;
  const shared = new ReplayCache();
  const [one, two] = [new DpopChecker({ replays: shared }), new DpopChecker({ replays: shared })];
  const used = await proof('once', iat);
  await one.check(used, target, iat);
  await assert.rejects(
    two.check(used, target, iat),
    (error) => error instanceof ProofRejected && error.reason === 'proof replayed (jti)',
  );

  // Ten proofs a second for two and a half minutes fit in 700 places: each is kept only until
  // it is stale.
  const small = new DpopChecker({ replays: new ReplayCache(700) });
  for (let second = 0; second < 150; second += 1) {
    for (let n = 0; n < 10; n += 1) {
      await small.check(await proof(`${second}-${n}`, iat + second), target, iat + second);
    }
  }
});

test('a replay store that fails answers 503, not 401', async () => {
  let asked = 0;
  const failing = { firstUse: async () => { asked += 1; throw new Error('store down'); } };
  const middleware = tollgate(await ready({ dpop: { replays: failing } }));
  const { publicKey, privateKey } = await generateKeyPair('ES256');
  const jwk = await exportJWK(publicKey);
  const token = await sign(claims({ cnf: { jkt: await calculateJwkThumbprint(jwk, 'sha256') } }));
  const proof = await new SignJWT({ jti: randomUUID(), htm: 'GET', htu: 'http://api.test/api/hello',
    ath: tokenHash(token), iat: Math.floor(Date.now() / 1000) })
    .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk })
    .sign(privateKey);
  const status = await new Promise((resolve) => {
    const request = {
      method: 'GET',
      url: '/api/hello',
      socket: {},
      headers: { authorization: `DPoP ${token}`, host: 'api.test' },
      headersDistinct: { authorization: [`DPoP ${token}`], dpop: [proof] },
    };
    const response = { statusCode: 200, setHeader() {}, end: () => resolve(response.statusCode) };
    middleware(request, response, () => resolve('next'));
  });
  assert.equal(status, 503);
  assert.equal(asked, 1);
  middleware.verifier.close();
});
