// The release binary carries the web client (`make release`): copied alone into an empty
// directory, it serves the client, fingerprinted files cached for a year, index.html
// revalidated, and both compressed as the browser asks.
import assert from 'node:assert/strict';
import { chmodSync, copyFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { brotliDecompressSync, gunzipSync } from 'node:zlib';

import { launchBrowser, newDevice, signIn, startServer } from './support.mjs';

const release = fileURLToPath(new URL('../../target/release/tollgate', import.meta.url));

/** A GET with exactly these headers, the body as sent (node's fetch would decompress it). */
function get(url, headers = {}) {
  return new Promise((resolve, reject) => {
    request(url, { headers }, (response) => {
      const chunks = [];
      response.on('data', (chunk) => chunks.push(chunk));
      response.on('end', () => resolve({ status: response.statusCode, headers: response.headers, body: Buffer.concat(chunks) }));
    })
      .on('error', reject)
      .end();
  });
}

describe('the release binary, alone in an empty directory', () => {
  let scratch;
  let server;
  let browser;

  before(async () => {
    assert.ok(existsSync(release), `${release} is missing: run \`make release\` first`);
    scratch = mkdtempSync(join(tmpdir(), 'tollgate-release-'));
    const binary = join(scratch, 'tollgate');
    copyFileSync(release, binary);
    chmodSync(binary, 0o755);
    // No web directory: what it serves comes from inside the binary.
    server = await startServer({ '--web-dir': null }, { binary, cwd: scratch });
    const home = await (await fetch(`${server.url}/`)).text();
    assert.ok(!home.includes('/api/openapi.json'), `${release} was built without the client: run \`make release\``);
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  it('serves the client, which signs in', async () => {
    const page = await (await newDevice(browser)).newPage();
    await signIn(page, server);
    await page.getByRole('heading', { name: 'Ada Lovelace' }).waitFor();
    await page.reload();
    await page.getByRole('cell', { name: 'Initech' }).waitFor();
  });

  it('caches fingerprinted files for a year and revalidates index.html', async () => {
    for (const path of ['/', '/index.html', '/profile']) {
      const page = await get(`${server.url}${path}`);
      assert.equal(page.status, 200, path);
      assert.match(page.headers['content-type'], /^text\/html/, path);
      assert.equal(page.headers['cache-control'], 'no-cache', path);
      // The security headers of every answer, embedded files included.
      assert.match(page.headers['content-security-policy'], /script-src 'self'/, path);
      assert.equal(page.headers['x-content-type-options'], 'nosniff', path);
    }
    const index = (await get(`${server.url}/`)).body.toString();
    const scripts = [...index.matchAll(/(?:src|href)="([\w-]+-[A-Z0-9]{8}\.(?:js|css))"/g)].map((m) => m[1]);
    assert.ok(scripts.some((name) => name.startsWith('main-')), index);
    for (const name of scripts) {
      const file = await get(`${server.url}/${name}`);
      assert.equal(file.status, 200, name);
      assert.equal(file.headers['cache-control'], 'public, max-age=31536000, immutable', name);
      assert.ok(file.headers.etag, name);
      const again = await get(`${server.url}/${name}`, { 'if-none-match': file.headers.etag });
      assert.equal(again.status, 304, name);
    }
    const favicon = await get(`${server.url}/favicon.ico`);
    assert.equal(favicon.status, 200);
    assert.equal(favicon.headers['cache-control'], 'no-cache', 'a name without a hash may change');
    const stale = await get(`${server.url}/main-AAAAAAAA.js`);
    assert.equal(stale.status, 404, 'a script from an older build is not answered with the page');
  });

  it('sends brotli or gzip as the browser accepts, and the same bytes either way', async () => {
    const index = (await get(`${server.url}/`)).body.toString();
    const main = index.match(/src="(main-[A-Z0-9]{8}\.js)"/)[1];
    const url = `${server.url}/${main}`;
    const plain = await get(url);
    assert.equal(plain.headers['content-encoding'], undefined);
    const brotli = await get(url, { 'accept-encoding': 'gzip, deflate, br' });
    assert.equal(brotli.headers['content-encoding'], 'br');
    assert.match(brotli.headers.vary ?? '', /accept-encoding/i);
    assert.ok(brotli.body.length < plain.body.length / 2, `${brotli.body.length} of ${plain.body.length}`);
    assert.deepEqual(brotliDecompressSync(brotli.body), plain.body);
    const gzip = await get(url, { 'accept-encoding': 'gzip' });
    assert.equal(gzip.headers['content-encoding'], 'gzip');
    assert.deepEqual(gunzipSync(gzip.body), plain.body);
    const html = await get(`${server.url}/`, { 'accept-encoding': 'br' });
    assert.equal(html.headers['content-encoding'], 'br');
    assert.equal(html.headers['cache-control'], 'no-cache');
  });
});
