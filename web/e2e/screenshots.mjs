// Renders the pages for the README: `npm run screenshots` writes docs/*.png.
import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

import { launchBrowser, newDevice, signIn, startServer } from './support.mjs';

const docs = fileURLToPath(new URL('../../docs/', import.meta.url));
await mkdir(docs, { recursive: true });
const server = await startServer({ '--access-ttl': '15m' });
const browser = await launchBrowser();
try {
  const context = await newDevice(browser);
  const page = await context.newPage();
  await page.setViewportSize({ width: 1100, height: 760 });
  await page.goto(server.url);
  await page.getByRole('heading', { name: 'Tollgate' }).waitFor();
  await page.screenshot({ path: `${docs}home.png` });
  await page.goto(`${server.url}/login`);
  await page.getByLabel('Username').fill('user1');
  await page.getByLabel('Password').fill('wrong');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('alert').waitFor();
  await page.screenshot({ path: `${docs}login.png` });
  const phone = await (await newDevice(browser)).newPage();
  await signIn(phone, server);
  await signIn(page, server);
  await page.screenshot({ path: `${docs}profile.png`, fullPage: true });
} finally {
  await browser.close();
  await server.stop();
}
