import { DestroyRef, inject, Injectable } from '@angular/core';

import { AuthState } from './auth-state';
import { TOLLGATE_CONFIG } from './config';

/**
 * When to refresh ahead of expiry: a timer for the visible tab, again when a hidden tab is
 * shown, and when the browser comes back online. Calls `onDue` when a refresh is due.
 */
@Injectable({ providedIn: 'root' })
export class RefreshScheduler {
  private readonly margin = inject(TOLLGATE_CONFIG).refreshAheadMs;
  private readonly state = inject(AuthState);
  private timer: ReturnType<typeof setTimeout> | undefined;
  private onDue: () => void = () => undefined;

  constructor() {
    const check = () => this.checkNow();
    document.addEventListener('visibilitychange', check);
    window.addEventListener('online', check);
    inject(DestroyRef).onDestroy(() => {
      clearTimeout(this.timer);
      document.removeEventListener('visibilitychange', check);
      window.removeEventListener('online', check);
    });
  }

  /** Sets what runs when a refresh is due. */
  start(onDue: () => void): void {
    this.onDue = onDue;
  }

  /** Plans the next refresh for the token held now. */
  schedule(): void {
    clearTimeout(this.timer);
    if (this.margin === null || this.state.accessToken() === null) {
      return;
    }
    const due = this.state.expiresAt() - this.leadTime() - Date.now();
    this.timer = setTimeout(() => this.checkNow(), Math.max(due, 0));
  }

  stop(): void {
    clearTimeout(this.timer);
  }

  /** Refreshes a visible tab whose token is about to expire; hidden tabs wait until shown. */
  private checkNow(): void {
    if (this.margin === null || this.state.accessToken() === null || document.visibilityState !== 'visible') {
      return;
    }
    if (this.state.expiresAt() - Date.now() <= this.margin) {
      this.onDue();
    } else {
      this.schedule();
    }
  }

  /** How long before expiry to refresh: the margin, at most a fifth of the remaining lifetime. */
  private leadTime(): number {
    const remaining = Math.max(this.state.expiresAt() - Date.now(), 0);
    return Math.min(this.margin ?? 0, remaining / 5);
  }
}
