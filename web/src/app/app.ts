import { ChangeDetectionStrategy, Component, inject } from '@angular/core';
import { RouterLink, RouterLinkActive, RouterOutlet } from '@angular/router';
import { TollgateAuth, TollgateIdle } from 'tollgate-angular';

@Component({
  selector: 'app-root',
  imports: [RouterOutlet, RouterLink, RouterLinkActive],
  templateUrl: './app.html',
  changeDetection: ChangeDetectionStrategy.OnPush,
})
export class App {
  protected readonly auth = inject(TollgateAuth);
  protected readonly idle = inject(TollgateIdle);

  protected logout(): void {
    this.auth.logout().catch(() => undefined);
  }
}
