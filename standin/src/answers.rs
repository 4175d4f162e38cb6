//! Benchmark mode: the answer to a body seen before is reused instead of composed and counted
//! again. A day is a pure function of the request (the seed, or the messages' hash, picks it),
//! so a reused answer is the one a fresh compose would give; what it saves is the catalogue
//! search and the tokenizer, so the stand-in costs a benchmark next to nothing.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hasher};
use std::sync::{Arc, Mutex};

/// What a faultless answer to one body was: its prompt tokens, content and completion tokens.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    pub(crate) prompt_tokens: u32,
    pub(crate) content: Arc<str>,
    pub(crate) completion_tokens: u32,
}

/// Answers by the hash of the request body, at most [`Answers::CAPACITY`] of them (past that,
/// new bodies are composed as usual and not kept).
#[derive(Debug, Default)]
pub(crate) struct Answers {
    by_body: Mutex<HashMap<u64, Answer>>,
}

impl Answers {
    /// Bodies kept: a benchmark sends a few shapes of brief, each a few times a day.
    const CAPACITY: usize = 10_000;

    /// The key of a request body.
    pub(crate) fn key(body: &[u8]) -> u64 {
        let mut hasher = DefaultHasher::new();
        hasher.write(body);
        hasher.finish()
    }

    pub(crate) fn get(&self, key: u64) -> Option<Answer> {
        self.lock().get(&key).cloned()
    }

    pub(crate) fn keep(&self, key: u64, answer: Answer) {
        let mut by_body = self.lock();
        if by_body.len() < Self::CAPACITY {
            by_body.insert(key, answer);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Answer>> {
        self.by_body.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_kept_by_its_body_and_the_store_is_bounded() {
        let answers = Answers::default();
        let answer = Answer {
            prompt_tokens: 7,
            content: Arc::from("{}"),
            completion_tokens: 1,
        };
        answers.keep(Answers::key(b"a"), answer.clone());
        assert_eq!(answers.get(Answers::key(b"a")).unwrap().prompt_tokens, 7);
        assert!(answers.get(Answers::key(b"b")).is_none());
        for i in 0..Answers::CAPACITY + 5 {
            answers.keep(i as u64, answer.clone());
        }
        assert_eq!(answers.lock().len(), Answers::CAPACITY);
    }
}
