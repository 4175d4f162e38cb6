//! How long to wait before calling again: what the server says first, else exponential
//! backoff with full jitter.

use std::time::{Duration, SystemTime};

use reqwest::header::HeaderMap;

/// Reads a server-directed wait, in order of precedence: `retry-after-ms`, `retry-after`
/// (seconds or an HTTP date, RFC 9110 §10.2.3), `x-ratelimit-reset-requests` / `-tokens` (Go
/// durations such as `6m0s`, `1s`, `20ms`; the one for the budget that ran out, else the
/// longer), then the "try again in 1.5s" hint in the message. Only a wait that lies ahead
/// counts: zero, negative, unparseable or past values are no answer (`None`), and the caller
/// backs off on its own instead, as the official OpenAI clients do.
pub fn server_wait(
    headers: &HeaderMap,
    limit_kind: Option<&str>,
    message: &str,
) -> Option<Duration> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let ms = header("retry-after-ms").and_then(|v| v.parse::<f64>().ok());
    if let Some(wait) = ms.and_then(|ms| finite_wait(ms / 1000.0)) {
        return Some(wait);
    }
    let retry_after = header("retry-after").and_then(|v| match v.parse::<f64>() {
        Ok(secs) => finite_wait(secs),
        Err(_) => httpdate::parse_http_date(v)
            .ok()
            .and_then(|at| at.duration_since(SystemTime::now()).ok())
            .filter(|d| !d.is_zero()),
    });
    if retry_after.is_some() {
        return retry_after;
    }
    let requests = header("x-ratelimit-reset-requests").and_then(go_duration);
    let tokens = header("x-ratelimit-reset-tokens").and_then(go_duration);
    let reset = match limit_kind {
        Some("requests") => requests.or(tokens),
        Some("tokens") => tokens.or(requests),
        _ => requests.max(tokens),
    };
    reset.or_else(|| message_hint(message))
}

/// A wait of `secs` if it is a real one: finite and ahead (a day at most, before any cap).
fn finite_wait(secs: f64) -> Option<Duration> {
    (secs.is_finite() && secs > 0.0).then(|| Duration::from_secs_f64(secs.min(86_400.0)))
}

/// Parses a Go duration (`1h2m3.5s`, `20ms`, `150us`); a bare number is seconds.
pub fn go_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<f64>() {
        return finite_wait(secs);
    }
    let mut total = 0.0;
    let mut rest = text;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .filter(|&i| i > 0)?;
        let value: f64 = rest[..number_end].parse().ok()?;
        rest = &rest[number_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        total += value * scale;
        rest = &rest[unit_end..];
    }
    finite_wait(total)
}

/// "Please try again in 18.642s." / "in 644ms" / "Try again in 35 seconds".
fn message_hint(message: &str) -> Option<Duration> {
    let lower = message.to_ascii_lowercase();
    let start = lower.find("try again in")? + "try again in".len();
    let rest = lower[start..].trim_start();
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let value: f64 = rest[..end].parse().ok()?;
    let unit = rest[end..].trim_start();
    let secs = if unit.starts_with("ms") {
        value / 1000.0
    } else if unit.starts_with('s') {
        value
    } else if unit.starts_with('m') {
        value * 60.0
    } else {
        return None;
    };
    finite_wait(secs)
}

/// Exponential backoff with full jitter: a random wait between zero and
/// `min(cap, base · 2^(n-1))` for the n-th retry, so retries of many jobs spread out.
pub fn backoff(retry: u32, base: Duration, cap: Duration) -> Duration {
    let exp = base.saturating_mul(1u32 << retry.saturating_sub(1).min(20));
    let ceiling = exp.min(cap);
    ceiling.mul_f64(rand::random::<f64>())
}

/// The backoff between calls to the provider: full jitter (see [`backoff`]) that never goes
/// below `base`, so a retry never follows at once whatever the draw. (The official OpenAI
/// clients start at 0.5 s and stop growing at 8 s.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallBackoff {
    pub base: Duration,
    pub cap: Duration,
}

impl CallBackoff {
    /// The wait before the `retry`-th retry (1 for the first).
    pub fn delay(&self, retry: u32) -> Duration {
        backoff(retry, self.base, self.cap).max(self.base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(
                HeaderName::from_static(k),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    #[test]
    fn retry_after_ms_wins_over_everything() {
        let h = headers(&[("retry-after-ms", "250"), ("retry-after", "9")]);
        assert_eq!(server_wait(&h, None, ""), Some(Duration::from_millis(250)));
    }

    #[test]
    fn retry_after_may_be_seconds_or_a_date() {
        let h = headers(&[("retry-after", "1.5")]);
        assert_eq!(server_wait(&h, None, ""), Some(Duration::from_millis(1500)));
        let future = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(30));
        let h = headers(&[("retry-after", future.as_str())]);
        let wait = server_wait(&h, None, "").unwrap();
        assert!(wait > Duration::from_secs(28) && wait <= Duration::from_secs(30));
    }

    #[test]
    fn a_wait_that_is_not_ahead_is_no_wait() {
        let past = httpdate::fmt_http_date(SystemTime::now() - Duration::from_secs(30));
        for value in ["0", "-5", "0.0", "soon", "NaN", "inf", past.as_str()] {
            let h = headers(&[("retry-after", value)]);
            assert_eq!(server_wait(&h, None, ""), None, "retry-after: {value}");
        }
        let h = headers(&[("retry-after-ms", "0")]);
        assert_eq!(server_wait(&h, None, ""), None);
        assert_eq!(
            server_wait(&HeaderMap::new(), None, "try again in 0s"),
            None
        );
        // A zero that says nothing gives way to a real wait further down the list.
        let h = headers(&[("retry-after", "0"), ("x-ratelimit-reset-requests", "2s")]);
        assert_eq!(server_wait(&h, None, ""), Some(Duration::from_secs(2)));
    }

    #[test]
    fn call_backoff_never_goes_below_its_floor() {
        let policy = CallBackoff {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(8),
        };
        for retry in 1..12 {
            for _ in 0..50 {
                let d = policy.delay(retry);
                assert!(
                    d >= Duration::from_secs(1) && d <= Duration::from_secs(8),
                    "{d:?}"
                );
            }
        }
    }

    #[test]
    fn rate_limit_resets_are_go_durations() {
        assert_eq!(go_duration("6m0s"), Some(Duration::from_secs(360)));
        assert_eq!(go_duration("1s"), Some(Duration::from_secs(1)));
        assert_eq!(go_duration("20ms"), Some(Duration::from_millis(20)));
        assert_eq!(
            go_duration("1h2m3.5s"),
            Some(Duration::from_secs_f64(3723.5))
        );
        assert_eq!(go_duration("soon"), None);
        let h = headers(&[
            ("x-ratelimit-reset-requests", "2s"),
            ("x-ratelimit-reset-tokens", "6m0s"),
        ]);
        assert_eq!(
            server_wait(&h, Some("requests"), ""),
            Some(Duration::from_secs(2))
        );
        assert_eq!(server_wait(&h, None, ""), Some(Duration::from_secs(360)));
    }

    #[test]
    fn the_message_hint_is_the_last_resort() {
        let m = "Rate limit reached … Please try again in 18.642s. Visit …";
        assert_eq!(
            server_wait(&HeaderMap::new(), None, m),
            Some(Duration::from_millis(18642))
        );
        assert_eq!(
            server_wait(&HeaderMap::new(), None, "try again in 644ms"),
            Some(Duration::from_millis(644))
        );
        assert_eq!(server_wait(&HeaderMap::new(), None, "nothing here"), None);
    }

    #[test]
    fn backoff_is_jittered_under_an_exponential_cap() {
        let base = Duration::from_millis(500);
        let cap = Duration::from_secs(8);
        for retry in 1..10 {
            let ceiling = (base * 2u32.pow(retry - 1)).min(cap);
            for _ in 0..50 {
                assert!(backoff(retry, base, cap) <= ceiling);
            }
        }
    }
}
