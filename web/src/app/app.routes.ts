import { Routes } from '@angular/router';
import { authGuard } from 'tollgate-angular';

import { ProfilePage } from './account/profile-page';
import { LoginPage } from './auth/login-page';
import { HomePage } from './home/home-page';

export const routes: Routes = [
  { path: '', component: HomePage, title: 'Tollgate' },
  { path: 'login', component: LoginPage, title: 'Sign in · Tollgate' },
  { path: 'profile', component: ProfilePage, canActivate: [authGuard], title: 'Profile · Tollgate' },
  { path: '**', redirectTo: '' },
];
