//! What tokens cost: a price table per model and lane, so that every call's usage is also
//! money (per job, per provider batch, per person) and the batch lane's saving can be shown.
//!
//! Prices are US dollars per million tokens, input (prompt) and output (completion), for the
//! normal lane (Chat Completions) and the batch lane (the Batch API, which OpenAI bills at half
//! the price: <https://platform.openai.com/docs/guides/batch>, "50% cost discount"). The
//! defaults are OpenAI's list prices (<https://openai.com/api/pricing/>) for the models this
//! product uses; `LLM_PRICES` replaces or adds models. Amounts are kept as whole micro-dollars
//! (`i64`), rounded once per call, so sums are exact.

use std::collections::BTreeMap;
use std::str::FromStr;

use serde::Deserialize;

/// Which price applies to a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PriceLane {
    /// A Chat Completions call.
    Normal,
    /// A request inside a provider batch (the Batch API).
    Batch,
}

impl PriceLane {
    /// The lane's name in metrics and in a day's source: `normal` or `batch`.
    pub fn as_str(self) -> &'static str {
        match self {
            PriceLane::Normal => "normal",
            PriceLane::Batch => "batch",
        }
    }
}

/// One model's prices, US dollars per million tokens. The batch prices default to half the
/// normal ones.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct ModelPrice {
    pub input: f64,
    pub output: f64,
    #[serde(default)]
    pub batch_input: Option<f64>,
    #[serde(default)]
    pub batch_output: Option<f64>,
}

impl ModelPrice {
    fn per_million(&self, lane: PriceLane) -> (f64, f64) {
        match lane {
            PriceLane::Normal => (self.input, self.output),
            PriceLane::Batch => (
                self.batch_input.unwrap_or(self.input / 2.0),
                self.batch_output.unwrap_or(self.output / 2.0),
            ),
        }
    }
}

/// The price table. Parsed from `LLM_PRICES`, a JSON object from model name to
/// `{"input": 0.15, "output": 0.6, "batch_input": 0.075, "batch_output": 0.3}` (US dollars per
/// million tokens; the batch prices are optional). Its models are added to the defaults, or
/// replace them.
#[derive(Debug, Clone, PartialEq)]
pub struct Prices(BTreeMap<String, ModelPrice>);

impl Default for Prices {
    /// OpenAI's list prices for gpt-4o-mini ($0.15 in, $0.60 out) and gpt-4o ($2.50, $10.00).
    fn default() -> Prices {
        let price = |input, output| ModelPrice {
            input,
            output,
            batch_input: None,
            batch_output: None,
        };
        Prices(BTreeMap::from([
            ("gpt-4o-mini".to_string(), price(0.15, 0.60)),
            ("gpt-4o".to_string(), price(2.50, 10.00)),
        ]))
    }
}

impl FromStr for Prices {
    type Err = String;

    fn from_str(text: &str) -> Result<Prices, String> {
        let added: BTreeMap<String, ModelPrice> = serde_json::from_str(text).map_err(|e| {
            format!(
                "LLM_PRICES must be a JSON object such as \
                 {{\"gpt-4o-mini\": {{\"input\": 0.15, \"output\": 0.6}}}}: {e}"
            )
        })?;
        for (model, p) in &added {
            let all = [Some(p.input), Some(p.output), p.batch_input, p.batch_output];
            if all.into_iter().flatten().any(|v| !v.is_finite() || v < 0.0) {
                return Err(format!("LLM_PRICES: {model}'s prices must be 0 or more"));
            }
        }
        let mut prices = Prices::default();
        prices.0.extend(added);
        Ok(prices)
    }
}

impl Prices {
    /// Whether `model` has a price (a model without one costs nothing in the figures).
    pub fn knows(&self, model: &str) -> bool {
        self.0.contains_key(model)
    }

    /// What `prompt` and `completion` tokens of `model` cost in `lane`, in micro-dollars.
    pub fn cost_micros(&self, model: &str, lane: PriceLane, prompt: i64, completion: i64) -> i64 {
        let Some(price) = self.0.get(model) else {
            return 0;
        };
        let (input, output) = price.per_million(lane);
        // Dollars per million tokens are micro-dollars per token.
        (input * prompt.max(0) as f64 + output * completion.max(0) as f64).round() as i64
    }

    /// What the batch lane saved on these tokens against the normal lane, in micro-dollars.
    pub fn saved_micros(&self, model: &str, prompt: i64, completion: i64) -> i64 {
        self.cost_micros(model, PriceLane::Normal, prompt, completion)
            - self.cost_micros(model, PriceLane::Batch, prompt, completion)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_become_micro_dollars_at_the_lane_price() {
        let prices = Prices::default();
        // 1,000 prompt tokens at $0.15/M and 2,000 completion tokens at $0.60/M: $0.00135.
        assert_eq!(
            prices.cost_micros("gpt-4o-mini", PriceLane::Normal, 1_000, 2_000),
            1_350
        );
        // The Batch API bills half.
        assert_eq!(
            prices.cost_micros("gpt-4o-mini", PriceLane::Batch, 1_000, 2_000),
            675
        );
        assert_eq!(prices.saved_micros("gpt-4o-mini", 1_000, 2_000), 675);
        assert_eq!(prices.cost_micros("unknown", PriceLane::Normal, 1, 1), 0);
        assert!(!prices.knows("unknown"));
    }

    #[test]
    fn the_setting_adds_and_replaces_models_and_refuses_nonsense() {
        let prices: Prices =
            r#"{"local-llama": {"input": 0, "output": 0}, "gpt-4o": {"input": 5, "output": 15, "batch_input": 4, "batch_output": 12}}"#
                .parse()
                .unwrap();
        assert!(prices.knows("gpt-4o-mini") && prices.knows("local-llama"));
        assert_eq!(
            prices.cost_micros("gpt-4o", PriceLane::Batch, 1_000_000, 0),
            4_000_000
        );
        assert!("[1]".parse::<Prices>().is_err());
        let negative = r#"{"m": {"input": -1, "output": 0}}"#.parse::<Prices>();
        assert!(negative.unwrap_err().contains("0 or more"));
    }
}
