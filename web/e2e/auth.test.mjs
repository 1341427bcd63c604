// End to end: the built client served by a real `tollgate demo`, driven in Debian's Chromium.
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';

import { countApiCalls, launchBrowser, newDevice, PAST_EXPIRY_MS, signIn, sleep, startServer } from './support.mjs';

describe('the Tollgate client', () => {
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

  it('signs in and shows the profile with its jobs', async () => {
    server = await startServer();
    const page = await (await newDevice(browser)).newPage();
    await signIn(page, server);
    await page.getByRole('heading', { name: 'Ada Lovelace' }).waitFor();
    for (const text of ['user1@example.com', 'London', '+44 20 7946 0101']) {
      await page.getByText(text).waitFor();
    }
    for (const header of ['Company', 'Department', 'Title', 'EIN']) {
      await page.getByRole('columnheader', { name: header, exact: true }).waitFor();
    }
    assert.equal(await page.getByRole('row').count(), 4, 'a header and three jobs');
    await page.getByText('this device').waitFor();
    await page.getByRole('link', { name: 'Profile' }).waitFor();
    await page.getByRole('button', { name: 'Logout' }).waitFor();
  });

  it('keeps the refresh token out of reach of scripts (cookie transport)', async () => {
    server = await startServer();
    const context = await newDevice(browser);
    const page = await context.newPage();
    await signIn(page, server);
    const cookie = (await context.cookies()).find((c) => c.name === 'tollgate_refresh');
    assert.ok(cookie?.httpOnly && cookie.secure && cookie.sameSite === 'Strict', JSON.stringify(cookie));
    const stored = await page.evaluate(() => JSON.stringify(localStorage) + document.cookie);
    assert.ok(!stored.includes('eyJ'), `no token visible to scripts: ${stored}`);
  });

  it('stays signed in across a reload', async () => {
    server = await startServer();
    const page = await (await newDevice(browser)).newPage();
    await signIn(page, server);
    await page.reload();
    await page.getByRole('cell', { name: 'Initech' }).waitFor();
    assert.match(page.url(), /\/profile$/);
  });

  it('after expiry, parallel requests share exactly one refresh and the page keeps working', async () => {
    server = await startServer();
    const page = await (await newDevice(browser, { 'tollgate.refreshAhead': 'off' })).newPage();
    await signIn(page, server);
    const calls = countApiCalls(page);
    await sleep(PAST_EXPIRY_MS);
    const replayed = page.waitForResponse((r) => r.url().endsWith('/api/sessions') && r.status() === 200);
    await page.getByRole('button', { name: 'Reload' }).click();
    await replayed;
    await page.getByRole('cell', { name: 'Initech' }).waitFor();
    await sleep(300);
    assert.equal(calls.get('401 /api/job-list'), 1, JSON.stringify(calls.all()));
    assert.equal(calls.get('401 /api/sessions'), 1, JSON.stringify(calls.all()));
    assert.equal(calls.get('POST /api/refresh-token'), 1, JSON.stringify(calls.all()));
    assert.equal(calls.get('200 /api/job-list'), 1);
    assert.match(page.url(), /\/profile$/);
  });

  it('keeps two tabs working after expiry', async () => {
    server = await startServer();
    const context = await newDevice(browser, { 'tollgate.refreshAhead': 'off' });
    const [first, second] = [await context.newPage(), await context.newPage()];
    await signIn(first, server);
    await second.goto(`${server.url}/profile`);
    await second.getByRole('cell', { name: 'Initech' }).waitFor();
    const calls = [countApiCalls(first), countApiCalls(second)];
    await sleep(PAST_EXPIRY_MS);
    await Promise.all([first, second].map((page) => page.getByRole('button', { name: 'Reload' }).click()));
    await sleep(1500);
    for (const [n, page] of [first, second].entries()) {
      assert.match(page.url(), /\/profile$/, `tab ${n + 1}`);
      assert.equal(calls[n].get('403 /api/refresh-token'), 0, JSON.stringify(calls[n].all()));
      assert.equal(calls[n].get('200 /api/job-list'), 1, JSON.stringify(calls[n].all()));
    }
  });

  it('signs the other tabs out at once when one tab signs out', async () => {
    server = await startServer();
    const context = await newDevice(browser);
    const [first, second] = [await context.newPage(), await context.newPage()];
    await signIn(first, server);
    await second.goto(`${server.url}/profile`);
    await second.getByRole('cell', { name: 'Initech' }).waitFor();
    await first.getByRole('button', { name: 'Logout' }).click();
    await first.waitForURL('**/login');
    await second.waitForURL('**/login', { timeout: 2000 });
    await second.getByRole('link', { name: 'Login' }).waitFor();
  });

  it('times out for inactivity across tabs: activity in either counts, the warning can be dismissed', async () => {
    server = await startServer();
    // Signed out after 6 s without activity, warned 3 s before.
    const context = await newDevice(browser, { 'tollgate.idleSeconds': '6' });
    const [first, second] = [await context.newPage(), await context.newPage()];
    await signIn(first, server);
    await second.goto(`${server.url}/profile`);
    await second.getByRole('cell', { name: 'Initech' }).waitFor();
    // Activity in the second tab keeps the first one signed in too.
    for (let step = 0; step < 16; step++) {
      await second.mouse.move(10 + step * 5, 10 + step * 5);
      await sleep(500);
    }
    for (const page of [first, second]) {
      assert.equal(await page.getByRole('alert').count(), 0);
      await page.getByRole('button', { name: 'Logout' }).waitFor();
    }
    // Idle: both tabs warn; staying in one dismisses the warning in both.
    const warning = (page) => page.getByText(/You will be signed out in/);
    await warning(first).waitFor({ timeout: 6000 });
    await warning(second).waitFor();
    await first.getByRole('button', { name: 'Stay signed in' }).click();
    await warning(second).waitFor({ state: 'detached', timeout: 3000 });
    await warning(first).waitFor({ state: 'detached' });
    // Idle again: both tabs are signed out.
    await first.waitForURL('**/login', { timeout: 10_000 });
    await second.waitForURL('**/login', { timeout: 3000 });
  });

  it('signs a device out when another device revokes it', async () => {
    server = await startServer();
    const laptop = await (await newDevice(browser)).newPage();
    const phone = await (await newDevice(browser)).newPage();
    await signIn(laptop, server);
    await signIn(phone, server);
    await laptop.getByRole('button', { name: 'Reload' }).click();
    await laptop.getByTestId('device').nth(1).waitFor();
    await laptop.getByRole('button', { name: 'Revoke' }).click();
    await laptop.getByTestId('device').nth(1).waitFor({ state: 'detached' });
    // The phone's access token runs out; its refresh is refused and it lands on /login.
    await phone.waitForURL('**/login', { timeout: PAST_EXPIRY_MS + 3000 });
    await laptop.reload();
    await laptop.getByRole('cell', { name: 'Initech' }).waitFor();
  });

  it('shows the server message for a wrong password', async () => {
    server = await startServer();
    const page = await (await newDevice(browser)).newPage();
    await page.goto(`${server.url}/login`);
    await page.getByLabel('Username').fill('user1');
    await page.getByLabel('Password').fill('not the password');
    await page.getByRole('button', { name: 'Sign in' }).click();
    const alert = page.getByRole('alert');
    await alert.waitFor();
    assert.equal((await alert.textContent()).trim(), 'Wrong username or password.');
    assert.match(page.url(), /\/login$/);
  });

  it('sends a guarded URL to /login and returns there after sign-in', async () => {
    server = await startServer();
    const page = await (await newDevice(browser)).newPage();
    await page.goto(`${server.url}/profile`);
    await page.waitForURL('**/login?returnUrl=%2Fprofile');
    await page.getByRole('link', { name: 'Home' }).waitFor();
    await page.getByLabel('Username').fill('user2');
    await page.getByLabel('Password').fill('password');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL('**/profile');
    await page.getByRole('heading', { name: 'Alan Turing' }).waitFor();
  });

  it('works end to end with the localStorage transport', async () => {
    server = await startServer();
    const context = await newDevice(browser, { 'tollgate.transport': 'localStorage' });
    const page = await context.newPage();
    const calls = countApiCalls(page);
    await signIn(page, server);
    const stored = await page.evaluate(() => localStorage.getItem('tollgate.refreshToken'));
    assert.match(stored ?? '', /^eyJ/);
    assert.equal((await context.cookies()).filter((c) => c.name === 'tollgate_refresh').length, 0);
    await sleep(PAST_EXPIRY_MS);
    await page.reload();
    await page.getByRole('cell', { name: 'Initech' }).waitFor();
    assert.ok(calls.get('200 /api/refresh-token') >= 1, JSON.stringify(calls.all()));
    assert.equal(calls.get('403 /api/refresh-token'), 0);
  });

  it('sends a stable fingerprint when the server requires one', async () => {
    server = await startServer({ '--require-fingerprint': 'true' });
    const page = await (await newDevice(browser)).newPage();
    const calls = countApiCalls(page);
    await signIn(page, server);
    await page.reload();
    await page.getByRole('cell', { name: 'Initech' }).waitFor();
    assert.equal(calls.get('200 /api/refresh-token'), 1, JSON.stringify(calls.all()));
    assert.equal(calls.get('400 /api/login') + calls.get('403 /api/refresh-token'), 0);
  });

  it('refreshes ahead of expiry, so no request meets a 401', async () => {
    server = await startServer();
    const page = await (await newDevice(browser)).newPage();
    const calls = countApiCalls(page);
    await signIn(page, server);
    await sleep(PAST_EXPIRY_MS + 1000);
    const answered = page.waitForResponse((r) => r.url().endsWith('/api/job-list'));
    await page.getByRole('button', { name: 'Reload' }).click();
    await answered;
    await sleep(300);
    assert.ok(calls.get('200 /api/refresh-token') >= 1, JSON.stringify(calls.all()));
    assert.equal(calls.get('401 /api/job-list') + calls.get('401 /api/sessions'), 0, JSON.stringify(calls.all()));
  });
});
