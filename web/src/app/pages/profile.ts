import { DatePipe } from '@angular/common';
import { HttpClient } from '@angular/common/http';
import { ChangeDetectionStrategy, Component, inject, OnInit, signal } from '@angular/core';
import { firstValueFrom, forkJoin } from 'rxjs';

import { AuthService } from '../core/auth.service';
import { describeUserAgent } from '../core/devices';
import { Job, Session } from '../core/models';

@Component({
  selector: 'app-profile',
  imports: [DatePipe],
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
    @if (auth.user(); as user) {
      <section class="py-4">
        <div class="d-flex flex-wrap align-items-center gap-3 mb-4">
          <h1 class="h3 mb-0 me-auto">{{ user.first_name }} {{ user.last_name }}</h1>
          <button class="btn btn-outline-secondary btn-sm" type="button" (click)="load()" [disabled]="loading()">
            Reload
          </button>
        </div>
        <dl class="row">
          <dt class="col-sm-3">Email</dt>
          <dd class="col-sm-9">{{ user.email }}</dd>
          <dt class="col-sm-3">City</dt>
          <dd class="col-sm-9">{{ user.city }}</dd>
          <dt class="col-sm-3">Phone</dt>
          <dd class="col-sm-9">{{ user.phone }}</dd>
        </dl>

        @if (error(); as message) {
          <div class="alert alert-warning" role="alert">{{ message }}</div>
        }

        <h2 class="h5 mt-4">Jobs</h2>
        @if (loading() && jobs().length === 0) {
          <p class="text-body-secondary" aria-live="polite">Loading…</p>
        } @else {
          <div class="table-responsive">
            <table class="table table-striped align-middle">
              <thead>
                <tr>
                  <th scope="col">Company</th>
                  <th scope="col">Department</th>
                  <th scope="col">Title</th>
                  <th scope="col">EIN</th>
                  <th scope="col">From</th>
                  <th scope="col">To</th>
                </tr>
              </thead>
              <tbody>
                @for (job of jobs(); track job.id) {
                  <tr>
                    <td>{{ job.company_name }}</td>
                    <td>{{ job.department }}</td>
                    <td>{{ job.title }}</td>
                    <td>{{ job.ein }}</td>
                    <td>{{ job.first_date | date: 'mediumDate' }}</td>
                    <td>{{ job.last_date | date: 'mediumDate' }}</td>
                  </tr>
                } @empty {
                  <tr><td colspan="6" class="text-body-secondary">No jobs yet.</td></tr>
                }
              </tbody>
            </table>
          </div>
        }

        <section aria-labelledby="devices-heading" class="mt-4">
          <div class="d-flex flex-wrap align-items-center gap-2 mb-2">
            <h2 id="devices-heading" class="h5 mb-0 me-auto">Devices</h2>
            <button class="btn btn-outline-danger btn-sm" type="button" (click)="signOutEverywhere()">
              Sign out everywhere
            </button>
          </div>
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
      </section>
    }
  `,
})
export class ProfilePage implements OnInit {
  protected readonly auth = inject(AuthService);
  private readonly http = inject(HttpClient);

  protected readonly jobs = signal<Job[]>([]);
  protected readonly sessions = signal<Session[]>([]);
  protected readonly loading = signal(false);
  protected readonly error = signal<string | null>(null);
  protected readonly describe = describeUserAgent;

  ngOnInit(): void {
    void this.load();
  }

  /** Jobs and devices in parallel: after expiry both fail with 401 and share one refresh. */
  async load(): Promise<void> {
    this.loading.set(true);
    this.error.set(null);
    try {
      const { jobs, sessions } = await firstValueFrom(
        forkJoin({
          jobs: this.http.get<Job[]>(this.auth.url('/api/job-list')),
          sessions: this.http.get<Session[]>(this.auth.url('/api/sessions')),
        }),
      );
      this.jobs.set(jobs);
      this.sessions.set(sessions);
    } catch {
      this.error.set('Your data could not be loaded. Please try again.');
    } finally {
      this.loading.set(false);
    }
  }

  async revoke(session: Session): Promise<void> {
    try {
      await firstValueFrom(this.http.delete<void>(this.auth.url(`/api/sessions/${session.id}`)));
      this.sessions.update((sessions) => sessions.filter((s) => s.id !== session.id));
    } catch {
      this.error.set('That device could not be signed out. Please try again.');
    }
  }

  async signOutEverywhere(): Promise<void> {
    try {
      await this.auth.signOutEverywhere();
    } catch {
      this.error.set('Signing out everywhere failed. Please try again.');
    }
  }
}
