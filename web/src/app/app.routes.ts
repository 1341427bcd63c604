import { Routes } from '@angular/router';
import { authGuard, roleGuard } from 'tollgate-angular';

import { ProfilePage } from './account/profile-page';
import { AdminPage } from './admin/admin-page';
import { ForgotPasswordPage } from './auth/forgot-password-page';
import { LoginPage } from './auth/login-page';
import { ResetPasswordPage } from './auth/reset-password-page';
import { SignupPage } from './auth/signup-page';
import { HomePage } from './home/home-page';

export const routes: Routes = [
  { path: '', component: HomePage, title: 'Tollgate' },
  { path: 'login', component: LoginPage, title: 'Sign in · Tollgate' },
  { path: 'signup', component: SignupPage, title: 'Create an account · Tollgate' },
  { path: 'forgot-password', component: ForgotPasswordPage, title: 'Forgot password · Tollgate' },
  { path: 'reset-password', component: ResetPasswordPage, title: 'New password · Tollgate' },
  { path: 'profile', component: ProfilePage, canActivate: [authGuard], title: 'Profile · Tollgate' },
  { path: 'admin', component: AdminPage, canActivate: [roleGuard('admin')], title: 'Administration · Tollgate' },
  { path: '**', redirectTo: '' },
];
