import { DatePipe } from '@angular/common';
import { HttpClient, HttpParams } from '@angular/common/http';
import { ChangeDetectionStrategy, Component, inject, OnInit, signal } from '@angular/core';
import { FormsModule } from '@angular/forms';
import { firstValueFrom } from 'rxjs';
import { TollgateAuth } from 'tollgate-angular';

import { problemMessage } from '../problems';

/** A user as `GET /api/admin/users` returns it. */
interface AdminUser {
  id: string;
  username: string;
  email: string;
  first_name: string;
  last_name: string;
  roles: string[];
  disabled: boolean;
}

/** One audit event (`GET /api/admin/audit`). */
interface AuditEvent {
  id: number;
  at: string;
  event: string;
  outcome: string;
  userId: string | null;
  username: string | null;
  sessionId: string | null;
  ip: string | null;
  userAgent: string | null;
  actorId: string | null;
  detail: string | null;
}

interface Page<T> {
  next: T | null;
}

@Component({
  selector: 'app-admin',
  imports: [DatePipe, FormsModule],
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
    <section class="py-4">
      <h1 class="h3 mb-4">Administration</h1>
      @if (error(); as message) {
        <div class="alert alert-danger" role="alert">{{ message }}</div>
      }
      @if (notice(); as message) {
        <div class="alert alert-success" role="status">{{ message }}</div>
      }

      <h2 class="h5">Users</h2>
      <form class="d-flex gap-2 mb-3 col-md-8 col-lg-6" role="search" (ngSubmit)="search()">
        <label class="visually-hidden" for="user-search">Search users</label>
        <input id="user-search" class="form-control" type="search" name="query" placeholder="Name, username or email"
          [(ngModel)]="query" />
        <button class="btn btn-outline-secondary" type="submit">Search</button>
      </form>
      <div class="table-responsive">
        <table class="table align-middle">
          <thead>
            <tr>
              <th scope="col">Username</th>
              <th scope="col">Name</th>
              <th scope="col">Email</th>
              <th scope="col">Roles</th>
              <th scope="col">Status</th>
              <th scope="col"><span class="visually-hidden">Actions</span></th>
            </tr>
          </thead>
          <tbody>
            @for (user of users(); track user.id) {
              <tr [attr.data-username]="user.username">
                <td>{{ user.username }}</td>
                <td>{{ user.first_name }} {{ user.last_name }}</td>
                <td>{{ user.email }}</td>
                <td>
                  <form class="d-flex gap-1" (ngSubmit)="saveRoles(user, roles.value)">
                    <label class="visually-hidden" [for]="'roles-' + user.id">Roles of {{ user.username }}</label>
                    <input #roles class="form-control form-control-sm" [id]="'roles-' + user.id"
                      [value]="user.roles.join(', ')" />
                    <button class="btn btn-sm btn-outline-primary" type="submit">Save</button>
                  </form>
                </td>
                <td>
                  @if (user.disabled) {
                    <span class="badge text-bg-danger">Disabled</span>
                  } @else {
                    <span class="badge text-bg-success">Active</span>
                  }
                </td>
                <td class="text-nowrap">
                  @if (user.id !== auth.user()?.id) {
                    <button class="btn btn-sm btn-outline-danger me-1" type="button"
                      (click)="setDisabled(user, !user.disabled)">{{ user.disabled ? 'Enable' : 'Disable' }}</button>
                  }
                  <button class="btn btn-sm btn-outline-secondary me-1" type="button" (click)="endSessions(user)">
                    End sessions
                  </button>
                  <button class="btn btn-sm btn-outline-secondary" type="button" (click)="showAudit(user)">Audit</button>
                </td>
              </tr>
            } @empty {
              <tr><td colspan="6" class="text-body-secondary">No users found.</td></tr>
            }
          </tbody>
        </table>
      </div>
      @if (nextUsers()) {
        <button class="btn btn-sm btn-outline-secondary" type="button" (click)="loadUsers(true)">More users</button>
      }

      <h2 class="h5 mt-5">
        Audit log
        @if (auditUser(); as user) {
          <small class="text-body-secondary">for {{ user.username }}</small>
          <button class="btn btn-sm btn-link" type="button" (click)="showAudit(null)">Show everyone</button>
        }
      </h2>
      <div class="table-responsive">
        <table class="table table-sm table-striped align-middle small" aria-label="Audit log">
          <thead>
            <tr>
              <th scope="col">Time</th>
              <th scope="col">Event</th>
              <th scope="col">Outcome</th>
              <th scope="col">User</th>
              <th scope="col">IP</th>
              <th scope="col">Detail</th>
            </tr>
          </thead>
          <tbody>
            @for (event of events(); track event.id) {
              <tr>
                <td class="text-nowrap">{{ event.at | date: 'medium' }}</td>
                <td>{{ event.event }}</td>
                <td>{{ event.outcome }}</td>
                <td>{{ event.username ?? event.userId }}</td>
                <td>{{ event.ip }}</td>
                <td>{{ event.detail }}</td>
              </tr>
            } @empty {
              <tr><td colspan="6" class="text-body-secondary">No events.</td></tr>
            }
          </tbody>
        </table>
      </div>
      @if (nextEvents() !== null) {
        <button class="btn btn-sm btn-outline-secondary" type="button" (click)="loadAudit(true)">Older events</button>
      }
    </section>
  `,
})
export class AdminPage implements OnInit {
  protected readonly auth = inject(TollgateAuth);
  private readonly http = inject(HttpClient);

  protected query = '';
  protected readonly users = signal<AdminUser[]>([]);
  protected readonly nextUsers = signal<string | null>(null);
  protected readonly events = signal<AuditEvent[]>([]);
  protected readonly nextEvents = signal<number | null>(null);
  protected readonly auditUser = signal<AdminUser | null>(null);
  protected readonly error = signal<string | null>(null);
  protected readonly notice = signal<string | null>(null);

  ngOnInit(): void {
    void this.loadUsers(false);
    void this.loadAudit(false);
  }

  protected search(): void {
    void this.loadUsers(false);
  }

  protected async loadUsers(more: boolean): Promise<void> {
    let params = new HttpParams().set('query', this.query.trim());
    const after = this.nextUsers();
    if (more && after) {
      params = params.set('after', after);
    }
    await this.run(async () => {
      const page = await firstValueFrom(
        this.http.get<Page<string> & { users: AdminUser[] }>(this.auth.url('/api/admin/users'), { params }),
      );
      this.users.update((users) => (more ? [...users, ...page.users] : page.users));
      this.nextUsers.set(page.next);
    });
  }

  protected async loadAudit(more: boolean): Promise<void> {
    let params = new HttpParams();
    const user = this.auditUser();
    if (user) {
      params = params.set('user', user.id);
    }
    const before = this.nextEvents();
    if (more && before !== null) {
      params = params.set('before', before);
    }
    await this.run(async () => {
      const page = await firstValueFrom(
        this.http.get<Page<number> & { events: AuditEvent[] }>(this.auth.url('/api/admin/audit'), { params }),
      );
      this.events.update((events) => (more ? [...events, ...page.events] : page.events));
      this.nextEvents.set(page.next);
    });
  }

  protected showAudit(user: AdminUser | null): void {
    this.auditUser.set(user);
    void this.loadAudit(false);
  }

  protected saveRoles(user: AdminUser, text: string): Promise<void> {
    const roles = text
      .split(',')
      .map((role) => role.trim())
      .filter((role) => role !== '');
    return this.update(user, { roles }, `Roles of ${user.username} saved.`);
  }

  protected setDisabled(user: AdminUser, disabled: boolean): Promise<void> {
    const notice = disabled ? `${user.username} is disabled and signed out everywhere.` : `${user.username} is enabled.`;
    return this.update(user, { disabled }, notice);
  }

  protected endSessions(user: AdminUser): Promise<void> {
    return this.run(async () => {
      await firstValueFrom(this.http.delete<void>(this.auth.url(`/api/admin/users/${user.id}/sessions`)));
      this.notice.set(`${user.username} is signed out everywhere.`);
      await this.loadAudit(false);
    });
  }

  private update(user: AdminUser, changes: Partial<AdminUser>, notice: string): Promise<void> {
    return this.run(async () => {
      const updated = await firstValueFrom(
        this.http.patch<AdminUser>(this.auth.url(`/api/admin/users/${user.id}`), changes),
      );
      this.users.update((users) => users.map((each) => (each.id === updated.id ? updated : each)));
      this.notice.set(notice);
      await this.loadAudit(false);
    });
  }

  /** Runs `action`, showing the server's reason if it fails. */
  private async run(action: () => Promise<void>): Promise<void> {
    this.error.set(null);
    try {
      await action();
    } catch (error) {
      this.notice.set(null);
      this.error.set(problemMessage(error, 'That did not work. Please try again.'));
    }
  }
}
