//! Sessions revoked recently, so that their access tokens are refused before they expire
//! (docs/api.md, "Revocation"). Every instance holds those revoked within the last access
//! lifetime in memory and follows the store for the ones revoked elsewhere.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use uuid::Uuid;

use crate::store::{RevocationCursor, Store, StoreResult};

/// Revocations in one page of the feed at most.
pub const FEED_PAGE: u32 = 1000;
/// How far back each read of the feed looks again once it has caught up: a revocation whose
/// transaction commits after later ones were read (a slow commit, instances whose clocks
/// differ by less than this) is still seen.
pub const FEED_OVERLAP: Duration = Duration::from_secs(10);
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
/// continue: after the last one while pages are full, then a little before the end
/// (`FEED_OVERLAP`), so that late commits are read too. Readers may see one twice.
pub async fn revocation_page(
    store: &dyn Store,
    after: Option<RevocationCursor>,
    now: OffsetDateTime,
    keep_for: Duration,
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
            revoked_at: now - FEED_OVERLAP,
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
    revoked: RwLock<HashMap<Uuid, OffsetDateTime>>,
    /// Where the next catch-up continues. Held while one runs, so that they do not overlap.
    cursor: tokio::sync::Mutex<Option<RevocationCursor>>,
    /// When a catch-up last read everything the store held.
    caught_up: std::sync::Mutex<Option<Instant>>,
}

impl Revocations {
    pub fn new(access_lifetime: Duration) -> Revocations {
        Revocations {
            keep_for: access_lifetime + CLOCK_MARGIN,
            revoked: RwLock::new(HashMap::new()),
            cursor: tokio::sync::Mutex::new(None),
            caught_up: std::sync::Mutex::new(None),
        }
    }

    /// How long revocations are kept, here and in the store.
    pub fn keep_for(&self) -> Duration {
        self.keep_for
    }

    /// Whether session `sid` was revoked within the access lifetime.
    pub fn is_revoked(&self, sid: Uuid) -> bool {
        self.read().contains_key(&sid)
    }

    /// Records a revocation made by this instance, at once.
    pub fn insert(&self, sid: Uuid, revoked_at: OffsetDateTime) {
        self.write().insert(sid, revoked_at);
    }

    /// Reads the revocations the store holds beyond what this instance has seen.
    pub async fn catch_up(&self, store: &dyn Store) -> StoreResult<()> {
        let mut cursor = self.cursor.lock().await;
        loop {
            let now = OffsetDateTime::now_utc();
            let page = revocation_page(store, *cursor, now, self.keep_for).await?;
            let full = page.is_full();
            {
                let mut revoked = self.write();
                revoked.extend(page.revoked.iter().copied());
                let oldest = now - self.keep_for;
                revoked.retain(|_, revoked_at| *revoked_at > oldest);
                metrics::gauge!("tollgate_revoked_sessions_held").set(revoked.len() as f64);
            }
            *cursor = Some(page.next);
            if !full {
                *self
                    .caught_up
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Instant::now());
                return Ok(());
            }
        }
    }

    /// How long ago this instance last read every revocation the store held; None before the
    /// first time.
    pub fn staleness(&self) -> Option<Duration> {
        self.caught_up
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .map(|at| at.elapsed())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Uuid, OffsetDateTime>> {
        // Every update leaves the map consistent, so a panic elsewhere cannot corrupt it.
        self.revoked
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<Uuid, OffsetDateTime>> {
        self.revoked
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
