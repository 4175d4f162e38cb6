//! The login throttle per account, fleet-wide: after a few wrong passwords for one email,
//! logins to it are refused for a minute, then for twice as long after each further wrong one
//! (at most 15 minutes), whoever tries. The per-address limit (`rate_limit`) stops one client
//! trying many accounts; this stops many clients (or one, slowly) trying one account.
//!
//! State lives in Redis under the account's email digest, so every API process shares it and
//! no email is kept there in clear. An email that has no account is throttled the same way, so
//! the answer does not tell which accounts exist. A correct password forgets the failures, but
//! not while the account is locked: during a lock even the right password gets 429, or the
//! lock would tell a guesser when a guess was right.

use std::time::Duration;

use redis::Script;
use sha2::{Digest, Sha256};
use shared::queue::Queue;

use crate::error::ApiError;

/// The first lock's length; each further failure doubles it.
const FIRST_LOCK: Duration = Duration::from_secs(60);
/// The longest lock.
const LONGEST_LOCK: Duration = Duration::from_secs(15 * 60);
/// How long failures are remembered after the last one.
const REMEMBER_FAILURES: Duration = Duration::from_secs(60 * 60);

/// Counts a failure and, from the `ARGV[2]`th on, locks the account for
/// `ARGV[3] * 2^(failures - ARGV[2])` ms, at most `ARGV[4]`. Returns the lock in ms, or 0.
const FAILED: &str = r"
local failures = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
local free = tonumber(ARGV[2])
if failures < free then return 0 end
local lock = math.min(tonumber(ARGV[3]) * 2 ^ (failures - free), tonumber(ARGV[4]))
redis.call('SET', KEYS[2], 1, 'PX', math.floor(lock))
return math.floor(lock)
";

/// The throttle, over the queue's Redis.
pub struct LoginThrottle {
    queue: Queue,
    /// Wrong passwords before the first lock.
    free: u32,
    failed: Script,
}

impl LoginThrottle {
    pub fn new(queue: Queue, free: u32) -> LoginThrottle {
        LoginThrottle {
            queue,
            free,
            failed: Script::new(FAILED),
        }
    }

    /// Refuses with 429 `too_many_failed_logins` (and how long to wait) while `email`'s
    /// account is locked. Redis failing answers 503 `busy`: the throttle is not skipped.
    pub async fn check(&self, email: &str) -> Result<(), ApiError> {
        let key = self.queue.redis().keys().login_lock(&account(email));
        let left: i64 = redis::cmd("PTTL")
            .arg(&key)
            .query_async(&mut self.queue.redis().connection())
            .await?;
        match u64::try_from(left) {
            Ok(ms) if ms > 0 => Err(ApiError::TooManyFailedLogins {
                retry_after: Duration::from_millis(ms),
            }),
            _ => Ok(()),
        }
    }

    /// Counts a wrong password for `email`; returns the lock it started, if any.
    pub async fn failed(&self, email: &str) -> Result<Option<Duration>, ApiError> {
        let keys = self.queue.redis().keys();
        let account = account(email);
        let lock_ms: u64 = self
            .failed
            .key(keys.login_failures(&account))
            .key(keys.login_lock(&account))
            .arg(REMEMBER_FAILURES.as_millis() as u64)
            .arg(self.free)
            .arg(FIRST_LOCK.as_millis() as u64)
            .arg(LONGEST_LOCK.as_millis() as u64)
            .invoke_async(&mut self.queue.redis().connection())
            .await?;
        Ok((lock_ms > 0).then(|| Duration::from_millis(lock_ms)))
    }

    /// Forgets `email`'s failures after a correct password.
    pub async fn succeeded(&self, email: &str) -> Result<(), ApiError> {
        let key = self.queue.redis().keys().login_failures(&account(email));
        let _: i64 = redis::cmd("DEL")
            .arg(key)
            .query_async(&mut self.queue.redis().connection())
            .await?;
        Ok(())
    }
}

/// The account's name in Redis: the SHA-256 of its email as logins match it (trimmed, any
/// case), in hex.
fn account(email: &str) -> String {
    hex::encode(Sha256::digest(email.trim().to_lowercase().as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_is_named_by_its_email_as_logins_match_it() {
        assert_eq!(account(" Ann@Example.com "), account("ann@example.com"));
        assert_ne!(account("ann@example.com"), account("bob@example.com"));
        assert_eq!(account("a").len(), 64);
    }
}
