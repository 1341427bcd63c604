//! Sign-in rate limits per client IP and per username (`TOLLGATE_LOGIN_RATE`).

use std::net::IpAddr;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::LoginRate;

pub struct LoginLimiter {
    by_ip: DefaultKeyedRateLimiter<IpAddr>,
    by_username: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
}

impl LoginLimiter {
    /// `rate.attempts` at once, refilled evenly over `rate.period`.
    pub fn new(rate: LoginRate) -> Option<LoginLimiter> {
        let quota =
            Quota::with_period(rate.period / rate.attempts.get())?.allow_burst(rate.attempts);
        Some(LoginLimiter {
            by_ip: RateLimiter::keyed(quota),
            by_username: RateLimiter::keyed(quota),
            clock: DefaultClock::default(),
        })
    }

    /// Counts one attempt from `ip`; `Err` holds how long to wait.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), Duration> {
        let now = self.clock.now();
        self.by_ip
            .check_key(&ip)
            .map_err(|denied| denied.wait_time_from(now))
    }

    /// Counts one attempt at `username`; `Err` holds how long to wait.
    pub fn check_username(&self, username: &str) -> Result<(), Duration> {
        let now = self.clock.now();
        self.by_username
            .check_key(&username.to_lowercase())
            .map_err(|denied| denied.wait_time_from(now))
    }

    /// Forgets keys whose limits have fully recovered.
    pub fn forget_idle(&self) {
        self.by_ip.retain_recent();
        self.by_username.retain_recent();
    }
}
