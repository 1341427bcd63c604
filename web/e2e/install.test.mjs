// The library installs like any npm package: `npm pack` of the built library, a new Angular 21
// application made offline with the CLI in web/node_modules, the tarball installed into it,
// `provideTollgate(...)` added, built, served by a real `tollgate demo`, and used in Chromium:
// sign in, reload, and an expired access token refreshed without the user noticing.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';

import { countApiCalls, launchBrowser, newDevice, PAST_EXPIRY_MS, sleep, startServer } from './support.mjs';

const web = fileURLToPath(new URL('..', import.meta.url));
const library = join(web, 'dist/tollgate-angular');

/** What an app adds to use Tollgate: its providers, and a component that signs in. */
const APP_CONFIG = `import { provideHttpClient, withInterceptors } from '@angular/common/http';
import { ApplicationConfig, provideBrowserGlobalErrorListeners } from '@angular/core';
import { provideRouter } from '@angular/router';
import { provideTollgate, tollgateInterceptor, withRefreshAhead } from 'tollgate-angular';

import { routes } from './app.routes';

export const appConfig: ApplicationConfig = {
  providers: [
    provideBrowserGlobalErrorListeners(),
    provideRouter(routes),
    provideHttpClient(withInterceptors([tollgateInterceptor])),
    provideTollgate({ apiUrl: '' }, withRefreshAhead()),
  ],
};
`;

const APP = `import { HttpClient } from '@angular/common/http';
import { Component, inject, signal } from '@angular/core';
import { firstValueFrom } from 'rxjs';
import { TollgateAuth } from 'tollgate-angular';

@Component({
  selector: 'app-root',
  templateUrl: './app.html',
})
export class App {
  protected readonly auth = inject(TollgateAuth);
  private readonly http = inject(HttpClient);
  protected readonly me = signal('');

  protected async signIn(username: string, password: string): Promise<void> {
    await this.auth.login(username, password);
  }

  protected async whoAmI(): Promise<void> {
    const user = await firstValueFrom(this.http.get<{ username: string }>('/api/current-user'));
    this.me.set(user.username);
  }
}
`;

const APP_HTML = `@if (auth.user(); as user) {
  <p>Signed in as {{ user.username }}</p>
  <button type="button" (click)="whoAmI()">Who am I</button>
  <output>{{ me() }}</output>
} @else {
  <label>Username <input #username /></label>
  <label>Password <input #password type="password" /></label>
  <button type="button" (click)="signIn(username.value, password.value)">Sign in</button>
}
`;

function run(command, args, cwd) {
  return execFileSync(command, args, { cwd, encoding: 'utf8', env: { ...process.env, NG_CLI_ANALYTICS: 'false' } });
}

/** Prints what the new app changed (`git diff --no-index` exits 1 when there is something). */
function showDifference(args) {
  try {
    run('git', ['diff', '--no-index', ...args], tmpdir());
  } catch (difference) {
    console.log(`What the new app needed:\n${difference.stdout}`);
  }
}

describe('the Angular library installed into a new application', () => {
  let scratch;
  let browser;
  let server;

  before(async () => {
    assert.ok(existsSync(join(library, 'package.json')), 'build the library first (make web)');
    scratch = mkdtempSync(join(tmpdir(), 'tollgate-install-'));
    // The packages the new app needs, offline: those of web/ (the CLI, Angular, …), linked.
    const modules = join(scratch, 'node_modules');
    mkdirSync(modules);
    for (const entry of readdirSync(join(web, 'node_modules'))) {
      symlinkSync(join(web, 'node_modules', entry), join(modules, entry));
    }
    browser = await launchBrowser();
  });

  after(async () => {
    await server?.stop();
    await browser?.close();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  it('builds and signs in, reloads and refreshes against a real tollgate', { timeout: 600_000 }, async () => {
    const tarball = run('npm', ['pack', library, '--pack-destination', scratch, '--silent'], web).trim().split('\n').pop();
    console.log(`${tarball}: ${statSync(join(scratch, tarball)).size} bytes`);
    const installed = join(scratch, 'node_modules/tollgate-angular');
    mkdirSync(installed);
    run('tar', ['-xzf', join(scratch, tarball), '-C', installed, '--strip-components=1'], scratch);

    // `ng new` refuses to run from inside a workspace, which it looks for beside the CLI too:
    // through the links, with Node keeping their paths, the CLI sits in the scratch folder.
    const ng = join(scratch, 'node_modules/@angular/cli/bin/ng.js');
    run('node', ['--preserve-symlinks', '--preserve-symlinks-main', ng, 'new', 'shop', '--defaults', '--skip-install', '--skip-git'], scratch);
    const shop = join(scratch, 'shop');
    cpSync(join(shop, 'src'), join(scratch, 'generated-src'), { recursive: true });
    writeFileSync(join(shop, 'src/app/app.config.ts'), APP_CONFIG);
    writeFileSync(join(shop, 'src/app/app.ts'), APP);
    writeFileSync(join(shop, 'src/app/app.html'), APP_HTML);
    rmSync(join(shop, 'src/app/app.spec.ts'));
    rmSync(join(shop, 'src/app/app.css'));
    const generated = join(scratch, 'generated-src');
    showDifference(['--stat', generated, join(shop, 'src')]);
    showDifference([join(generated, 'app/app.config.ts'), join(shop, 'src/app/app.config.ts')]);
    run('node', [ng, 'build'], shop);

    server = await startServer({ '--web-dir': join(shop, 'dist/shop/browser') });
    const page = await (await newDevice(browser)).newPage();
    const calls = countApiCalls(page);
    await page.goto(server.url);
    await page.getByLabel('Username').fill('user1');
    await page.getByLabel('Password').fill('password');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByText('Signed in as user1').waitFor();

    // A reload restores the session from the HttpOnly cookie.
    await page.reload();
    await page.getByText('Signed in as user1').waitFor();
    assert.ok(calls.get('200 /api/refresh-token') >= 1, JSON.stringify(calls.all()));

    // Past the access token's lifetime the call still succeeds: refreshed ahead or on the 401.
    calls.reset();
    await sleep(PAST_EXPIRY_MS);
    await page.getByRole('button', { name: 'Who am I' }).click();
    await page.locator('output', { hasText: 'user1' }).waitFor();
    assert.ok(calls.get('200 /api/refresh-token') >= 1, JSON.stringify(calls.all()));
    assert.equal(calls.get('403 /api/refresh-token'), 0);
  });
});
