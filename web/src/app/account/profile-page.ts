import { DatePipe } from '@angular/common';
import { HttpClient } from '@angular/common/http';
import { ChangeDetectionStrategy, Component, computed, inject, OnInit, signal, viewChild } from '@angular/core';
import { firstValueFrom } from 'rxjs';
import { TollgateAuth, TollgateDevices } from 'tollgate-angular';

import { ChangePassword } from './change-password';
import { Job, Person } from './records';

@Component({
  selector: 'app-profile',
  imports: [ChangePassword, DatePipe, TollgateDevices],
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
    @if (person(); as user) {
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

        <tollgate-devices class="d-block mt-4" />

        <app-change-password class="d-block mt-4" (passwordChanged)="devices()?.reload()" />
      </section>
    }
  `,
})
export class ProfilePage implements OnInit {
  private readonly auth = inject(TollgateAuth);
  private readonly http = inject(HttpClient);
  protected readonly devices = viewChild(TollgateDevices);

  /** The signed-in user with the demo's profile fields. */
  protected readonly person = computed(() => this.auth.user() as Person | null);
  protected readonly jobs = signal<Job[]>([]);
  protected readonly loading = signal(false);
  protected readonly error = signal<string | null>(null);

  ngOnInit(): void {
    void this.load();
  }

  /** Jobs and devices in parallel: after expiry both fail with 401 and share one refresh. */
  protected async load(): Promise<void> {
    this.loading.set(true);
    this.error.set(null);
    try {
      const [jobs] = await Promise.all([
        firstValueFrom(this.http.get<Job[]>(this.auth.url('/api/job-list'))),
        this.devices()?.reload(),
      ]);
      this.jobs.set(jobs);
    } catch {
      this.error.set('Your data could not be loaded. Please try again.');
    } finally {
      this.loading.set(false);
    }
  }
}
