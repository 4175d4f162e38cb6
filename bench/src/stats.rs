//! Percentiles of measured durations, printed the same way by every benchmark.

use std::time::Duration;

/// A sample of durations, sorted on creation.
pub struct Sample(Vec<Duration>);

impl Sample {
    pub fn new(mut durations: Vec<Duration>) -> Sample {
        durations.sort();
        Sample(durations)
    }

    /// The `p`-th percentile (0–100), nearest rank.
    pub fn percentile(&self, p: f64) -> Duration {
        if self.0.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((p / 100.0) * self.0.len() as f64).ceil() as usize;
        self.0[rank.clamp(1, self.0.len()) - 1]
    }

    /// `name  n=…  p50 …  p99 …  max …` in milliseconds.
    pub fn line(&self, name: &str) -> String {
        format!(
            "{name:<44} n={:<6} p50 {:>8.2} ms  p99 {:>8.2} ms  max {:>8.2} ms",
            self.0.len(),
            ms(self.percentile(50.0)),
            ms(self.percentile(99.0)),
            ms(self.0.last().copied().unwrap_or_default()),
        )
    }
}

/// `median (min–max)` of one figure over a benchmark's runs, with `decimals` decimals: how
/// every table of the suite reports a figure.
pub fn spread(mut values: Vec<f64>, decimals: usize) -> String {
    if values.is_empty() {
        return "n/a".into();
    }
    values.sort_by(f64::total_cmp);
    format!(
        "{:.d$} ({:.d$}–{:.d$})",
        values[values.len() / 2],
        values[0],
        values[values.len() - 1],
        d = decimals
    )
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let s = Sample::new((1..=100).rev().map(Duration::from_millis).collect());
        assert_eq!(s.percentile(50.0), Duration::from_millis(50));
        assert_eq!(s.percentile(99.0), Duration::from_millis(99));
        assert_eq!(s.percentile(100.0), Duration::from_millis(100));
        assert_eq!(Sample::new(vec![]).percentile(50.0), Duration::ZERO);
    }

    #[test]
    fn a_spread_is_the_median_with_min_and_max() {
        assert_eq!(spread(vec![3.0, 1.0, 2.0], 1), "2.0 (1.0–3.0)");
        assert_eq!(spread(vec![], 0), "n/a");
    }
}
