//! A lookup table of word sequences matched longest first, so that "peanut butter" is read as
//! one phrase before "peanut"; the food table, the synonyms and the noise words all use it.

use std::collections::HashMap;

/// Phrases (words joined by single spaces) and a value for each.
pub(super) struct Phrases<V> {
    pub(super) map: HashMap<String, V>,
    /// The most words any phrase has, where the lookup starts.
    longest: usize,
}

impl<V> Phrases<V> {
    /// The table of `entries`; a later entry for the same phrase replaces an earlier one.
    pub(super) fn new(entries: impl IntoIterator<Item = (String, V)>) -> Self {
        let map: HashMap<String, V> = entries.into_iter().collect();
        let longest = map.keys().map(|k| k.split(' ').count()).max().unwrap_or(0);
        Phrases { map, longest }
    }

    /// The longest phrase starting at `at`: its length in words and its value.
    pub(super) fn longest_at<S: AsRef<str>>(&self, words: &[S], at: usize) -> Option<(usize, &V)> {
        let mut key = String::new();
        (1..=self.longest.min(words.len() - at))
            .rev()
            .find_map(|len| {
                key.clear();
                for (i, w) in words[at..at + len].iter().enumerate() {
                    if i > 0 {
                        key.push(' ');
                    }
                    key.push_str(w.as_ref());
                }
                self.map.get(key.as_str()).map(|v| (len, v))
            })
    }
}

impl Phrases<String> {
    /// `words` with every phrase found, longest first, replaced by its value's words.
    pub(super) fn replace(&self, words: &[String]) -> Vec<String> {
        let mut out = Vec::with_capacity(words.len());
        let mut i = 0;
        while i < words.len() {
            match self.longest_at(words, i) {
                Some((len, canonical)) => {
                    out.extend(canonical.split(' ').map(str::to_string));
                    i += len;
                }
                None => {
                    out.push(words[i].clone());
                    i += 1;
                }
            }
        }
        out
    }
}
