import { Routes } from '@angular/router';

import { authGuard } from './core/auth.guard';
import { HomePage } from './pages/home';
import { LoginPage } from './pages/login';
import { ProfilePage } from './pages/profile';

export const routes: Routes = [
  { path: '', component: HomePage, title: 'Tollgate' },
  { path: 'login', component: LoginPage, title: 'Sign in · Tollgate' },
  { path: 'profile', component: ProfilePage, canActivate: [authGuard], title: 'Profile · Tollgate' },
  { path: '**', redirectTo: '' },
];
