// End to end: sign-up, password change, reset by mail and the admin page, in Chromium against
// a real `tollgate demo` (sign-up is open in the demo; user1 is its administrator).
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, afterEach, before, describe, it } from 'node:test';

import { SMTPServer } from 'smtp-server';

import { launchBrowser, newDevice, signIn, startServer } from './support.mjs';

const NEW_PASSWORD = 'correct horse battery staple';

/** A real SMTP listener on the loopback address; `next()` resolves with the next mail's text. */
async function startMailbox() {
  const waiting = [];
  const received = [];
  const smtp = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    onData(stream, _session, done) {
      let text = '';
      stream.setEncoding('utf8');
      stream.on('data', (chunk) => (text += chunk));
      stream.on('end', () => {
        // Quoted-printable: soft line breaks and escapes.
        const mail = text.replace(/=\r?\n/g, '').replace(/=([0-9A-F]{2})/g, (_, hex) => String.fromCharCode(parseInt(hex, 16)));
        const resolve = waiting.shift();
        if (resolve) resolve(mail);
        else received.push(mail);
        done();
      });
    },
  });
  smtp.listen(0, '127.0.0.1');
  await once(smtp.server, 'listening');
  return {
    url: `smtp://127.0.0.1:${smtp.server.address().port}`,
    next: () =>
      received.length > 0
        ? Promise.resolve(received.shift())
        : new Promise((resolve, reject) => {
            waiting.push(resolve);
            setTimeout(() => reject(new Error('no mail within 10 s')), 10_000);
          }),
    close: () => new Promise((resolve) => smtp.close(resolve)),
  };
}

describe('accounts in the Tollgate client', () => {
  let browser;
  let server;
  let mailbox;

  before(async () => {
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
  });
  afterEach(async () => {
    await server?.stop();
    await mailbox?.close();
    server = undefined;
    mailbox = undefined;
  });

  it('signs up from the sign-in page and stays signed in', async () => {
    server = await startServer();
    const page = await (await newDevice(browser)).newPage();
    await page.goto(`${server.url}/login`);
    await page.getByRole('link', { name: 'Create an account' }).click();
    await page.waitForURL('**/signup');
    await page.getByLabel('Username').fill('katherine');
    await page.getByLabel('Email').fill('katherine@example.org');
    await page.getByLabel('First name').fill('Katherine');
    await page.getByLabel('Last name').fill('Johnson');
    await page.getByLabel('Password').fill('password');
    await page.getByRole('button', { name: 'Create account' }).click();
    await page.getByRole('alert').filter({ hasText: 'common' }).waitFor();
    await page.getByLabel('Password').fill(NEW_PASSWORD);
    await page.getByRole('button', { name: 'Create account' }).click();
    await page.waitForURL('**/profile');
    await page.getByRole('heading', { name: 'Katherine Johnson' }).waitFor();
    await page.reload();
    await page.getByRole('heading', { name: 'Katherine Johnson' }).waitFor();
    assert.equal(await page.getByRole('link', { name: 'Admin' }).count(), 0);
  });

  it('hides sign-up where the server keeps it closed', async () => {
    server = await startServer({ '--signup': 'closed' });
    const page = await (await newDevice(browser)).newPage();
    await page.goto(`${server.url}/login`);
    await page.getByRole('button', { name: 'Sign in' }).waitFor();
    assert.equal(await page.getByRole('link', { name: 'Create an account' }).count(), 0);
    await page.goto(`${server.url}/signup`);
    await page.getByText('Sign-up is closed').waitFor();
  });

  it('a password change signs the other browser out and keeps this one', async () => {
    server = await startServer();
    const here = await (await newDevice(browser)).newPage();
    const there = await (await newDevice(browser)).newPage();
    await signIn(here, server, 'user2');
    await signIn(there, server, 'user2');
    await here.getByLabel('Current password').fill('password');
    await here.getByLabel('New password', { exact: true }).fill(NEW_PASSWORD);
    await here.getByLabel('Repeat the new password').fill(NEW_PASSWORD);
    await here.getByRole('button', { name: 'Change password' }).click();
    await here.getByText('Your other devices are signed out').waitFor();

    // The other browser's next request is refused, its refresh too: back to the sign-in page.
    await there.getByRole('button', { name: 'Reload' }).click();
    await there.waitForURL('**/login');
    await here.getByRole('button', { name: 'Reload' }).click();
    await here.getByRole('cell', { name: 'Initech' }).waitFor();
    assert.match(here.url(), /\/profile$/);
    await signIn(there, server, 'user2', NEW_PASSWORD);
  });

  it('resets a forgotten password with the link from the mail', async () => {
    mailbox = await startMailbox();
    server = await startServer({ '--smtp-url': mailbox.url, '--public-url': '{url}' });
    const page = await (await newDevice(browser)).newPage();
    await page.goto(`${server.url}/login`);
    await page.getByRole('link', { name: 'Forgot your password?' }).click();
    await page.getByLabel('Email').fill('user3@example.com');
    await page.getByRole('button', { name: 'Send a link' }).click();
    await page.getByText('a link to choose a new password is on its way').waitFor();

    const mail = await mailbox.next();
    assert.match(mail, /^To: user3@example\.com/m);
    const link = mail.match(/http:\/\/127\.0\.0\.1:\d+\/reset-password\?token=[\w-]+/)?.[0];
    assert.ok(link, mail);
    await page.goto(link);
    await page.getByLabel('New password', { exact: true }).waitFor();
    // The token leaves the address bar (history, screen sharing) once the page has it.
    assert.match(page.url(), /\/reset-password$/);
    await page.getByLabel('New password', { exact: true }).fill(NEW_PASSWORD);
    await page.getByLabel('Repeat the new password').fill(NEW_PASSWORD);
    await page.getByRole('button', { name: 'Set password' }).click();
    await page.getByText('Your password is changed').waitFor();
    await signIn(page, server, 'user3', NEW_PASSWORD);

    // The link works once.
    const again = await (await newDevice(browser)).newPage();
    await again.goto(link);
    await again.getByLabel('New password', { exact: true }).fill('another fine passphrase');
    await again.getByLabel('Repeat the new password').fill('another fine passphrase');
    await again.getByRole('button', { name: 'Set password' }).click();
    await again.getByRole('alert').filter({ hasText: 'already used or expired' }).waitFor();
  });

  it('the admin page disables a user, who is signed out, and shows it in the audit log', async () => {
    server = await startServer();
    const user = await (await newDevice(browser)).newPage();
    await signIn(user, server, 'user2');
    // Not for everyone.
    assert.equal(await user.getByRole('link', { name: 'Admin' }).count(), 0);
    await user.goto(`${server.url}/admin`);
    await user.waitForURL((url) => url.pathname === '/');
    await user.goto(`${server.url}/profile`);
    await user.getByRole('cell', { name: 'Initech' }).waitFor();

    const admin = await (await newDevice(browser)).newPage();
    await signIn(admin, server, 'user1');
    await admin.getByRole('link', { name: 'Admin' }).click();
    await admin.waitForURL('**/admin');
    await admin.getByLabel('Search users').fill('turing');
    await admin.getByRole('button', { name: 'Search' }).click();
    await admin.locator('tr[data-username="user1"]').waitFor({ state: 'detached' });
    const row = admin.locator('tr[data-username="user2"]');
    assert.equal(await admin.locator('tbody tr[data-username]').count(), 1);
    await row.getByRole('button', { name: 'Disable' }).click();
    await row.getByText('Disabled').waitFor();
    await admin.getByText('user2 is disabled and signed out everywhere').waitFor();
    const audit = admin.getByRole('table', { name: 'Audit log' });
    await audit.getByRole('cell', { name: 'admin_disable_user' }).waitFor();

    await user.getByRole('button', { name: 'Reload' }).click();
    await user.waitForURL('**/login');
    await user.getByLabel('Username').fill('user2');
    await user.getByLabel('Password').fill('password');
    await user.getByRole('button', { name: 'Sign in' }).click();
    await user.getByText('Wrong username or password').waitFor();

    await row.getByRole('button', { name: 'Enable' }).click();
    await row.getByText('Active').waitFor();
    await row.getByRole('button', { name: 'Audit' }).click();
    await admin.getByText('for user2').waitFor();
    await audit.getByRole('cell', { name: 'admin_enable_user' }).waitFor();
    await audit.getByRole('cell', { name: 'failed' }).first().waitFor();
  });
});
