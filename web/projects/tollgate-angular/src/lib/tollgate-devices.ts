import { DatePipe } from '@angular/common';
import { HttpClient } from '@angular/common/http';
import { ChangeDetectionStrategy, Component, inject, OnInit, signal } from '@angular/core';
import { firstValueFrom } from 'rxjs';

import { TollgateSession } from './models';
import { TollgateAuth } from './tollgate-auth';
import { describeUserAgent } from './user-agent';

/**
 * The user's signed-in devices: each can be signed out, or all at once. Bootstrap classes;
 * style it with your own by targeting `tollgate-devices`.
 */
@Component({
  selector: 'tollgate-devices',
  imports: [DatePipe],
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
    <section aria-labelledby="tollgate-devices-heading">
      <div class="d-flex flex-wrap align-items-center gap-2 mb-2">
        <h2 id="tollgate-devices-heading" class="h5 mb-0 me-auto">Devices</h2>
        <button class="btn btn-outline-danger btn-sm" type="button" (click)="signOutEverywhere()">
          Sign out everywhere
        </button>
      </div>
      @if (error(); as message) {
        <div class="alert alert-warning" role="alert">{{ message }}</div>
      }
      <ul class="list-group">
        @for (session of sessions(); track session.id) {
          <li class="list-group-item d-flex flex-wrap align-items-center gap-2" data-testid="device">
            <div class="me-auto">
              <div class="fw-semibold">
                {{ describe(session.userAgent) }}
                @if (session.current) {
                  <span class="badge text-bg-success ms-1">this device</span>
                }
              </div>
              <div class="small text-body-secondary">
                {{ session.ip ?? 'unknown IP' }} · last used {{ session.lastUsedAt | date: 'medium' }}
              </div>
            </div>
            @if (!session.current) {
              <button class="btn btn-outline-secondary btn-sm" type="button" (click)="revoke(session)">
                Revoke
              </button>
            }
          </li>
        }
      </ul>
    </section>
  `,
})
export class TollgateDevices implements OnInit {
  private readonly auth = inject(TollgateAuth);
  private readonly http = inject(HttpClient);

  protected readonly sessions = signal<TollgateSession[]>([]);
  protected readonly error = signal<string | null>(null);
  protected readonly describe = describeUserAgent;

  ngOnInit(): void {
    void this.reload();
  }

  /** Reads the devices again. */
  async reload(): Promise<void> {
    try {
      this.sessions.set(await firstValueFrom(this.http.get<TollgateSession[]>(this.auth.url('/api/sessions'))));
      this.error.set(null);
    } catch {
      this.error.set('Your devices could not be loaded. Please try again.');
    }
  }

  protected async revoke(session: TollgateSession): Promise<void> {
    try {
      await firstValueFrom(this.http.delete<void>(this.auth.url(`/api/sessions/${session.id}`)));
      this.sessions.update((sessions) => sessions.filter((s) => s.id !== session.id));
    } catch {
      this.error.set('That device could not be signed out. Please try again.');
    }
  }

  protected async signOutEverywhere(): Promise<void> {
    try {
      await this.auth.signOutEverywhere();
    } catch {
      this.error.set('Signing out everywhere failed. Please try again.');
    }
  }
}
