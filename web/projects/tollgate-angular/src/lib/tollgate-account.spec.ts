import { HttpTestingController } from '@angular/common/http/testing';
import { TestBed } from '@angular/core/testing';

import { setUp, signIn, tokens, USER } from '../testing/setup';
import { TollgateAccount } from './tollgate-account';

describe('TollgateAccount', () => {
  afterEach(() => TestBed.inject(HttpTestingController).verify());

  it('signs up with the device details and is signed in at once', async () => {
    const { auth, backend } = setUp();
    const done = auth.register({ username: 'ada', password: 'a good passphrase', email: 'ada@example.org' });
    const register = backend.expectOne('/api/register');
    expect(register.request.body).toMatchObject({
      username: 'ada',
      password: 'a good passphrase',
      email: 'ada@example.org',
      useCookie: true,
    });
    expect(register.request.body.fingerprint).toMatch(/^[0-9a-f-]{36}$/);
    expect(register.request.headers.has('Authorization')).toBe(false);
    expect(register.request.withCredentials).toBe(true);
    register.flush({ user: { ...USER, username: 'ada' }, ...tokens('access-1') }, { status: 201, statusText: 'Created' });
    await done;
    expect(auth.user()?.username).toBe('ada');
    expect(auth.signedIn()).toBe(true);
  });

  it('a refused sign-up leaves the user signed out, with the server reason', async () => {
    const { auth, backend } = setUp();
    const done = auth.register({ username: 'ada', password: 'password', email: 'ada@example.org' });
    backend
      .expectOne('/api/register')
      .flush(
        { status: 400, detail: 'This password is one of the most common ones; choose another.' },
        { status: 400, statusText: 'Bad Request' },
      );
    await expect(done).rejects.toMatchObject({ status: 400, error: { detail: expect.stringContaining('common') } });
    expect(auth.signedIn()).toBe(false);
  });

  it('changes the password with the access token', async () => {
    const { auth, backend } = setUp();
    await signIn(auth, backend);
    const done = TestBed.inject(TollgateAccount).changePassword('old one', 'a new passphrase');
    const change = backend.expectOne('/api/password');
    expect(change.request.body).toEqual({ currentPassword: 'old one', newPassword: 'a new passphrase' });
    expect(change.request.headers.get('Authorization')).toBe('Bearer access-1');
    change.flush(null, { status: 204, statusText: 'No Content' });
    await done;
    expect(auth.signedIn()).toBe(true);
  });

  it('asks for reset mails and resets without a token, and reads the server settings', async () => {
    const { backend } = setUp();
    const account = TestBed.inject(TollgateAccount);
    const asked = account.requestPasswordReset('ada@example.org');
    const request = backend.expectOne('/api/password-reset');
    expect(request.request.body).toEqual({ email: 'ada@example.org' });
    expect(request.request.headers.has('Authorization')).toBe(false);
    request.flush(null, { status: 202, statusText: 'Accepted' });
    await asked;

    const reset = account.resetPassword('token-from-mail', 'a new passphrase');
    const confirm = backend.expectOne('/api/password-reset/confirm');
    expect(confirm.request.body).toEqual({ token: 'token-from-mail', newPassword: 'a new passphrase' });
    confirm.flush(null, { status: 204, statusText: 'No Content' });
    await reset;

    const settings = account.settings();
    backend.expectOne('/api/settings').flush({ signup: true, passwordReset: false });
    await expect(settings).resolves.toEqual({ signup: true, passwordReset: false });
  });
});
