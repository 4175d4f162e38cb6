//! Counting prompt tokens as OpenAI does, with the o200k_base encoding of the gpt-4o family
//! (carried inside tiktoken-rs: nothing is downloaded). The worker reserves tokens-per-minute
//! budget with these counts before a call; the stand-in bills with the same recipe.

use tiktoken_rs::o200k_base_singleton;

use crate::prompt::DayBrief;
use crate::vocabulary::MealTime;

/// Tokens OpenAI adds around each message (role markers) and to prime the reply, per its
/// cookbook's counting recipe for the gpt-4o family.
const PER_MESSAGE: u32 = 3;
const REPLY_PRIMING: u32 = 3;

/// Tokens in a piece of text.
pub fn count(text: &str) -> u32 {
    o200k_base_singleton().encode_ordinary(text).len() as u32
}

/// Tokens one message adds to a prompt: its role and content with their framing. A prompt's
/// count is the sum of its messages' plus a fixed part, so parts that never change can be
/// counted once.
pub fn message(role: &str, content: &str) -> u32 {
    PER_MESSAGE + count(role) + count(content)
}

/// Prompt tokens of a chat request: each message's role and content with its framing, plus the
/// JSON Schema of Structured Outputs, which the provider feeds to the model and bills as prompt.
pub fn chat_prompt<'a>(
    messages: impl IntoIterator<Item = (&'a str, &'a str)>,
    schema: Option<&str>,
) -> u32 {
    let messages: u32 = messages
        .into_iter()
        .map(|(role, content)| message(role, content))
        .sum();
    messages + schema.map_or(0, count) + REPLY_PRIMING
}

/// Completion tokens a day's answer is allowed, per meal and per snack, plus the frame of the
/// day object. A day's answer is the `Day` schema filled in: its size follows the dishes asked
/// for, not the day. Measured on the stand-in's realistic answers (catalogue recipes, every
/// diet, 1–10 servings, 300 seeds each): a meal is at most ≈ 290 tokens and a snack ≈ 190; the
/// default day (three meals) is 750 at the median and 837 at most, three meals and a snack 913
/// and 1,066. These allowances keep about a fifth in hand over the largest answer of each shape
/// (checked in `standin/tests/completion_caps.rs`).
pub const CAP_PER_MEAL: u32 = 330;
pub const CAP_PER_SNACK: u32 = 240;
pub const CAP_FRAME: u32 = 60;

/// The completion cap of a call for `brief`: what its dishes need ([`CAP_PER_MEAL`],
/// [`CAP_PER_SNACK`], [`CAP_FRAME`]), at most `ceiling` (`LLM_MAX_COMPLETION_TOKENS`). The
/// budget reserves prompt plus this cap for the call, so a tight cap is what keeps a week's
/// reservation under 15k tokens (23k with the 2,500 ceiling for every call); an answer cut at
/// it is asked again once with the ceiling.
pub fn completion_cap(brief: &DayBrief, ceiling: u32) -> u32 {
    let needed: u32 = brief
        .dishes
        .iter()
        .map(|d| match d.meal_time {
            MealTime::Snack => CAP_PER_SNACK,
            _ => CAP_PER_MEAL,
        })
        .sum();
    (CAP_FRAME + needed).min(ceiling)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_follow_the_o200k_encoding_and_the_chat_framing() {
        assert_eq!(count(""), 0);
        assert_eq!(count("hello world"), 2);
        let prompt = chat_prompt([("user", "hello world")], None);
        assert_eq!(prompt, 3 + count("user") + 2 + 3);
        assert_eq!(
            chat_prompt([("user", "hello world")], Some("{}")),
            prompt + count("{}")
        );
    }

    #[test]
    fn the_completion_cap_follows_the_dishes_up_to_the_ceiling() {
        use crate::request::{GenerationRequest, MenuOptions, default_start_date};
        let brief = |snacks: i64| {
            let options = MenuOptions {
                snacks_per_day: Some(snacks),
                ..MenuOptions::default()
            };
            let request = GenerationRequest::from_options(&options, default_start_date()).unwrap();
            DayBrief::new(&request, 1, &[], vec![])
        };
        let one_snack = brief(1);
        assert_eq!(one_snack.dishes.len(), 4);
        assert_eq!(
            completion_cap(&one_snack, 2_500),
            CAP_FRAME + 3 * CAP_PER_MEAL + CAP_PER_SNACK
        );
        assert_eq!(
            completion_cap(&brief(3), 2_500),
            CAP_FRAME + 3 * CAP_PER_MEAL + 3 * CAP_PER_SNACK
        );
        assert_eq!(completion_cap(&brief(3), 1_000), 1_000);
    }
}
