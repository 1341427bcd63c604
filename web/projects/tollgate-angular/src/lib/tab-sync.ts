import { DestroyRef, inject, Injectable } from '@angular/core';

import { SignOutReason } from './models';

const LOCK_NAME = 'tollgate-refresh';
const CHANNEL_NAME = 'tollgate-auth';

export type TabMessage = { type: 'login' } | { type: 'logout'; reason: SignOutReason };

/**
 * What the tabs of this browser tell each other: sign-in and sign-out (BroadcastChannel), and
 * one refresh at a time among all of them (Web Locks).
 */
@Injectable({ providedIn: 'root' })
export class TabSync {
  private readonly channel =
    typeof BroadcastChannel === 'undefined' ? null : new BroadcastChannel(CHANNEL_NAME);

  constructor() {
    inject(DestroyRef).onDestroy(() => this.channel?.close());
  }

  /** Calls `listener` with every message another tab posts, until the returned function runs. */
  listen(listener: (message: TabMessage) => void): () => void {
    const onMessage = (event: MessageEvent<TabMessage>) => listener(event.data);
    this.channel?.addEventListener('message', onMessage);
    return () => this.channel?.removeEventListener('message', onMessage);
  }

  post(message: TabMessage): void {
    this.channel?.postMessage(message);
  }

  /** Runs `task` while no other tab runs one (where the browser has Web Locks). */
  exclusive<T>(task: () => Promise<T>): Promise<T> {
    const locks = typeof navigator === 'undefined' ? undefined : navigator.locks;
    // `request` resolves with what the callback returns once it settles.
    return locks ? (locks.request(LOCK_NAME, task) as Promise<T>) : task();
  }
}
