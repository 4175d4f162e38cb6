//! Reading a process's `/metrics` page: the histograms the benchmarks report percentiles of.

use std::collections::BTreeMap;

/// One histogram's cumulative buckets (upper bound in the metric's unit → observations at or
/// below it) and its count, as Prometheus renders them.
#[derive(Debug, Clone, Default)]
pub struct Histogram {
    pub buckets: Vec<(f64, f64)>,
    pub count: f64,
}

impl Histogram {
    /// The `q`-quantile (0–1), interpolated linearly inside its bucket (as PromQL's
    /// `histogram_quantile` does), so its precision is the buckets'.
    pub fn quantile(&self, q: f64) -> f64 {
        if self.count == 0.0 {
            return 0.0;
        }
        let rank = q * self.count;
        let mut below = (0.0, 0.0);
        for &(bound, cumulative) in &self.buckets {
            if cumulative >= rank {
                let (low, seen) = below;
                let within = cumulative - seen;
                let share = if within > 0.0 {
                    (rank - seen) / within
                } else {
                    1.0
                };
                return low + (bound - low) * share;
            }
            below = (bound, cumulative);
        }
        below.0
    }
}

/// Every series of histogram `name` on `page`, by the value of its label `label`.
pub fn histograms(page: &str, name: &str, label: &str) -> BTreeMap<String, Histogram> {
    let mut found: BTreeMap<String, Histogram> = BTreeMap::new();
    let bucket = format!("{name}_bucket{{");
    let count = format!("{name}_count{{");
    for line in page.lines() {
        let (is_bucket, rest) = if let Some(rest) = line.strip_prefix(&bucket) {
            (true, rest)
        } else if let Some(rest) = line.strip_prefix(&count) {
            (false, rest)
        } else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let Ok(value) = value.trim().parse::<f64>() else {
            continue;
        };
        let key = label_value(labels, label).unwrap_or_default();
        let series = found.entry(key).or_default();
        if !is_bucket {
            series.count = value;
        } else if let Some(le) = label_value(labels, "le")
            && let Ok(bound) = le.parse::<f64>()
        {
            series.buckets.push((bound, value));
        }
    }
    for series in found.values_mut() {
        series.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    found
}

fn label_value(labels: &str, name: &str) -> Option<String> {
    let start = labels.find(&format!("{name}=\""))? + name.len() + 2;
    let end = labels[start..].find('"')? + start;
    Some(labels[start..end].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_inside_the_bucket() {
        let page = "\
db_held_bucket{op=\"claim\",le=\"0.001\"} 50
db_held_bucket{op=\"claim\",le=\"0.01\"} 100
db_held_bucket{op=\"claim\",le=\"+Inf\"} 100
db_held_count{op=\"claim\"} 100
db_held_bucket{op=\"complete\",le=\"0.001\"} 0
db_held_count{op=\"complete\"} 0
";
        let found = histograms(page, "db_held", "op");
        let claim = &found["claim"];
        assert_eq!(claim.count, 100.0);
        assert!((claim.quantile(0.5) - 0.001).abs() < 1e-9);
        assert!((claim.quantile(0.75) - 0.0055).abs() < 1e-9);
        assert_eq!(found["complete"].quantile(0.99), 0.0);
    }
}
