/** Revocations in one page of the feed at most: a full page means more follow at once. */
const FEED_PAGE = 1000;

interface FeedPage {
  revoked: { sid: string; revokedAt: string }[];
  cursor: string;
}

/** The sessions revoked recently, read from Tollgate's revocation feed. */
export class RevocationFeed {
  private readonly revoked = new Map<string, number>();
  private cursor: string | null = null;
  private caughtUpAt: number | null = null;

  constructor(
    private readonly url: string,
    private readonly timeoutMs: number,
  ) {}

  has(sid: string): boolean {
    return this.revoked.has(sid);
  }

  get size(): number {
    return this.revoked.size;
  }

  /** Milliseconds since every revocation had been read; `null` before the first time. */
  staleness(): number | null {
    return this.caughtUpAt === null ? null : Date.now() - this.caughtUpAt;
  }

  /** Reads every revocation after the cursor. */
  async catchUp(): Promise<void> {
    for (;;) {
      const url = new URL(this.url);
      if (this.cursor !== null) url.searchParams.set('after', this.cursor);
      const response = await fetch(url, { signal: AbortSignal.timeout(this.timeoutMs) });
      if (response.status === 400) {
        // A cursor the server no longer takes: start again from everything relevant.
        this.cursor = null;
      }
      if (!response.ok) throw new Error(`${this.url} answered ${response.status}`);
      const page = (await response.json()) as FeedPage;
      if (!Array.isArray(page?.revoked) || typeof page.cursor !== 'string') {
        throw new Error(`${this.url} gave no revocation page`);
      }
      for (const { sid, revokedAt } of page.revoked) {
        const at = Date.parse(revokedAt);
        if (typeof sid === 'string' && Number.isFinite(at)) this.revoked.set(sid, at);
      }
      this.cursor = page.cursor;
      if (page.revoked.length < FEED_PAGE) {
        this.caughtUpAt = Date.now();
        return;
      }
    }
  }

  /** Forgets revocations made before `oldest` (Unix ms), whose tokens have all expired. */
  prune(oldest: number): void {
    for (const [sid, at] of this.revoked) {
      if (at < oldest) this.revoked.delete(sid);
    }
  }
}
