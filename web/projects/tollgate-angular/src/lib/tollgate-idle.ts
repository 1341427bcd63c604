import { DestroyRef, inject, Injectable, signal } from '@angular/core';

import { AuthState } from './auth-state';
import { TOLLGATE_CONFIG } from './config';
import { Session } from './session';

/** Shared by the tabs: the last activity in any of them. */
const LAST_ACTIVITY_KEY = 'tollgate.lastActivity';
/** Activity is written down at most this often. */
const RECORD_EVERY_MS = 1_000;
const CHECK_EVERY_MS = 1_000;
const ACTIVITY_EVENTS = ['pointerdown', 'pointermove', 'keydown', 'wheel', 'touchstart', 'scroll'] as const;

/**
 * The idle timeout (`withIdleTimeout`): activity in any tab counts; `warning()` turns true
 * before sign-out, which reaches every tab. Without the feature it never warns.
 */
@Injectable({ providedIn: 'root' })
export class TollgateIdle {
  private readonly idle = inject(TOLLGATE_CONFIG).idle;
  private readonly state = inject(AuthState);
  private readonly session = inject(Session);
  private lastRecorded = 0;
  /** A sign-out for inactivity is on its way: not another one each second. */
  private signingOut = false;
  private ticker: ReturnType<typeof setInterval> | undefined;

  /** Whether the user is about to be signed out for inactivity. */
  readonly warning = signal(false);
  /** Seconds left before the sign-out while warning. */
  readonly secondsLeft = signal(0);

  constructor() {
    // A sign-in is activity, whenever the last one was.
    const signIns = this.state.events.subscribe((event) => {
      if (event.type === 'signed-in') {
        this.recordActivity(true);
      }
    });
    inject(DestroyRef).onDestroy(() => {
      signIns.unsubscribe();
      this.stop();
    });
  }

  /** Starts watching; `provideTollgate` calls it once the session is restored. */
  start(): void {
    if (this.idle === null || this.ticker !== undefined) {
      return;
    }
    const onActivity = () => this.recordActivity();
    for (const event of ACTIVITY_EVENTS) {
      window.addEventListener(event, onActivity, { passive: true, capture: true });
    }
    this.ticker = setInterval(() => this.check(), CHECK_EVERY_MS);
    this.stopListening = () => {
      for (const event of ACTIVITY_EVENTS) {
        window.removeEventListener(event, onActivity, { capture: true });
      }
    };
    this.recordActivity(true);
  }

  /** The user is still there (any activity says so too): dismisses the warning in every tab. */
  stay(): void {
    this.recordActivity(true);
    this.check();
  }

  private stopListening: () => void = () => undefined;

  private stop(): void {
    clearInterval(this.ticker);
    this.ticker = undefined;
    this.stopListening();
  }

  private recordActivity(force = false): void {
    const now = Date.now();
    if (!force && now - this.lastRecorded < RECORD_EVERY_MS) {
      return;
    }
    this.lastRecorded = now;
    localStorage.setItem(LAST_ACTIVITY_KEY, String(now));
  }

  private check(): void {
    if (this.idle === null || this.state.user() === null || this.signingOut) {
      this.warning.set(false);
      return;
    }
    const last = Number(localStorage.getItem(LAST_ACTIVITY_KEY)) || this.lastRecorded;
    const left = last + this.idle.idleMs - Date.now();
    if (left <= 0) {
      this.warning.set(false);
      this.signingOut = true;
      this.session
        .logout('idle')
        .catch(() => undefined)
        .finally(() => (this.signingOut = false));
      return;
    }
    this.warning.set(left <= this.idle.warningMs);
    this.secondsLeft.set(Math.ceil(left / 1000));
  }
}
