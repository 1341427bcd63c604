//! How many devices a user may have signed in, and which sessions make room for a new one.

use uuid::Uuid;

use crate::store::Session;

/// What happens to a user's live sessions when a new login would exceed the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionLimitPolicy {
    /// Revoke all of them: the new login is the only session left.
    RevokeAll,
    /// Revoke the least recently used, as many as needed.
    EvictOldest,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimit {
    pub max_sessions: u32,
    pub policy: SessionLimitPolicy,
}

impl SessionLimit {
    /// The sessions, among a user's `live` ones, to revoke so that one more fits.
    pub fn sessions_to_revoke(&self, live: &[Session]) -> Vec<Uuid> {
        let excess = (live.len() + 1).saturating_sub(self.max_sessions as usize);
        if excess == 0 {
            return Vec::new();
        }
        match self.policy {
            SessionLimitPolicy::RevokeAll => live.iter().map(|session| session.id).collect(),
            SessionLimitPolicy::EvictOldest => {
                let mut oldest_first: Vec<&Session> = live.iter().collect();
                oldest_first.sort_by_key(|session| (session.last_used_at, session.created_at));
                oldest_first
                    .into_iter()
                    .take(excess)
                    .map(|session| session.id)
                    .collect()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use time::{Duration, OffsetDateTime};

    use super::*;

    /// Session `n` was created `n` hours ago and last used `used` hours ago.
    fn session(n: u128, used: i64) -> Session {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("a valid time");
        Session {
            id: Uuid::from_u128(n),
            user_id: Uuid::from_u128(1000),
            generation: 0,
            rotated_at: None,
            created_at: now - Duration::hours(n as i64),
            last_used_at: now - Duration::hours(used),
            expires_at: now + Duration::days(30),
            revoked_at: None,
            fingerprint_hash: None,
            user_agent: None,
            ip: None,
            dpop_jkt: None,
        }
    }

    fn limit(max_sessions: u32, policy: SessionLimitPolicy) -> SessionLimit {
        SessionLimit {
            max_sessions,
            policy,
        }
    }

    #[test]
    fn under_the_limit_nothing_is_revoked() {
        let live = [session(1, 1), session(2, 2)];
        for policy in [
            SessionLimitPolicy::RevokeAll,
            SessionLimitPolicy::EvictOldest,
        ] {
            assert!(limit(3, policy).sessions_to_revoke(&live).is_empty());
            assert!(limit(1, policy).sessions_to_revoke(&[]).is_empty());
        }
    }

    #[test]
    fn revoke_all_ends_every_live_session_at_the_limit() {
        let live = [session(1, 1), session(2, 2), session(3, 3)];
        let ids: Vec<Uuid> = live.iter().map(|s| s.id).collect();
        assert_eq!(
            limit(3, SessionLimitPolicy::RevokeAll).sessions_to_revoke(&live),
            ids
        );
    }

    #[test]
    fn evict_oldest_ends_the_least_recently_used_ones_needed_to_make_room() {
        // Session 3 is the oldest by creation but was used most recently.
        let live = [session(1, 5), session(2, 9), session(3, 0), session(4, 7)];
        let evict = |max| limit(max, SessionLimitPolicy::EvictOldest).sessions_to_revoke(&live);
        assert_eq!(evict(4), vec![Uuid::from_u128(2)]);
        assert_eq!(evict(3), vec![Uuid::from_u128(2), Uuid::from_u128(4)]);
        assert_eq!(evict(1).len(), 4);
        // A tie in last use goes to the one created first.
        let tied = [session(1, 5), session(2, 5)];
        assert_eq!(
            limit(2, SessionLimitPolicy::EvictOldest).sessions_to_revoke(&tied),
            vec![Uuid::from_u128(2)]
        );
    }
}
