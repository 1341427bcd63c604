//! Sessions revoked recently, so that their access tokens are refused before they expire
//! (docs/api.md, "Revocation"). Every instance holds those revoked within the last access
//! lifetime in memory and follows the store for the ones revoked elsewhere.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tollgate_verify::RevokedSessions;
use uuid::Uuid;

use crate::store::{RevocationCursor, Store, StoreResult};

/// Revocations in one page of the feed at most (the contract's figure, which verifiers know).
pub const FEED_PAGE: u32 = tollgate_verify::FEED_PAGE as u32;
/// How far back each read of the feed looks again once it has caught up, so that a revocation
/// committed after later ones were read is still seen: longer than a write can wait for its
/// connection and its statement (`db_timeout` each; SQLite's writer waits 30 s at least), and
/// than instances' clocks may differ (10 s).
pub fn feed_overlap(db_timeout: Duration) -> Duration {
    Duration::from_secs(10) + 2 * db_timeout.max(Duration::from_secs(30))
}
/// How long past the access lifetime a revocation is kept: clocks of instances and resource
/// servers differ a little.
const CLOCK_MARGIN: Duration = Duration::from_secs(60);

/// One page of the revocation feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationPage {
    /// Session ids and when they were revoked, oldest first.
    pub revoked: Vec<(Uuid, OffsetDateTime)>,
    /// Where the next read continues.
    pub next: RevocationCursor,
}

impl RevocationPage {
    /// Whether more revocations follow at once (the page is full).
    pub fn is_full(&self) -> bool {
        self.revoked.len() >= FEED_PAGE as usize
    }
}

/// The revocations after `after` (from the oldest still relevant without one), and where to
/// continue: after the last one while pages are full, then `overlap` before the end
/// (`feed_overlap`), so that late commits are read too. Readers may see one twice.
pub async fn revocation_page(
    store: &dyn Store,
    after: Option<RevocationCursor>,
    now: OffsetDateTime,
    keep_for: Duration,
    overlap: Duration,
) -> StoreResult<RevocationPage> {
    let oldest = RevocationCursor {
        revoked_at: now - keep_for,
        sid: Uuid::nil(),
    };
    let after = after.map_or(oldest, |after| after.max(oldest));
    let revoked = store.revoked_sessions(after, FEED_PAGE).await?;
    let last = revoked
        .last()
        .map_or(after, |&(sid, revoked_at)| RevocationCursor {
            revoked_at,
            sid,
        });
    let next = if revoked.len() >= FEED_PAGE as usize {
        last
    } else {
        let overlap = RevocationCursor {
            revoked_at: now - overlap,
            sid: Uuid::nil(),
        };
        last.min(overlap).max(oldest)
    };
    Ok(RevocationPage { revoked, next })
}

/// What this instance knows of recent revocations.
pub struct Revocations {
    /// How long a revocation matters: the access lifetime, and a margin.
    keep_for: Duration,
    /// How far each catch-up looks back (`feed_overlap`).
    overlap: Duration,
    /// The verifier's set: what is added here is refused from the next request.
    revoked: Arc<RevokedSessions>,
    /// Where the next catch-up continues. Held while one runs, so that they do not overlap.
    cursor: tokio::sync::Mutex<Option<RevocationCursor>>,
}

impl Revocations {
    pub fn new(
        access_lifetime: Duration,
        overlap: Duration,
        revoked: Arc<RevokedSessions>,
    ) -> Revocations {
        Revocations {
            keep_for: access_lifetime + CLOCK_MARGIN,
            overlap,
            revoked,
            cursor: tokio::sync::Mutex::new(None),
        }
    }

    /// How long revocations are kept, here and in the store.
    pub fn keep_for(&self) -> Duration {
        self.keep_for
    }

    /// One page of the feed after `after`, as this instance keeps and reads it.
    pub async fn page(
        &self,
        store: &dyn Store,
        after: Option<RevocationCursor>,
        now: OffsetDateTime,
    ) -> StoreResult<RevocationPage> {
        revocation_page(store, after, now, self.keep_for, self.overlap).await
    }

    /// Records a revocation made by this instance, at once.
    pub fn insert(&self, sid: Uuid, revoked_at: OffsetDateTime) {
        self.revoked.insert(sid, revoked_at);
    }

    /// Reads the revocations the store holds beyond what this instance has seen.
    pub async fn catch_up(&self, store: &dyn Store) -> StoreResult<()> {
        let mut cursor = self.cursor.lock().await;
        // First, so that the set shrinks even while the store does not answer.
        self.prune();
        loop {
            let now = OffsetDateTime::now_utc();
            let page = self.page(store, *cursor, now).await?;
            self.revoked.extend(page.revoked.iter().copied());
            *cursor = Some(page.next);
            if !page.is_full() {
                self.revoked.mark_caught_up();
                return Ok(());
            }
        }
    }

    /// How long ago this instance last read every revocation the store held; None before the
    /// first time.
    pub fn staleness(&self) -> Option<Duration> {
        self.revoked.staleness()
    }

    /// Forgets revocations whose access tokens are all dead, whether or not the store answers.
    fn prune(&self) {
        let held = self
            .revoked
            .prune(OffsetDateTime::now_utc() - self.keep_for);
        metrics::gauge!("tollgate_revoked_sessions_held").set(held as f64);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::testing::{add_user, live_session, temp_store};
    use crate::store::{Session, StoreOptions};

    /// A store holding sessions of one user, each revoked `ago`.
    async fn store_with_revocations(ago: &[Duration]) -> (Arc<dyn Store>, Vec<Uuid>) {
        let options = StoreOptions {
            durable_commits: false,
            ..StoreOptions::default()
        };
        let store = temp_store(&options).await;
        let user = add_user(store.as_ref(), "feed").await;
        let now = OffsetDateTime::now_utc();
        let mut ids = Vec::new();
        for &ago in ago {
            let session = Session {
                revoked_at: Some(now - ago),
                ..live_session(user.id, now - Duration::from_secs(1800))
            };
            store
                .create_session(&session, now, &|_| Vec::new(), None)
                .await
                .expect("session");
            ids.push(session.id);
        }
        (store, ids)
    }

    #[tokio::test]
    async fn the_feed_starts_at_the_oldest_relevant_revocation_and_looks_back_once_caught_up() {
        let minute = Duration::from_secs(60);
        let ago = [
            20 * minute,
            5 * minute,
            Duration::from_secs(30),
            Duration::from_secs(1),
        ];
        let (store, ids) = store_with_revocations(&ago).await;
        let now = OffsetDateTime::now_utc();
        let (keep_for, overlap) = (16 * minute, feed_overlap(Duration::from_secs(5)));
        let first = revocation_page(store.as_ref(), None, now, keep_for, overlap)
            .await
            .expect("page");
        let named: Vec<Uuid> = first.revoked.iter().map(|(sid, _)| *sid).collect();
        assert_eq!(
            named,
            ids[1..],
            "oldest first, none older than the access lifetime"
        );
        assert!(!first.is_full());
        // Caught up: the next read starts `overlap` back and names the recent ones again.
        assert_eq!(first.next.revoked_at, now - overlap);
        let again = revocation_page(store.as_ref(), Some(first.next), now, keep_for, overlap)
            .await
            .expect("page");
        let named: Vec<Uuid> = again.revoked.iter().map(|(sid, _)| *sid).collect();
        assert_eq!(named, ids[2..]);
        // A cursor past everything reads nothing, and the next one looks back again.
        let beyond = RevocationCursor {
            revoked_at: now + minute,
            sid: Uuid::nil(),
        };
        let none = revocation_page(store.as_ref(), Some(beyond), now, keep_for, overlap)
            .await
            .expect("page");
        assert!(none.revoked.is_empty());
        assert_eq!(none.next.revoked_at, now - overlap);
        store.close().await;
    }

    #[tokio::test]
    async fn an_instance_holds_what_it_read_and_forgets_it_with_the_tokens() {
        let minute = Duration::from_secs(60);
        let (store, ids) = store_with_revocations(&[minute, 30 * minute]).await;
        let revoked = Arc::new(RevokedSessions::new());
        let revocations = Revocations::new(
            15 * minute,
            feed_overlap(Duration::from_secs(5)),
            revoked.clone(),
        );
        revocations
            .catch_up(store.as_ref())
            .await
            .expect("catch up");
        assert!(revoked.contains(ids[0]));
        assert!(!revoked.contains(ids[1]), "its tokens are dead");
        revocations.insert(ids[1], OffsetDateTime::now_utc() - 30 * minute);
        revocations
            .catch_up(store.as_ref())
            .await
            .expect("catch up");
        assert!(!revoked.contains(ids[1]), "pruned");
        assert!(revocations.staleness().is_some());
        store.close().await;
    }
}
