//! Sessions revoked recently: their access tokens are refused although they have not expired.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use uuid::Uuid;

/// The revoked sessions a verifier knows of, and when it last read all the revocations there
/// were. Shared by the verifier, which refuses their tokens, and whoever follows the feed.
#[derive(Debug)]
pub struct RevokedSessions {
    revoked: RwLock<HashMap<Uuid, OffsetDateTime>>,
    /// Milliseconds from `created` to the last catch-up, plus one; 0 before the first. An
    /// atomic, because a verifier that requires fresh revocations reads it on every request.
    caught_up: AtomicU64,
    created: Instant,
}

impl Default for RevokedSessions {
    fn default() -> Self {
        RevokedSessions::new()
    }
}

impl RevokedSessions {
    pub fn new() -> RevokedSessions {
        RevokedSessions {
            revoked: RwLock::default(),
            caught_up: AtomicU64::new(0),
            created: Instant::now(),
        }
    }

    /// Whether session `sid` is known to be revoked.
    pub fn contains(&self, sid: Uuid) -> bool {
        self.read().contains_key(&sid)
    }

    /// Records that session `sid` was revoked at `revoked_at`.
    pub fn insert(&self, sid: Uuid, revoked_at: OffsetDateTime) {
        self.write().insert(sid, revoked_at);
    }

    /// Records several revocations at once.
    pub fn extend(&self, revoked: impl IntoIterator<Item = (Uuid, OffsetDateTime)>) {
        self.write().extend(revoked);
    }

    /// Forgets revocations made before `oldest`, whose tokens have all expired. Returns how
    /// many are still held.
    pub fn prune(&self, oldest: OffsetDateTime) -> usize {
        let mut revoked = self.write();
        revoked.retain(|_, revoked_at| *revoked_at >= oldest);
        revoked.len()
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// Every revocation there was has been read, as of now.
    pub fn mark_caught_up(&self) {
        let millis = u64::try_from(self.created.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        self.caught_up.store(millis + 1, Ordering::Release);
    }

    /// How long ago every revocation there was had been read; `None` before the first time.
    pub fn staleness(&self) -> Option<Duration> {
        match self.caught_up.load(Ordering::Acquire) {
            0 => None,
            plus_one => {
                let at = Duration::from_millis(plus_one - 1);
                Some(self.created.elapsed().saturating_sub(at))
            }
        }
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
