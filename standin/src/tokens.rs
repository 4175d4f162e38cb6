//! Token counting as OpenAI bills it, so `usage`, the tokens-per-minute limit and the
//! `max_completion_tokens` cut behave like the real API. The counting recipe is the worker's own
//! (`domain::tokens`), so a client that budgets as we do sees the same numbers.

use domain::tokens::chat_prompt;
pub use domain::tokens::count;
use tiktoken_rs::{CoreBPE, o200k_base_singleton};

use crate::openai::{ChatRequest, ResponseFormat};

fn bpe() -> &'static CoreBPE {
    o200k_base_singleton()
}

/// Prompt tokens for a request: each message's role and content plus its framing, and the JSON
/// Schema of Structured Outputs, which OpenAI feeds to the model and bills as prompt.
pub fn prompt_tokens(request: &ChatRequest) -> usize {
    let texts: Vec<(String, String)> = request
        .messages
        .iter()
        .flatten()
        .map(|m| (m.role.clone(), m.text()))
        .collect();
    let schema = match &request.response_format {
        Some(ResponseFormat::JsonSchema { json_schema }) => {
            json_schema.schema.as_ref().map(|s| s.to_string())
        }
        _ => None,
    };
    chat_prompt(
        texts.iter().map(|(r, c)| (r.as_str(), c.as_str())),
        schema.as_deref(),
    ) as usize
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
    fn truncation_keeps_a_prefix_of_the_requested_length() {
        let text = "{\"meals\":[{\"title\":\"Crème brûlée\"}]}";
        let (cut, n) = truncate(text, 5);
        assert_eq!(n, 5);
        assert!(text.starts_with(&cut));
        assert!(cut.len() < text.len());
        let (whole, n) = truncate(text, 1000);
        assert_eq!(whole, text);
        assert_eq!(n, count(text) as usize);
    }
}
