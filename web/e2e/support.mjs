// Shared pieces of the end-to-end tests: a real `tollgate demo` per test and Debian's Chromium.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

const root = fileURLToPath(new URL('../..', import.meta.url));
const binary = process.env.TOLLGATE_BIN ?? `${root}target/debug/tollgate`;
const webDir = fileURLToPath(new URL('../dist/tollgate-web/browser', import.meta.url));

/** The access-token lifetime the tests run with, in seconds. */
export const ACCESS_TTL = 3;

async function freePort() {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  server.close();
  return port;
}

/**
 * `tollgate demo` on a fresh database and a free port, with flags overridden by `flags` (`null`
 * leaves a flag out); `{url}` in a flag's value stands for the server's own URL. `options` may
 * name another binary and the directory it runs in.
 */
export async function startServer(flags = {}, options = {}) {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const settings = {
    '--addr': `127.0.0.1:${port}`,
    '--access-ttl': `${ACCESS_TTL}s`,
    '--web-dir': webDir,
    '--login-rate': 'off',
    ...flags,
  };
  const args = [
    'demo',
    ...Object.entries(settings)
      .filter(([, value]) => value !== null)
      .flatMap(([flag, value]) => [flag, value.replace('{url}', url)]),
  ];
  const child = spawn(options.binary ?? binary, args, {
    cwd: options.cwd,
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { PATH: process.env.PATH },
  });
  let log = '';
  child.stderr.on('data', (chunk) => (log += chunk));
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`tollgate exited early:\n${log}`);
    try {
      if ((await fetch(`${url}/healthz`)).ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`tollgate did not start:\n${log}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return {
    url,
    log: () => log,
    async stop() {
      child.kill('SIGTERM');
      if (child.exitCode === null) await once(child, 'exit');
    },
  };
}

export function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
}

/** A new browser profile (one device) with optional localStorage settings for the client. */
export async function newDevice(browser, settings = {}) {
  const context = await browser.newContext();
  if (Object.keys(settings).length > 0) {
    await context.addInitScript((entries) => {
      for (const [key, value] of Object.entries(entries)) localStorage.setItem(key, value);
    }, settings);
  }
  return context;
}

export async function signIn(page, server, username = 'user1', password = 'password') {
  await page.goto(`${server.url}/login`);
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL('**/profile');
  await page.getByRole('cell', { name: 'Initech' }).waitFor();
}

/** Counts API calls on `page` by path and status, e.g. `counts.get('401 /api/job-list')`. */
export function countApiCalls(page) {
  const counts = new Map();
  const add = (key) => counts.set(key, (counts.get(key) ?? 0) + 1);
  page.on('request', (request) => {
    const { pathname } = new URL(request.url());
    if (pathname.startsWith('/api/')) add(`${request.method()} ${pathname}`);
  });
  page.on('response', (response) => {
    const { pathname } = new URL(response.url());
    if (pathname.startsWith('/api/')) add(`${response.status()} ${pathname}`);
  });
  return {
    get: (key) => counts.get(key) ?? 0,
    reset: () => counts.clear(),
    all: () => Object.fromEntries(counts),
  };
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Long enough for an access token to have expired. */
export const PAST_EXPIRY_MS = ACCESS_TTL * 1000 + 1500;
