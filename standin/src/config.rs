//! How a stand-in run behaves: which key and models it accepts, how slow it is, which faults it
//! injects at random, which provider limits it enforces and how its Batch API behaves. The
//! default is a perfect provider: instant, faultless, unlimited, any key, any model, batches
//! done in two seconds.

use std::time::Duration;

use rand::Rng;
use secrecy::SecretString;

use crate::batches::BatchBehaviour;
use crate::faults::RandomFaults;
use crate::limits::RateLimits;

/// Everything a run is configured with.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// The only API key accepted; `None` accepts any non-empty bearer token.
    pub api_key: Option<SecretString>,
    /// The models served; empty serves whatever model is asked for.
    pub models: Vec<String>,
    /// Delay before each answer from the "model".
    pub latency: Latency,
    /// Faults drawn at random when no scripted step applies.
    pub faults: RandomFaults,
    pub limits: RateLimits,
    /// Seeds the run's randomness (latency jitter, random faults) so runs are repeatable.
    pub seed: u64,
    /// Benchmark mode: answer a body seen before with the answer composed for it then (the
    /// same day a fresh compose gives), so the stand-in costs a benchmark next to nothing.
    pub reuse_answers: bool,
    /// Keep each call's messages in the request log, for tests that check what a prompt
    /// carried and where. Off by default: on a long run they would cost a few KB a call.
    pub record_messages: bool,
    /// How the Batch API behaves (completion delay, expiry, failing requests, file limits);
    /// changeable at runtime with [`StandIn::set_batch_behaviour`](crate::StandIn::set_batch_behaviour).
    pub batches: BatchBehaviour,
}

/// Latency of a generated answer: `base`, give or take up to `jitter`, uniformly.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Latency {
    pub base: Duration,
    pub jitter: Duration,
}

impl Latency {
    pub fn fixed(base: Duration) -> Latency {
        Latency {
            base,
            jitter: Duration::ZERO,
        }
    }

    /// One draw from `[base - jitter, base + jitter]` (never below zero).
    pub fn draw(&self, rng: &mut impl Rng) -> Duration {
        if self.jitter.is_zero() {
            return self.base;
        }
        let low = self.base.saturating_sub(self.jitter);
        let high = self.base + self.jitter;
        Duration::from_secs_f64(rng.random_range(low.as_secs_f64()..=high.as_secs_f64()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn latency_stays_within_its_jitter() {
        let mut rng = StdRng::seed_from_u64(1);
        let latency = Latency {
            base: Duration::from_millis(200),
            jitter: Duration::from_millis(100),
        };
        for _ in 0..200 {
            let d = latency.draw(&mut rng);
            assert!(d >= Duration::from_millis(100) && d <= Duration::from_millis(300));
        }
        let fixed = Latency::fixed(Duration::from_millis(5));
        assert_eq!(fixed.draw(&mut rng), Duration::from_millis(5));
    }
}
