// `make bench`: the Node.js verifier (tollgate-verify's Express middleware) against
// express-jwt and jsonwebtoken used directly, on the same ES256 tokens (jsonwebtoken has no
// EdDSA). Each middleware is called as Express would call it, without HTTP, so that only
// verification is measured. Prints a Markdown table.
import { createServer } from 'node:http';
import { createPublicKey, randomUUID } from 'node:crypto';
import os from 'node:os';

import { expressjwt } from 'express-jwt';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import jwt from 'jsonwebtoken';
import { tollgate } from 'tollgate-verify';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 2);
const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256' };
const pem = createPublicKey({ key: jwk, format: 'jwk' }).export({ type: 'spki', format: 'pem' });

// A stand-in for Tollgate's JWKS and revocation feed.
const server = createServer((request, response) => {
  response.setHeader('Content-Type', 'application/json');
  response.end(
    request.url.startsWith('/.well-known/')
      ? JSON.stringify({ keys: [jwk] })
      : JSON.stringify({ revoked: [], cursor: '0-0' }),
  );
});
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));

function sign() {
  const now = Math.floor(Date.now() / 1000);
  const user = randomUUID();
  return new SignJWT({
    sid: randomUUID(),
    user: { id: user, email: 'ada@example.com', username: 'ada' },
  })
    .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: 'k1' })
    .setIssuer('tollgate')
    .setAudience('tollgate-api')
    .setSubject(user)
    .setIssuedAt(now)
    .setExpirationTime(now + 900)
    .setJti(randomUUID())
    .sign(privateKey);
}

const token = await sign();
const fresh = await Promise.all(Array.from({ length: 20_000 }, sign));

/** Calls `middleware` as Express would; resolves when it calls `next` (rejects otherwise). */
function call(middleware, bearer) {
  return new Promise((resolve, reject) => {
    const request = { headers: { authorization: `Bearer ${bearer}` } };
    const response = { setHeader() {}, end: () => reject(new Error('refused')), statusCode: 200 };
    middleware(request, response, (error) => (error ? reject(error) : resolve()));
  });
}

/** Operations per second of `operation(i)` over SECONDS, run one after the other. */
async function measure(operation) {
  for (let i = 0; i < 200; i++) await operation(i);
  const started = performance.now();
  let count = 0;
  while (performance.now() - started < SECONDS * 1000) {
    await operation(count);
    count += 1;
  }
  return count / ((performance.now() - started) / 1000);
}

const tollgateMiddleware = tollgate({
  url: `http://127.0.0.1:${server.address().port}`,
  algorithm: 'ES256',
  logger: { warn() {}, info() {} },
});
await tollgateMiddleware.verifier.follow();
const expressJwt = expressjwt({
  secret: pem,
  algorithms: ['ES256'],
  issuer: 'tollgate',
  audience: 'tollgate-api',
});
const options = { algorithms: ['ES256'], issuer: 'tollgate', audience: 'tollgate-api' };

const rows = [
  ['jsonwebtoken.verify, used directly', await measure(() => jwt.verify(token, pem, options))],
  ['express-jwt middleware', await measure(() => call(expressJwt, token))],
  ['tollgate-verify middleware, a token seen before', await measure(() => call(tollgateMiddleware, token))],
  [
    'tollgate-verify middleware, a first-seen token',
    await measure((i) => call(tollgateMiddleware, fresh[i % fresh.length])),
  ],
];
tollgateMiddleware.verifier.close();
server.close();

const baseline = rows[1][1];
console.log(
  `\n## Node.js verification (ES256), ${new Date().toISOString().slice(0, 10)}\n\n` +
    `Node ${process.version} on ${os.cpus()[0]?.model ?? 'an unknown CPU'}; one verification at a time, ` +
    `${SECONDS} s each; the first-seen row cycles through ${fresh.length} tokens (more than the ` +
    `verifier's 4096-entry cache holds).\n\n` +
    '| verification | per second | µs each | vs express-jwt |\n| --- | ---: | ---: | ---: |',
);
for (const [name, perSecond] of rows) {
  console.log(
    `| ${name} | ${perSecond.toFixed(0)} | ${(1e6 / perSecond).toFixed(1)} | ${(perSecond / baseline).toFixed(2)}× |`,
  );
}
