//! Per-key request budgets (per client address for logins, per user for submissions).
//!
//! Budgets are per process: with N replicas a client gets up to N times the budget. That is
//! enough to blunt password guessing and runaway clients; the LLM budget that must be exact is
//! enforced fleet-wide by the workers.

use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::error::ApiError;

/// A budget of requests per minute for each key, refilled evenly.
pub struct KeyedLimit<K: Hash + Eq + Clone> {
    limiter: DefaultKeyedRateLimiter<K>,
}

impl<K: Hash + Eq + Clone> KeyedLimit<K> {
    /// `per_minute` requests a minute, all of which may come at once.
    pub fn per_minute(per_minute: NonZeroU32) -> Self {
        KeyedLimit {
            limiter: RateLimiter::keyed(Quota::per_minute(per_minute)),
        }
    }

    /// Spends one request of `key`'s budget, or says when the next one is available.
    pub fn check(&self, key: &K) -> Result<(), ApiError> {
        self.limiter.check_key(key).map_err(|not_until| {
            let retry_after = not_until.wait_time_from(DefaultClock::default().now());
            ApiError::TooManyRequests { retry_after }
        })
    }

    /// Drops the state of keys whose budget is full again, so memory does not grow with every
    /// address ever seen.
    pub fn forget_idle(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

/// The address of the client's connection (the proxy's, behind one: forwarded headers are not
/// trusted, since any client can write them). Unspecified when the router is served without
/// connection info, as in `oneshot` tests.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |info| info.0.ip());
        Ok(ClientAddr(ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_over_its_budget_is_told_when_to_retry_and_others_are_not_affected() {
        let limit = KeyedLimit::per_minute(NonZeroU32::new(2).unwrap());
        assert!(limit.check(&1).is_ok());
        assert!(limit.check(&1).is_ok());
        match limit.check(&1) {
            Err(ApiError::TooManyRequests { retry_after }) => {
                assert!(retry_after.as_secs_f64() > 20.0, "{retry_after:?}")
            }
            other => panic!("{other:?}"),
        }
        assert!(limit.check(&2).is_ok());
    }
}
