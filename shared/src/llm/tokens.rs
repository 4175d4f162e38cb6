//! Counting prompt tokens as OpenAI does, with the o200k_base encoding of the gpt-4o family
//! (carried inside tiktoken-rs: nothing is downloaded). The worker reserves tokens-per-minute
//! budget with these counts before a call; the stand-in bills with the same recipe.

use tiktoken_rs::o200k_base_singleton;

/// Tokens OpenAI adds around each message (role markers) and to prime the reply, per its
/// cookbook's counting recipe for the gpt-4o family.
const PER_MESSAGE: u32 = 3;
const REPLY_PRIMING: u32 = 3;

/// Tokens in a piece of text.
pub fn count(text: &str) -> u32 {
    o200k_base_singleton().encode_ordinary(text).len() as u32
}

/// Prompt tokens of a chat request: each message's role and content with its framing, plus the
/// JSON Schema of Structured Outputs, which the provider feeds to the model and bills as prompt.
pub fn chat_prompt<'a>(
    messages: impl IntoIterator<Item = (&'a str, &'a str)>,
    schema: Option<&str>,
) -> u32 {
    let messages: u32 = messages
        .into_iter()
        .map(|(role, content)| PER_MESSAGE + count(role) + count(content))
        .sum();
    messages + schema.map_or(0, count) + REPLY_PRIMING
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
}
