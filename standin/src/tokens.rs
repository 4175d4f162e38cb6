//! Token counting as OpenAI bills it, so `usage`, the tokens-per-minute limit and the
//! `max_completion_tokens` cut behave like the real API. Uses the o200k_base encoding of the
//! gpt-4o family, loaded once on first use.

use tiktoken_rs::{CoreBPE, o200k_base_singleton};

use crate::openai::{ChatRequest, ResponseFormat};

/// Tokens OpenAI adds around each message (role markers) and to prime the reply, per its
/// cookbook's counting recipe for the gpt-4o family.
const PER_MESSAGE: usize = 3;
const REPLY_PRIMING: usize = 3;

fn bpe() -> &'static CoreBPE {
    o200k_base_singleton()
}

/// Tokens in a piece of text.
pub fn count(text: &str) -> usize {
    bpe().encode_ordinary(text).len()
}

/// Prompt tokens for a request: each message's role and content plus its framing, and the JSON
/// Schema of Structured Outputs, which OpenAI feeds to the model and bills as prompt.
pub fn prompt_tokens(request: &ChatRequest) -> usize {
    let messages: usize = request
        .messages
        .iter()
        .flatten()
        .map(|m| PER_MESSAGE + count(&m.role) + count(&m.text()))
        .sum();
    let schema = match &request.response_format {
        Some(ResponseFormat::JsonSchema { json_schema }) => json_schema
            .schema
            .as_ref()
            .map_or(0, |s| count(&s.to_string())),
        _ => 0,
    };
    messages + schema + REPLY_PRIMING
}

/// The first `max` tokens of `text`, and how many tokens that is. A cut that splits a
/// multi-byte character drops the partial character.
pub fn truncate(text: &str, max: usize) -> (String, usize) {
    let tokens = bpe().encode_ordinary(text);
    if tokens.len() <= max {
        return (text.to_string(), tokens.len());
    }
    let bytes = bpe().decode_bytes(&tokens[..max]).unwrap_or_default();
    let cut = match std::str::from_utf8(&bytes) {
        Ok(s) => s.to_string(),
        Err(e) => String::from_utf8_lossy(&bytes[..e.valid_up_to()]).into_owned(),
    };
    (cut, max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counting_matches_the_o200k_encoding() {
        assert_eq!(count(""), 0);
        assert_eq!(count("hello world"), 2);
    }

    #[test]
    fn truncation_keeps_a_prefix_of_the_requested_length() {
        let text = "{\"meals\":[{\"title\":\"Crème brûlée\"}]}";
        let (cut, n) = truncate(text, 5);
        assert_eq!(n, 5);
        assert!(text.starts_with(&cut));
        assert!(cut.len() < text.len());
        let (whole, n) = truncate(text, 1000);
        assert_eq!(whole, text);
        assert_eq!(n, count(text));
    }
}
