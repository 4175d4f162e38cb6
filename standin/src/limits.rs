//! Provider-like rate limits: requests and tokens per minute over a sliding window, with the
//! `x-ratelimit-*` headers and 429 messages OpenAI sends, so a client's limiter and its handling
//! of 429s can be exercised for real. Tokens are counted as OpenAI reserves them: prompt tokens
//! plus the completion budget asked for.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Per-window budgets; `None` is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    pub requests_per_minute: Option<u32>,
    pub tokens_per_minute: Option<u32>,
    /// How long a call counts against the budgets: a minute, as at OpenAI; shorter in tests so
    /// they need not wait a minute to see the budget recover.
    pub window: Duration,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            requests_per_minute: None,
            tokens_per_minute: None,
            window: Duration::from_secs(60),
        }
    }
}

impl RateLimits {
    pub fn is_limited(&self) -> bool {
        self.requests_per_minute.is_some() || self.tokens_per_minute.is_some()
    }
}

/// Which budget a 429 is about; OpenAI reports it as the error's `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitKind {
    #[default]
    Requests,
    Tokens,
}

impl LimitKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LimitKind::Requests => "requests",
            LimitKind::Tokens => "tokens",
        }
    }
}

/// One budget's state as the headers report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Remaining {
    pub limit: u32,
    pub remaining: u32,
    /// Until the budget has room again: the oldest counted call leaving the window or, on a
    /// 429, until the refused call would fit.
    pub reset: Duration,
}

/// The state of both budgets, for the `x-ratelimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Budget {
    pub requests: Option<Remaining>,
    pub tokens: Option<Remaining>,
}

impl Budget {
    /// `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`, resets as Go durations.
    pub fn headers(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (kind, budget) in [("requests", self.requests), ("tokens", self.tokens)] {
            if let Some(b) = budget {
                out.push((format!("x-ratelimit-limit-{kind}"), b.limit.to_string()));
                out.push((
                    format!("x-ratelimit-remaining-{kind}"),
                    b.remaining.to_string(),
                ));
                out.push((format!("x-ratelimit-reset-{kind}"), go_duration(b.reset)));
            }
        }
        out
    }
}

/// What the limiter decided for one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The call is counted; the budgets after it.
    Admitted(Budget),
    /// Over a budget: refused and not counted.
    Limited {
        kind: LimitKind,
        limit: u32,
        used: u64,
        requested: u32,
        retry_in: Duration,
        budget: Budget,
    },
    /// The call alone needs more tokens than the whole budget: it can never succeed.
    TooLarge { limit: u32, requested: u32 },
}

/// Sliding-window accounting of admitted calls.
#[derive(Debug)]
pub struct Limiter {
    limits: RateLimits,
    admitted: Mutex<VecDeque<(Instant, u32)>>,
}

impl Limiter {
    pub fn new(limits: RateLimits) -> Limiter {
        Limiter {
            limits,
            admitted: Mutex::new(VecDeque::new()),
        }
    }

    /// Admits or refuses a call needing `tokens`, as of `now`.
    pub fn check(&self, now: Instant, tokens: u32) -> Verdict {
        let window = self.limits.window;
        let mut admitted = self.admitted.lock().unwrap_or_else(|e| e.into_inner());
        while admitted
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) >= window)
        {
            admitted.pop_front();
        }
        let leaves_at = |at: Instant| (at + window).saturating_duration_since(now);
        let count = admitted.len() as u64;
        let used: u64 = admitted.iter().map(|(_, t)| u64::from(*t)).sum();
        let oldest_leaves = admitted
            .front()
            .map_or(Duration::ZERO, |(at, _)| leaves_at(*at));

        if let Some(limit) = self.limits.tokens_per_minute
            && tokens > limit
        {
            return Verdict::TooLarge {
                limit,
                requested: tokens,
            };
        }
        let budget = |count: u64, used: u64, requests_reset, tokens_reset| Budget {
            requests: self.limits.requests_per_minute.map(|limit| Remaining {
                limit,
                remaining: u64::from(limit).saturating_sub(count) as u32,
                reset: requests_reset,
            }),
            tokens: self.limits.tokens_per_minute.map(|limit| Remaining {
                limit,
                remaining: u64::from(limit).saturating_sub(used) as u32,
                reset: tokens_reset,
            }),
        };
        if let Some(limit) = self.limits.requests_per_minute
            && count >= u64::from(limit)
        {
            return Verdict::Limited {
                kind: LimitKind::Requests,
                limit,
                used: count,
                requested: 1,
                retry_in: oldest_leaves,
                budget: budget(count, used, oldest_leaves, oldest_leaves),
            };
        }
        if let Some(limit) = self.limits.tokens_per_minute
            && used + u64::from(tokens) > u64::from(limit)
        {
            // The call fits once enough of the oldest calls have left the window.
            let mut freed = 0u64;
            let mut retry_in = oldest_leaves;
            for (at, t) in admitted.iter() {
                freed += u64::from(*t);
                retry_in = leaves_at(*at);
                if used - freed + u64::from(tokens) <= u64::from(limit) {
                    break;
                }
            }
            return Verdict::Limited {
                kind: LimitKind::Tokens,
                limit,
                used,
                requested: tokens,
                retry_in,
                budget: budget(count, used, oldest_leaves, retry_in),
            };
        }
        admitted.push_back((now, tokens));
        let oldest_leaves = admitted.front().map_or(window, |(at, _)| leaves_at(*at));
        Verdict::Admitted(budget(
            count + 1,
            used + u64::from(tokens),
            oldest_leaves,
            oldest_leaves,
        ))
    }
}

/// OpenAI's 429 message for an exhausted budget, with its "Please try again in …" hint.
pub fn rate_limit_message(
    model: &str,
    kind: LimitKind,
    limit: u32,
    used: u64,
    requested: u32,
    retry_in: Duration,
) -> String {
    let budget = match kind {
        LimitKind::Requests => "requests per min (RPM)",
        LimitKind::Tokens => "tokens per min (TPM)",
    };
    format!(
        "Rate limit reached for {model} in organization org-standin on {budget}: Limit {limit}, \
         Used {used}, Requested {requested}. Please try again in {}. Visit \
         https://platform.openai.com/account/rate-limits to learn more.",
        try_again_hint(retry_in)
    )
}

/// OpenAI's 429 message for a call larger than the whole tokens-per-minute budget.
pub fn too_large_message(model: &str, limit: u32, requested: u32) -> String {
    format!(
        "Request too large for {model} in organization org-standin on tokens per min (TPM): \
         Limit {limit}, Requested {requested}. The input or output tokens must be reduced in \
         order to run successfully. Visit https://platform.openai.com/account/rate-limits to \
         learn more."
    )
}

/// A duration as Go prints it, the format of OpenAI's reset headers: `6m0s`, `1s`, `1.5s`,
/// `20ms`, `0s`. Millisecond precision.
pub fn go_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return if d.is_zero() {
            "0s".into()
        } else {
            "1ms".into()
        };
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let hours = ms / 3_600_000;
    let minutes = ms / 60_000 % 60;
    let seconds = trim_fraction(format!("{:.3}", (ms % 60_000) as f64 / 1000.0));
    match (hours, minutes) {
        (0, 0) => format!("{seconds}s"),
        (0, m) => format!("{m}m{seconds}s"),
        (h, m) => format!("{h}h{m}m{seconds}s"),
    }
}

/// The wait as OpenAI writes it in messages: `644ms`, `1.5s`, `26.604s`.
pub fn try_again_hint(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{}ms", ms.max(1))
    } else {
        format!("{}s", trim_fraction(format!("{:.3}", d.as_secs_f64())))
    }
}

fn trim_fraction(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(rpm: Option<u32>, tpm: Option<u32>) -> Limiter {
        Limiter::new(RateLimits {
            requests_per_minute: rpm,
            tokens_per_minute: tpm,
            window: Duration::from_secs(60),
        })
    }

    #[test]
    fn go_durations_look_like_openai_headers() {
        assert_eq!(go_duration(Duration::ZERO), "0s");
        assert_eq!(go_duration(Duration::from_millis(20)), "20ms");
        assert_eq!(go_duration(Duration::from_secs(1)), "1s");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_secs(360)), "6m0s");
        assert_eq!(go_duration(Duration::from_secs(3725)), "1h2m5s");
        assert_eq!(try_again_hint(Duration::from_millis(644)), "644ms");
        assert_eq!(try_again_hint(Duration::from_millis(26_604)), "26.604s");
        assert_eq!(try_again_hint(Duration::from_millis(1500)), "1.5s");
    }

    #[test]
    fn requests_past_the_limit_wait_for_the_oldest_to_leave_the_window() {
        let limiter = limits(Some(2), None);
        let t0 = Instant::now();
        assert!(matches!(limiter.check(t0, 10), Verdict::Admitted(_)));
        let Verdict::Admitted(budget) = limiter.check(t0 + Duration::from_secs(10), 10) else {
            panic!("second call fits");
        };
        assert_eq!(budget.requests.unwrap().remaining, 0);
        match limiter.check(t0 + Duration::from_secs(20), 10) {
            Verdict::Limited { kind, retry_in, .. } => {
                assert_eq!(kind, LimitKind::Requests);
                assert_eq!(retry_in, Duration::from_secs(40));
            }
            other => panic!("expected a 429, got {other:?}"),
        }
        assert!(matches!(
            limiter.check(t0 + Duration::from_secs(60), 10),
            Verdict::Admitted(_)
        ));
    }

    #[test]
    fn tokens_past_the_limit_wait_until_enough_have_left() {
        let limiter = limits(None, Some(1000));
        let t0 = Instant::now();
        limiter.check(t0, 400);
        limiter.check(t0 + Duration::from_secs(5), 400);
        match limiter.check(t0 + Duration::from_secs(10), 500) {
            Verdict::Limited {
                kind,
                retry_in,
                used,
                ..
            } => {
                assert_eq!(kind, LimitKind::Tokens);
                assert_eq!(used, 800);
                assert_eq!(retry_in, Duration::from_secs(50));
            }
            other => panic!("expected a 429, got {other:?}"),
        }
        assert_eq!(
            limiter.check(t0, 1001),
            Verdict::TooLarge {
                limit: 1000,
                requested: 1001
            }
        );
    }

    #[test]
    fn budgets_become_headers() {
        let limiter = limits(Some(60), Some(1000));
        let Verdict::Admitted(budget) = limiter.check(Instant::now(), 250) else {
            panic!("fits");
        };
        let headers = budget.headers();
        let get = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("x-ratelimit-limit-requests"), Some("60"));
        assert_eq!(get("x-ratelimit-remaining-requests"), Some("59"));
        assert_eq!(get("x-ratelimit-remaining-tokens"), Some("750"));
        assert_eq!(get("x-ratelimit-reset-tokens"), Some("1m0s"));
    }
}
