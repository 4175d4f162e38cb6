//! Reading a normalised name as the known foods it names: split into the food table's
//! phrases, longest first, so that "peanut butter" is one food and not peanut plus butter, and
//! "chicken stock" is chicken beside stock.

use super::names::normalize;
use super::phrases::Phrases;
use super::table::{Entry, FOODS, Role};

/// A run of words: a known phrase, or one unknown word.
pub(super) struct Span {
    pub(super) start: usize,
    pub(super) end: usize,
    /// `None` for an unknown word.
    pub(super) entry: Option<&'static Entry>,
}

/// The foods named in `spans`: the named foods, or the forms when no food is named.
pub(super) fn foods_in(spans: &[Span]) -> Vec<&'static Entry> {
    let of_role = |role: Role| -> Vec<&'static Entry> {
        spans
            .iter()
            .filter_map(|s| s.entry)
            .filter(|e| e.role == role)
            .collect()
    };
    let named = of_role(Role::Food);
    if named.is_empty() {
        of_role(Role::Form)
    } else {
        named
    }
}

/// A name normalised and split into known phrases, longest first.
pub(super) struct Parsed {
    /// The normalised name's words.
    pub(super) words: Vec<String>,
    /// The words read as phrases, in order, covering every word once.
    pub(super) spans: Vec<Span>,
}

impl Parsed {
    /// `name` normalised (see [`normalize`]) and read as known phrases, longest first.
    pub(super) fn new(name: &str) -> Parsed {
        let normalized = normalize(name);
        let words: Vec<String> = normalized.split_whitespace().map(str::to_string).collect();
        // Borrowed from the static table, so that spans may outlive this name's words.
        let foods: &'static Phrases<Entry> = &FOODS;
        let mut spans = Vec::new();
        let mut i = 0;
        while i < words.len() {
            let (len, entry) = match foods.longest_at(&words, i) {
                Some((len, entry)) => (len, Some(entry)),
                None => (1, None),
            };
            spans.push(Span {
                start: i,
                end: i + len,
                entry,
            });
            i += len;
        }
        Parsed { words, spans }
    }

    /// Whether the words hold `phrase` anywhere, spans or not ("gluten free").
    pub(super) fn contains(&self, phrase: &[&str]) -> bool {
        self.words.windows(phrase.len()).any(|w| w == phrase)
    }

    /// Whether `phrase` is exactly the words of one or more whole spans in a row.
    pub(super) fn has_span_run(&self, phrase: &[&str]) -> bool {
        self.spans.iter().any(|first| {
            let end = first.start + phrase.len();
            end <= self.words.len()
                && self.words[first.start..end] == *phrase
                && self.spans.iter().any(|s| s.end == end)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::foods::fixtures::COMMON_INGREDIENTS;
    use crate::foods::names::listed;

    #[test]
    fn common_catalogue_ingredients_are_all_known() {
        let unknown: Vec<&str> = listed(COMMON_INGREDIENTS)
            .filter(|name| {
                let parsed = Parsed::new(name);
                foods_in(&parsed.spans).is_empty()
            })
            .collect();
        assert!(unknown.is_empty(), "unknown: {unknown:?}");
    }
}
