//! Access tokens already verified: a client sends the same token many times, and a signature
//! check costs far more than a lookup.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::AccessClaims;

/// Tokens remembered at most.
const ENTRIES: usize = 4096;

/// Keyed by the exact token. An entry is used only while its `exp` is in the future and the
/// key set it was verified with is still the one in force.
pub(crate) struct VerifiedCache {
    entries: quick_cache::sync::Cache<String, (Arc<AccessClaims>, u64)>,
    /// Bumped whenever the set of verifying keys changes, which invalidates every entry.
    key_epoch: AtomicU64,
}

/// What the cache knows of a token.
pub(crate) enum Cached {
    Valid(Arc<AccessClaims>),
    Expired,
    Unknown,
}

impl VerifiedCache {
    pub(crate) fn new() -> VerifiedCache {
        VerifiedCache {
            entries: quick_cache::sync::Cache::new(ENTRIES),
            key_epoch: AtomicU64::new(0),
        }
    }

    /// The token's claims if it was verified under the keys in force and has not expired
    /// by `now` (Unix seconds).
    pub(crate) fn get(&self, token: &str, now: i64) -> Cached {
        let epoch = self.key_epoch.load(Ordering::Acquire);
        let Some((claims, verified_in)) = self.entries.get(token) else {
            return Cached::Unknown;
        };
        if verified_in != epoch {
            self.entries.remove(token);
            return Cached::Unknown;
        }
        // As `check` does: a token is valid up to and including its `exp` second.
        if claims.exp >= now {
            return Cached::Valid(claims);
        }
        self.entries.remove(token);
        Cached::Expired
    }

    /// Remembers `claims` as verified under the keys in force since `epoch`.
    pub(crate) fn insert(&self, token: &str, claims: Arc<AccessClaims>, epoch: u64) {
        self.entries.insert(token.to_owned(), (claims, epoch));
    }

    /// The current key epoch; read it before verifying, so that a key change during the
    /// verification leaves an entry that is never used.
    pub(crate) fn epoch(&self) -> u64 {
        self.key_epoch.load(Ordering::Acquire)
    }

    /// The verifying keys changed: forget everything verified before.
    pub(crate) fn keys_changed(&self) {
        self.key_epoch.fetch_add(1, Ordering::AcqRel);
    }
}
