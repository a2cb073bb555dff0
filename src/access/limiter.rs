//! Failed-login rate limiting, per client address and user.
//!
//! Two budgets, both over a sliding window: failures of one user name from
//! one address (a password being guessed), and failures from one address
//! whatever the name (names being sprayed). While a budget is spent, every
//! login on it is refused before any password is checked — the right
//! password included — until the oldest failure leaves the window. A
//! success clears the pair's failures. State is in memory and bounded.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Keys tracked at most; past that, expired ones are dropped first.
const MAX_KEYS: usize = 50_000;
/// User names are kept to this many bytes (valid ones are shorter), so
/// made-up huge names cannot fill memory.
const MAX_KEY_NAME: usize = 128;

#[derive(Debug, Clone, Copy)]
pub struct LoginLimits {
    /// Failures of one user from one address allowed per window.
    pub per_user: usize,
    /// Failures from one address allowed per window.
    pub per_address: usize,
    pub window: Duration,
}

impl Default for LoginLimits {
    fn default() -> Self {
        LoginLimits {
            per_user: 5,
            per_address: 50,
            window: Duration::from_secs(60),
        }
    }
}

fn key_name(user: &str) -> String {
    let mut end = user.len().min(MAX_KEY_NAME);
    while !user.is_char_boundary(end) {
        end -= 1;
    }
    user[..end].to_owned()
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Address(IpAddr),
    User(IpAddr, String),
}

/// Which of the limits applies to a key.
type Budget = fn(&LoginLimits) -> usize;

pub struct LoginLimiter {
    limits: LoginLimits,
    failures: Mutex<HashMap<Key, VecDeque<Instant>>>,
}

impl LoginLimiter {
    pub fn new(limits: LoginLimits) -> LoginLimiter {
        LoginLimiter {
            limits,
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn keys(address: IpAddr, user: &str) -> [(Key, Budget); 2] {
        [
            (Key::User(address, key_name(user)), |l| l.per_user),
            (Key::Address(address), |l| l.per_address),
        ]
    }

    /// `Err(retry_after)` when a login of `user` from `address` must wait.
    pub fn check(&self, address: IpAddr, user: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        let mut wait = Duration::ZERO;
        for (key, budget) in Self::keys(address, user) {
            let Some(times) = failures.get_mut(&key) else {
                continue;
            };
            self.forget_old(times, now);
            if times.len() >= budget(&self.limits) {
                if let Some(oldest) = times.front() {
                    let free_at = *oldest + self.limits.window;
                    wait = wait.max(free_at.saturating_duration_since(now));
                }
            }
        }
        if wait.is_zero() {
            Ok(())
        } else {
            // Whole seconds for Retry-After, never zero.
            Err(Duration::from_secs(
                wait.as_secs_f64().ceil().max(1.0) as u64
            ))
        }
    }

    pub fn record_failure(&self, address: IpAddr, user: &str) {
        let now = Instant::now();
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        if failures.len() >= MAX_KEYS {
            let window = self.limits.window;
            failures.retain(|_, times| times.back().is_some_and(|t| now - *t < window));
        }
        for (key, _) in Self::keys(address, user) {
            let times = failures.entry(key).or_default();
            times.push_back(now);
            // Only the newest `budget` failures matter; keep memory bounded.
            while times.len() > self.limits.per_address.max(self.limits.per_user) {
                times.pop_front();
            }
        }
    }

    pub fn record_success(&self, address: IpAddr, user: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        failures.remove(&Key::User(address, key_name(user)));
    }

    fn forget_old(&self, times: &mut VecDeque<Instant>, now: Instant) {
        while times
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= self.limits.window)
        {
            times.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    fn limiter(per_user: usize, per_address: usize) -> LoginLimiter {
        LoginLimiter::new(LoginLimits {
            per_user,
            per_address,
            window: Duration::from_secs(60),
        })
    }

    #[test]
    fn a_user_is_locked_after_its_budget_from_that_address_only() {
        let l = limiter(3, 100);
        for _ in 0..3 {
            assert!(l.check(A, "john").is_ok());
            l.record_failure(A, "john");
        }
        let wait = l.check(A, "john").unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(60));
        assert!(
            l.check(B, "john").is_ok(),
            "other addresses are not affected"
        );
        assert!(l.check(A, "jane").is_ok(), "other users are not affected");
    }

    #[test]
    fn an_address_spraying_names_is_locked() {
        let l = limiter(100, 4);
        for i in 0..4 {
            l.record_failure(A, &format!("user{i}"));
        }
        assert!(l.check(A, "someone-else").is_err());
        assert!(l.check(B, "someone-else").is_ok());
    }

    #[test]
    fn success_clears_the_pair() {
        let l = limiter(2, 100);
        l.record_failure(A, "john");
        l.record_success(A, "john");
        l.record_failure(A, "john");
        assert!(l.check(A, "john").is_ok());
    }

    #[test]
    fn failures_leave_the_window() {
        let l = LoginLimiter::new(LoginLimits {
            per_user: 1,
            per_address: 10,
            window: Duration::from_millis(1),
        });
        l.record_failure(A, "john");
        std::thread::sleep(Duration::from_millis(5));
        assert!(l.check(A, "john").is_ok());
    }
}
