//! Sign-in rate limits per client network and per username (`TOLLGATE_LOGIN_RATE`), as GCRA:
//! each key holds a "theoretical arrival time" (TAT); an attempt is allowed while the TAT it
//! would leave stays within one period of now, and moves the TAT on by period / attempts.
//! One instance counts in memory; instances sharing a store count there, so that three
//! instances allow what one does.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ipnet::IpNet;
use time::OffsetDateTime;

use super::fingerprint_hash;
use crate::config::LoginRate;
use crate::store::{duration_millis, to_millis, Store, StoreError};

/// Keys held in memory at most, per kind (client networks, usernames); beyond, those closest
/// to recovery are forgotten first (a forgotten key starts afresh, so a spray of addresses can
/// cost limits precision, never memory).
const MAX_TRACKED_KEYS: usize = 100_000;
/// IPv6 clients get a /64 each (RFC 6177 assigns at least that much to one site), so that
/// walking through one's own addresses does not escape the limit.
const IPV6_CLIENT_PREFIX: u8 = 64;

pub struct LoginLimiter {
    interval: Duration,
    tolerance: Duration,
    counts: Counts,
    store: Arc<dyn Store>,
}

enum Counts {
    Memory {
        networks: Memory,
        usernames: Memory,
    },
    /// Counted in the store; refusals are remembered here until they expire, so that an
    /// attempt already known to be over the limit costs the database nothing.
    Shared {
        refused: Memory,
    },
}

#[derive(Clone, Copy)]
enum Kind {
    Network,
    Username,
}

impl LoginLimiter {
    /// `rate.attempts` at once, refilled evenly over `rate.period`; counted in `store` when
    /// other instances may share it.
    pub fn new(rate: LoginRate, store: Arc<dyn Store>) -> LoginLimiter {
        let counts = if store.is_shared() {
            Counts::Shared {
                refused: Memory::new(MAX_TRACKED_KEYS),
            }
        } else {
            Counts::Memory {
                networks: Memory::new(MAX_TRACKED_KEYS),
                usernames: Memory::new(MAX_TRACKED_KEYS),
            }
        };
        // Whole milliseconds, as the store counts; the burst stays `attempts` after rounding.
        let interval =
            Duration::from_millis(duration_millis(rate.period / rate.attempts.get()) as u64);
        LoginLimiter {
            interval,
            tolerance: interval * rate.attempts.get(),
            counts,
            store,
        }
    }

    /// Counts one sign-in attempt from `ip` at `username`; `Some` holds how long to wait.
    /// The client's network is counted first, so that a refused flood costs no lookup.
    pub async fn check(
        &self,
        ip: IpAddr,
        username: &str,
        fingerprint: Option<&str>,
    ) -> Result<Option<Duration>, StoreError> {
        if let Some(wait) = self.take(Kind::Network, network_budget(ip)).await? {
            return Ok(Some(wait));
        }
        let known_device = match fingerprint {
            Some(fingerprint) => {
                self.store
                    .has_device(username, &fingerprint_hash(fingerprint))
                    .await?
            }
            None => false,
        };
        match username_budget(username, known_device) {
            Some(budget) => self.take(Kind::Username, budget).await,
            None => Ok(None),
        }
    }

    /// Counts one attempt from `ip` where no username is at stake (a password reset).
    pub async fn check_network(&self, ip: IpAddr) -> Result<Option<Duration>, StoreError> {
        self.take(Kind::Network, network_budget(ip)).await
    }

    async fn take(&self, kind: Kind, key: String) -> Result<Option<Duration>, StoreError> {
        let now = OffsetDateTime::now_utc();
        match &self.counts {
            Counts::Memory {
                networks,
                usernames,
            } => {
                let memory = match kind {
                    Kind::Network => networks,
                    Kind::Username => usernames,
                };
                Ok(memory.take(key, now, self.interval, self.tolerance))
            }
            Counts::Shared { refused } => {
                if let Some(wait) = refused.still_refused(&key, now) {
                    return Ok(Some(wait));
                }
                let wait = self
                    .store
                    .take_rate_token(&key, now, self.interval, self.tolerance)
                    .await?;
                if let Some(wait) = wait {
                    refused.refuse_until(key, now, wait);
                }
                Ok(wait)
            }
        }
    }

    /// Forgets keys whose limits have fully recovered.
    pub async fn forget_idle(&self) -> Result<(), StoreError> {
        let now = OffsetDateTime::now_utc();
        match &self.counts {
            Counts::Memory {
                networks,
                usernames,
            } => {
                networks.forget_recovered(to_millis(now));
                usernames.forget_recovered(to_millis(now));
            }
            Counts::Shared { refused } => {
                refused.forget_recovered(to_millis(now));
                self.store.forget_recovered_rate_limits(now).await?;
            }
        }
        Ok(())
    }
}

/// The budget every attempt from `ip` counts against: its client's network.
fn network_budget(ip: IpAddr) -> String {
    format!("ip:{}", client_network(ip))
}

/// The budget of attempts at `username`, unless the attempt comes from a device that has
/// signed in as that user before: a flood of guesses at a username must not lock its owner
/// out. Usernames are counted without regard to case.
fn username_budget(username: &str, known_device: bool) -> Option<String> {
    // PostgreSQL text cannot hold NUL: such a name shares the budget of its look-alike.
    (!known_device).then(|| format!("user:{}", username.to_lowercase().replace('\0', "\u{FFFD}")))
}

/// The unit a client is counted by: its IPv4 address, or its IPv6 /64.
fn client_network(ip: IpAddr) -> IpNet {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpNet::from(IpAddr::V4(v4)),
        IpAddr::V6(v6) => IpNet::new(IpAddr::V6(v6), IPV6_CLIENT_PREFIX)
            .map(|net| net.trunc())
            .unwrap_or_else(|_| IpNet::from(IpAddr::V6(v6))),
    }
}

/// One GCRA step: the new TAT if the attempt is allowed, else the milliseconds to wait.
/// The store's `take_rate_token` runs the same step in SQL.
fn gcra_step(tat: Option<i64>, now: i64, interval: i64, tolerance: i64) -> Result<i64, i64> {
    let next = tat.unwrap_or(now).max(now) + interval;
    if next - now <= tolerance {
        Ok(next)
    } else {
        Err(next - tolerance - now)
    }
}

/// Times per key in memory (a TAT, or the end of a refusal), at most `capacity` of them.
struct Memory {
    tats: Mutex<HashMap<String, i64>>,
    capacity: usize,
}

impl Memory {
    fn new(capacity: usize) -> Memory {
        Memory {
            tats: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    fn take(
        &self,
        key: String,
        now: OffsetDateTime,
        interval: Duration,
        tolerance: Duration,
    ) -> Option<Duration> {
        let now = to_millis(now);
        let mut tats = self.lock();
        let step = gcra_step(
            tats.get(&key).copied(),
            now,
            duration_millis(interval),
            duration_millis(tolerance),
        );
        match step {
            Ok(tat) => {
                if tats.len() >= self.capacity && !tats.contains_key(&key) {
                    make_room(&mut tats, now, self.capacity);
                }
                tats.insert(key, tat);
                None
            }
            Err(wait) => Some(Duration::from_millis(wait.max(1) as u64)),
        }
    }

    /// Some(wait) while `key` is known to be refused.
    fn still_refused(&self, key: &str, now: OffsetDateTime) -> Option<Duration> {
        let now = to_millis(now);
        let until = *self.lock().get(key)?;
        (until > now).then(|| Duration::from_millis((until - now) as u64))
    }

    fn refuse_until(&self, key: String, now: OffsetDateTime, wait: Duration) {
        let now = to_millis(now);
        let mut times = self.lock();
        if times.len() >= self.capacity && !times.contains_key(&key) {
            make_room(&mut times, now, self.capacity);
        }
        times.insert(key, now + duration_millis(wait));
    }

    fn forget_recovered(&self, now: i64) {
        self.lock().retain(|_, tat| *tat > now);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, i64>> {
        // Every update leaves the map consistent, so a panic elsewhere cannot corrupt it.
        self.tats
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Drops recovered keys, then, if that was not enough, the tenth closest to recovery:
/// amortised over the inserts that follow, a full map costs a constant per attempt, and the
/// keys furthest over their limit are the last to go.
fn make_room(times: &mut HashMap<String, i64>, now: i64, capacity: usize) {
    times.retain(|_, time| *time > now);
    if times.len() >= capacity {
        tracing::warn!(
            keys = times.len(),
            "sign-in limiter full; forgetting some clients"
        );
        let mut sorted: Vec<i64> = times.values().copied().collect();
        let (_, threshold, _) = sorted.select_nth_unstable(capacity / 10);
        let threshold = *threshold;
        times.retain(|_, time| *time > threshold);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_are_counted_per_slash_64_and_ipv4_per_address() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:ffff:ffff:ffff:ffff".parse().expect("ip");
        let other: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        assert_eq!(client_network(a), client_network(b));
        assert_ne!(client_network(a), client_network(other));
        let v4: IpAddr = "198.51.100.7".parse().expect("ip");
        let neighbour: IpAddr = "198.51.100.8".parse().expect("ip");
        assert_ne!(client_network(v4), client_network(neighbour));
        let mapped: IpAddr = "::ffff:198.51.100.7".parse().expect("ip");
        assert_eq!(client_network(mapped), client_network(v4));
    }

    #[test]
    fn a_known_device_skips_the_username_budget_but_never_its_network_budget() {
        assert_eq!(
            username_budget("Alice", false).as_deref(),
            Some("user:alice")
        );
        assert_eq!(
            username_budget("ALICE", false),
            username_budget("alice", false)
        );
        assert_eq!(username_budget("alice", true), None);
        let ip: IpAddr = "2001:db8::1".parse().expect("ip");
        assert_eq!(network_budget(ip), "ip:2001:db8::/64");
    }

    #[test]
    fn gcra_allows_the_burst_then_one_per_interval() {
        let (interval, tolerance) = (100, 300);
        let mut tat = None;
        for _ in 0..3 {
            tat = Some(gcra_step(tat, 0, interval, tolerance).expect("within the burst"));
        }
        assert_eq!(gcra_step(tat, 0, interval, tolerance), Err(100));
        assert_eq!(gcra_step(tat, 99, interval, tolerance), Err(1));
        assert!(gcra_step(tat, 100, interval, tolerance).is_ok());
    }

    #[test]
    fn a_spray_of_a_million_addresses_keeps_memory_bounded() {
        let memory = Memory::new(10_000);
        let now = OffsetDateTime::now_utc();
        let (interval, tolerance) = (Duration::from_secs(6), Duration::from_secs(60));
        for n in 0..1_000_000u32 {
            let ip = IpAddr::from(n.to_be_bytes());
            let key = format!("ip:{}", client_network(ip));
            assert_eq!(memory.take(key, now, interval, tolerance), None);
        }
        assert!(memory.len() <= 10_000, "{} keys held", memory.len());
        // Keys still being counted are limited as before.
        let key = || "ip:192.0.2.1/32".to_owned();
        for _ in 0..10 {
            memory.take(key(), now, interval, tolerance);
        }
        assert!(memory.take(key(), now, interval, tolerance).is_some());
    }

    #[test]
    fn a_full_map_forgets_the_keys_closest_to_recovery_first() {
        let memory = Memory::new(100);
        let now = OffsetDateTime::now_utc();
        let (interval, tolerance) = (Duration::from_secs(6), Duration::from_secs(60));
        // A key well over its limit…
        for _ in 0..10 {
            memory.take("user:victim".into(), now, interval, tolerance);
        }
        assert!(memory
            .take("user:victim".into(), now, interval, tolerance)
            .is_some());
        // …outlives a spray of keys that each made one attempt.
        for n in 0..10_000 {
            memory.take(format!("user:u{n}"), now, interval, tolerance);
        }
        assert!(memory
            .take("user:victim".into(), now, interval, tolerance)
            .is_some());
    }
}
