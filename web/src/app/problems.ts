import { HttpErrorResponse } from '@angular/common/http';

/** What the server said went wrong (its RFC 9457 `detail`), or `fallback`. */
export function problemMessage(error: unknown, fallback: string): string {
  if (error instanceof HttpErrorResponse) {
    const detail = (error.error as { detail?: unknown } | null)?.detail;
    if (typeof detail === 'string' && detail) {
      return detail;
    }
    if (error.status === 0) {
      return 'The server cannot be reached. Check your connection and try again.';
    }
  }
  return fallback;
}
