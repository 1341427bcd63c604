//! The refresh rule, as a pure function: given a verified refresh token and its session as
//! the store holds it, what happens (docs/api.md, "Refresh rotation").

use subtle::ConstantTimeEq;
use time::OffsetDateTime;

use super::{fingerprint_hash, DenyReason, Presented, SessionPolicy};
use crate::store::Session;
use crate::tokens::RefreshClaims;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshDecision {
    /// Move the session on by one generation (compare-and-swap), with this new expiry.
    Rotate { expires_at: OffsetDateTime },
    /// The previous generation, within the grace window: a fresh pair for the current
    /// generation, without rotating again (two tabs, a retried request).
    ReissueCurrent,
    /// Refuse; the session is left as it is.
    Deny(DenyReason),
    /// An older generation came back: a stolen or replayed token. Revoke the session, refuse.
    RevokeForReuse,
}

/// Decides a refresh by `claims` (already verified) of `session`, by a device that
/// `presented` itself so, at `now`.
pub fn decide(
    claims: &RefreshClaims,
    session: &Session,
    presented: &Presented<'_>,
    now: OffsetDateTime,
    policy: &SessionPolicy,
) -> RefreshDecision {
    use RefreshDecision::{Deny, ReissueCurrent, RevokeForReuse, Rotate};
    if session.id != claims.sid || session.user_id != claims.sub {
        return Deny(DenyReason::UnknownSession);
    }
    if !session.is_live(now) {
        return Deny(DenyReason::SessionEnded);
    }
    match (&session.dpop_jkt, presented.dpop_jkt) {
        (Some(bound), Some(presented)) if bound == presented => {}
        (Some(_), _) => return Deny(DenyReason::DpopKeyMismatch),
        (None, _) if policy.require_dpop => return Deny(DenyReason::DpopRequired),
        (None, _) => {}
    }
    // A session bound to a key keeps its fingerprint for the sign-in limit; the key supersedes it.
    if let (Some(expected), None) = (&session.fingerprint_hash, &session.dpop_jkt) {
        let given = presented
            .fingerprint
            .map(fingerprint_hash)
            .unwrap_or_default();
        if !bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
            return Deny(DenyReason::FingerprintMismatch);
        }
    }
    if claims.gen > session.generation {
        // Issued by a store that has since been rolled back (a restored backup): the holder
        // did nothing wrong, so the session is kept for a new sign-in.
        return Deny(DenyReason::AheadOfStore);
    }
    if claims.gen == session.generation {
        // Idle expiry from now, never past the absolute expiry from login.
        let expires_at = (now + policy.refresh_ttl).min(session.created_at + policy.max_age);
        return Rotate { expires_at };
    }
    let within_grace = session
        .rotated_at
        .is_some_and(|rotated_at| now - rotated_at < policy.reuse_grace);
    if claims.gen + 1 == session.generation && within_grace {
        return ReissueCurrent;
    }
    RevokeForReuse
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use time::Duration as Span;
    use uuid::Uuid;

    use super::*;
    use crate::sessions::{SessionLimit, SessionLimitPolicy};

    const GRACE: Duration = Duration::from_secs(10);

    fn policy() -> SessionPolicy {
        SessionPolicy {
            refresh_ttl: Duration::from_secs(30 * 86_400),
            max_age: Duration::from_secs(90 * 86_400),
            reuse_grace: GRACE,
            limit: SessionLimit {
                max_sessions: 5,
                policy: SessionLimitPolicy::RevokeAll,
            },
            require_fingerprint: false,
            require_dpop: false,
        }
    }

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("a valid time")
    }

    /// A live session at generation 3, rotated 2 s ago, created a day ago.
    fn session() -> Session {
        Session {
            id: Uuid::from_u128(1),
            user_id: Uuid::from_u128(2),
            generation: 3,
            rotated_at: Some(now() - Span::seconds(2)),
            created_at: now() - Span::days(1),
            last_used_at: now() - Span::seconds(2),
            expires_at: now() + Span::days(30),
            revoked_at: None,
            fingerprint_hash: None,
            user_agent: None,
            ip: None,
            dpop_jkt: None,
        }
    }

    fn claims(gen: i64) -> RefreshClaims {
        let session = session();
        RefreshClaims {
            iss: "tollgate".into(),
            aud: "tollgate-api".into(),
            sub: session.user_id,
            sid: session.id,
            gen,
            iat: now().unix_timestamp(),
            exp: (now() + Span::days(30)).unix_timestamp(),
            nbf: None,
            jti: Uuid::from_u128(3),
        }
    }

    fn decide_now(claims: &RefreshClaims, session: &Session) -> RefreshDecision {
        decide(claims, session, &Presented::default(), now(), &policy())
    }

    #[test]
    fn the_current_generation_rotates_with_idle_expiry_capped_by_the_absolute_one() {
        let rotate = decide_now(&claims(3), &session());
        assert_eq!(
            rotate,
            RefreshDecision::Rotate {
                expires_at: now() + Span::days(30)
            }
        );
        // 80 days after login, 30 more days would pass the 90-day maximum.
        let old = Session {
            created_at: now() - Span::days(80),
            ..session()
        };
        assert_eq!(
            decide_now(&claims(3), &old),
            RefreshDecision::Rotate {
                expires_at: now() + Span::days(10)
            }
        );
    }

    #[test]
    fn one_generation_behind_is_reissued_inside_the_grace_window_and_reuse_outside_it() {
        assert_eq!(
            decide_now(&claims(2), &session()),
            RefreshDecision::ReissueCurrent
        );
        let grace_over = Session {
            rotated_at: Some(now() - Span::seconds(10)),
            ..session()
        };
        assert_eq!(
            decide_now(&claims(2), &grace_over),
            RefreshDecision::RevokeForReuse
        );
        let never_rotated = Session {
            rotated_at: None,
            ..session()
        };
        assert_eq!(
            decide_now(&claims(2), &never_rotated),
            RefreshDecision::RevokeForReuse
        );
    }

    #[test]
    fn an_older_generation_is_reuse_even_inside_the_grace_window() {
        for gen in [0, 1] {
            assert_eq!(
                decide_now(&claims(gen), &session()),
                RefreshDecision::RevokeForReuse,
                "gen {gen}"
            );
        }
    }

    #[test]
    fn a_newer_generation_than_the_store_is_refused_and_the_session_kept() {
        assert_eq!(
            decide_now(&claims(4), &session()),
            RefreshDecision::Deny(DenyReason::AheadOfStore)
        );
    }

    #[test]
    fn revoked_expired_and_idle_expired_sessions_are_refused() {
        let revoked = Session {
            revoked_at: Some(now() - Span::seconds(1)),
            ..session()
        };
        // Past the absolute expiry: the last rotation capped `expires_at` at login + max age.
        let expired = Session {
            created_at: now() - Span::days(90),
            expires_at: now(),
            ..session()
        };
        // Idle: nobody refreshed within the refresh lifetime.
        let idle = Session {
            rotated_at: Some(now() - Span::days(31)),
            last_used_at: now() - Span::days(31),
            expires_at: now() - Span::days(1),
            ..session()
        };
        for (name, session) in [("revoked", revoked), ("expired", expired), ("idle", idle)] {
            for gen in [2, 3] {
                assert_eq!(
                    decide_now(&claims(gen), &session),
                    RefreshDecision::Deny(DenyReason::SessionEnded),
                    "{name}, gen {gen}"
                );
            }
        }
    }

    #[test]
    fn a_bound_device_must_present_the_same_fingerprint() {
        let bound = Session {
            fingerprint_hash: Some(fingerprint_hash("device-a")),
            ..session()
        };
        let mismatch = RefreshDecision::Deny(DenyReason::FingerprintMismatch);
        let with = |fingerprint| Presented {
            fingerprint,
            dpop_jkt: None,
        };
        assert_eq!(
            decide(&claims(3), &bound, &with(None), now(), &policy()),
            mismatch
        );
        assert_eq!(
            decide(
                &claims(3),
                &bound,
                &with(Some("device-b")),
                now(),
                &policy()
            ),
            mismatch
        );
        assert!(matches!(
            decide(
                &claims(3),
                &bound,
                &with(Some("device-a")),
                now(),
                &policy()
            ),
            RefreshDecision::Rotate { .. }
        ));
        // Checked before reuse: a thief without the device cannot even end the session.
        assert_eq!(
            decide(
                &claims(0),
                &bound,
                &with(Some("device-b")),
                now(),
                &policy()
            ),
            mismatch
        );
        // A session without one ignores whatever is sent.
        assert!(matches!(
            decide(
                &claims(3),
                &session(),
                &with(Some("anything")),
                now(),
                &policy()
            ),
            RefreshDecision::Rotate { .. }
        ));
    }

    #[test]
    fn a_session_bound_to_a_dpop_key_needs_a_proof_by_that_key() {
        let bound = Session {
            dpop_jkt: Some("key-a".into()),
            ..session()
        };
        let with = |dpop_jkt| Presented {
            fingerprint: None,
            dpop_jkt,
        };
        let mismatch = RefreshDecision::Deny(DenyReason::DpopKeyMismatch);
        assert_eq!(
            decide(&claims(3), &bound, &with(None), now(), &policy()),
            mismatch
        );
        // The key supersedes a fingerprint kept beside it.
        let with_fingerprint = Session {
            fingerprint_hash: Some(fingerprint_hash("device-a")),
            ..bound.clone()
        };
        assert!(matches!(
            decide(
                &claims(3),
                &with_fingerprint,
                &with(Some("key-a")),
                now(),
                &policy()
            ),
            RefreshDecision::Rotate { .. }
        ));
        assert_eq!(
            decide(&claims(3), &bound, &with(Some("key-b")), now(), &policy()),
            mismatch
        );
        assert!(matches!(
            decide(&claims(3), &bound, &with(Some("key-a")), now(), &policy()),
            RefreshDecision::Rotate { .. }
        ));
        // Before reuse: a thief without the key cannot end the session by replaying.
        assert_eq!(
            decide(&claims(0), &bound, &with(Some("key-b")), now(), &policy()),
            mismatch
        );
        // Where DPoP is required, an unbound session is refused whatever is sent.
        let required = SessionPolicy {
            require_dpop: true,
            ..policy()
        };
        assert_eq!(
            decide(
                &claims(3),
                &session(),
                &with(Some("key-a")),
                now(),
                &required
            ),
            RefreshDecision::Deny(DenyReason::DpopRequired)
        );
    }

    #[test]
    fn a_token_of_another_subject_or_session_is_unknown() {
        let unknown = RefreshDecision::Deny(DenyReason::UnknownSession);
        let other_user = RefreshClaims {
            sub: Uuid::from_u128(99),
            ..claims(3)
        };
        assert_eq!(decide_now(&other_user, &session()), unknown);
        let other_session = RefreshClaims {
            sid: Uuid::from_u128(99),
            ..claims(3)
        };
        assert_eq!(decide_now(&other_session, &session()), unknown);
    }
}
