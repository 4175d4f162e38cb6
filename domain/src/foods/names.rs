//! Name normalisation: one string per food however a recipe writes it, so that "Fresh
//! Coriander Leaves, chopped" and "cilantro" compare equal. Case, accents and punctuation go,
//! then quantities ("2 cups", "a pinch of"), plurals, synonyms (`data/synonyms.tsv`) and
//! preparation words ("chopped", "to taste").

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use super::phrases::Phrases;
use super::table::FOODS;
use super::tsv;

/// Lowercases, drops punctuation, quantities and preparation words ("2 cups", "chopped",
/// "to taste"), singularises each word and maps synonyms to one canonical name, so that
/// "Fresh Coriander Leaves, chopped" and "cilantro" are the same string.
pub fn normalize(name: &str) -> String {
    let words: Vec<String> = clean(name).split_whitespace().map(singular).collect();
    let words = strip_quantities(words);
    let words = SYNONYMS.replace(&words);
    strip_noise(words).join(" ")
}

/// Lowercase ASCII-ish text: accents folded, apostrophes dropped ("confectioners'"), "&" read as
/// "and", every other non-alphanumeric character a space.
fn clean(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars().flat_map(char::to_lowercase) {
        match c {
            '\'' | '’' | '‘' | '`' => {}
            '&' => out.push_str(" and "),
            'œ' => out.push_str("oe"),
            'æ' => out.push_str("ae"),
            'ß' => out.push_str("ss"),
            'à' | 'á' | 'â' | 'ä' | 'ã' | 'å' | 'ā' => out.push('a'),
            'ç' => out.push('c'),
            'è' | 'é' | 'ê' | 'ë' | 'ē' => out.push('e'),
            'ì' | 'í' | 'î' | 'ï' => out.push('i'),
            'ñ' => out.push('n'),
            'ò' | 'ó' | 'ô' | 'ö' | 'õ' | 'ø' => out.push('o'),
            'ù' | 'ú' | 'û' | 'ü' => out.push('u'),
            c if c.is_alphanumeric() => out.push(c),
            _ => out.push(' '),
        }
    }
    out
}

/// The entries of a comma-separated list written in the source, trimmed.
pub(super) fn listed(text: &'static str) -> impl Iterator<Item = &'static str> {
    text.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
}

/// Words ending in "s" that are not plurals.
static NOT_PLURAL: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    listed(
        "molasses, grits, brussels, herbes, gras, haggis, pastis, series, species, coulis, texas,
         carnitas",
    )
    .collect()
});

/// Plurals the suffix rules get wrong.
static IRREGULAR: LazyLock<HashMap<&'static str, &'static str>> = LazyLock::new(|| {
    HashMap::from([
        ("leaves", "leaf"),
        ("loaves", "loaf"),
        ("halves", "half"),
        ("calves", "calf"),
        ("knives", "knife"),
        ("shelves", "shelf"),
        ("cookies", "cookie"),
        ("brownies", "brownie"),
        ("smoothies", "smoothie"),
        ("veggies", "veggie"),
        ("hoagies", "hoagie"),
        ("calories", "calorie"),
        ("pierogies", "pierogi"),
        ("chilies", "chili"),
        ("chillies", "chilli"),
        ("quiches", "quiche"),
        ("brioches", "brioche"),
        ("ganaches", "ganache"),
        ("mousses", "mousse"),
        ("geese", "goose"),
    ])
});

/// Simple English singular: berries → berry, tomatoes → tomato, peaches → peach, olives → olive.
/// Words ending in "ss" or "us" (swiss, hummus, couscous, asparagus) are already singular.
fn singular(word: &str) -> String {
    if let Some(s) = IRREGULAR.get(word) {
        return (*s).to_string();
    }
    if word.len() <= 3
        || !word.ends_with('s')
        || word.ends_with("ss")
        || word.ends_with("us")
        || NOT_PLURAL.contains(word)
    {
        return word.to_string();
    }
    // Four letters: peas, figs, oats, eggs, pies; none of the longer rules apply.
    if word.len() == 4 {
        return word[..3].to_string();
    }
    if let Some(stem) = word.strip_suffix("ies") {
        return format!("{stem}y");
    }
    if let Some(stem) = word.strip_suffix("oes") {
        return format!("{stem}o");
    }
    if ["ches", "shes", "xes", "sses"]
        .iter()
        .any(|s| word.ends_with(s))
    {
        return word[..word.len() - 2].to_string();
    }
    word[..word.len() - 1].to_string()
}

/// Measures that may precede a food ("2 cups flour", "a pinch of salt"), in singular form.
static UNITS: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    listed(
        "g, gr, gm, gram, kg, kgs, kilo, kilogram, mg, ml, millilitre, milliliter, cl, dl, l,
         litre, liter, oz, ozs, ounce, lb, lbs, pound, tsp, teaspoon, tbsp, tbs, tbl, tablespoon,
         cup, pint, quart, qt, gallon, pinch, dash, drop, splash, drizzle, piece, pc, pcs, clove,
         slice, can, tin, jar, packet, package, pack, pkg, bag, box, carton, bottle, bunch,
         handful, sprig, stalk, stick, head, sheet, cube, knob, sachet, scoop, inch, cm, rasher,
         strip, ear, leaf",
    )
    .collect()
});

/// Words that count rather than name; dropped only when a unit follows ("a few sprigs of").
const NUMBER_WORDS: &[&str] = &[
    "a", "an", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "twelve", "half", "quarter", "dozen", "few", "couple", "several",
];

/// "200", "½", "1½", and a number glued to its unit: "200g", "2tbsp".
fn is_number(word: &str) -> bool {
    let rest = word.trim_start_matches(char::is_numeric);
    rest.len() < word.len() && (rest.is_empty() || UNITS.contains(rest))
}

fn is_number_word(word: &str) -> bool {
    NUMBER_WORDS.contains(&word)
}

/// Drops amounts: numbers anywhere, and the unit words and "of" that follow them. A unit word not
/// preceded by an amount stays, so "cloves" alone is still the spice.
fn strip_quantities(words: Vec<String>) -> Vec<String> {
    let mut kept: Vec<String> = Vec::with_capacity(words.len());
    let mut after_amount = false;
    let mut after_unit = false;
    for (i, word) in words.iter().enumerate() {
        let rest = &words[i + 1..];
        let next = rest.first().map(String::as_str);
        let unit_follows = || {
            rest.iter()
                .find(|w| !is_number(w) && !is_number_word(w))
                .is_some_and(|w| UNITS.contains(w.as_str()))
        };
        let w = word.as_str();
        if is_number(w) || (is_number_word(w) && unit_follows()) {
            after_amount = true;
            after_unit = false;
        } else if UNITS.contains(w) && (after_amount || (kept.is_empty() && next == Some("of"))) {
            after_amount = true;
            after_unit = true;
        } else if after_unit && w == "of" {
            after_amount = false;
            after_unit = false;
        } else if after_amount && (w == "to" || w == "or") && next.is_some_and(is_number) {
            // "2 to 3 cups"
        } else if kept.is_empty() && (w == "a" || w == "an") && next.is_some() {
            // "a lemon"
        } else {
            after_amount = false;
            after_unit = false;
            kept.push(word.clone());
        }
    }
    if kept.is_empty() {
        words.into_iter().filter(|w| !is_number(w)).collect()
    } else {
        kept
    }
}

/// Preparation, size and serving words that do not change what is bought.
static NOISE: LazyLock<Phrases<()>> = LazyLock::new(|| {
    Phrases::new(
        listed(
            "chopped, diced, sliced, minced, grated, shredded, peeled, cubed, crumbled, halved,
             quartered, trimmed, rinsed, drained, deseeded, pitted, cored, julienned, finely,
             roughly, coarsely, thinly, lightly, freshly, fresh, large, small, medium, ripe,
             optional, organic, boneless, skinless, softened, melted, beaten, whisked, sifted,
             packed, heaping, heaped, level, uncooked, raw, about, approximately, approx, divided,
             some, to taste, for garnish, for garnishing, to garnish, for serving, to serve,
             for decoration, for frying,
             for greasing, as needed, if desired, or more, plus more, room temperature,
             at room temperature",
        )
        .map(|p| (p.to_string(), ())),
    )
});

/// Removes noise phrases, unless nothing would be left ("fresh" alone stays "fresh").
fn strip_noise(words: Vec<String>) -> Vec<String> {
    let mut kept = Vec::with_capacity(words.len());
    let mut i = 0;
    while i < words.len() {
        match NOISE.longest_at(&words, i) {
            Some((len, ())) => i += len,
            None => {
                kept.push(words[i].clone());
                i += 1;
            }
        }
    }
    if kept.is_empty() { words } else { kept }
}

/// The rows of `data/synonyms.tsv`: (another name, the name the food table uses), or what is
/// wrong with a row.
fn synonym_rows() -> impl Iterator<Item = Result<(&'static str, &'static str), String>> {
    tsv::rows(include_str!("data/synonyms.tsv")).map(|row| match row.fields[..] {
        [from, to] if !from.is_empty() && !to.is_empty() => Ok((from, to)),
        _ => Err(format!(
            "synonyms.tsv line {}: a row is a name, a tab and the name the food table uses",
            row.line
        )),
    })
}

/// The synonym table, plus "feta cheese" → "feta" for every one-word cheese, so a cheese is
/// listed once on the grocery list however it is named.
static SYNONYMS: LazyLock<Phrases<String>> = LazyLock::new(|| {
    let singular_phrase = |p: &str| p.split(' ').map(singular).collect::<Vec<_>>().join(" ");
    let mut entries: Vec<(String, String)> = Vec::new();
    for row in synonym_rows() {
        let (from, to) = row.unwrap_or_else(|e| panic!("{e}"));
        let to = singular_phrase(to);
        entries.push((singular_phrase(from), to.clone()));
        // A canonical name must stay itself when met again, even where a shorter synonym
        // starts inside it ("cannellini bean" is not "cannellini bean bean").
        entries.push((to.clone(), to));
    }
    for (name, entry) in FOODS.map.iter() {
        if entry.cheese && name != "cheese" && !name.contains(' ') {
            entries.push((format!("{name} cheese"), name.clone()));
        }
    }
    let mut seen: HashMap<&str, &str> = HashMap::new();
    for (from, to) in &entries {
        if let Some(previous) = seen.insert(from, to) {
            assert_eq!(previous, to, "synonym {from:?} has two meanings");
        }
    }
    Phrases::new(entries)
});

#[cfg(test)]
mod tests {
    use super::*;
    use crate::foods::fixtures::COMMON_INGREDIENTS;

    #[test]
    fn every_synonym_row_parses_and_no_name_is_listed_twice() {
        assert_eq!(tsv::repeated_key(synonym_rows()), None);
        LazyLock::force(&SYNONYMS);
    }

    #[test]
    fn every_synonym_target_is_already_normalised() {
        for (_, to) in synonym_rows().map(Result::unwrap) {
            assert_eq!(normalize(to), to);
        }
    }

    #[test]
    fn normalising_twice_changes_nothing() {
        for name in listed(COMMON_INGREDIENTS)
            .chain(["Salt & pepper, to taste", "2 (14 oz) cans chickpeas"])
        {
            let once = normalize(name);
            assert_eq!(normalize(&once), once, "{name}");
        }
    }

    #[test]
    fn case_punctuation_and_plurals_are_normalised() {
        for (raw, expected) in [
            ("  Tomatoes ", "tomato"),
            ("POTATOES", "potato"),
            ("Bay Leaves", "bay leaf"),
            ("Mixed Berries", "mixed berry"),
            ("Cherries", "cherry"),
            ("peaches", "peach"),
            ("Radishes", "radish"),
            ("olives", "olive"),
            ("cloves", "clove"),
            ("Hummus", "hummus"),
            ("couscous", "couscous"),
            ("Asparagus", "asparagus"),
            ("Swiss chard", "swiss chard"),
            ("molasses", "molasses"),
            ("Red Lentils", "red lentil"),
            ("Brussels sprouts", "brussels sprout"),
            ("eggs", "egg"),
            ("Rolled oats", "rolled oat"),
            ("Anchovies", "anchovy"),
            ("Cookies", "cookie"),
            ("Jalapeño", "jalapeno"),
            ("Crème fraîche", "creme fraiche"),
            ("Confectioners' sugar", "powdered sugar"),
            ("Goat's cheese", "goat cheese"),
            ("french fries", "french fry"),
            ("half-and-half", "half and half"),
            ("Chinese five spice", "chinese five spice"),
        ] {
            assert_eq!(normalize(raw), expected, "{raw}");
        }
    }

    #[test]
    fn quantities_and_preparation_words_are_dropped() {
        for (raw, expected) in [
            ("2 cups all-purpose flour", "all purpose flour"),
            ("200g chicken breast", "chicken breast"),
            ("1 (14 oz) can chickpeas, drained", "chickpea"),
            ("a pinch of salt", "salt"),
            ("pinch of salt", "salt"),
            ("2 cloves garlic, minced", "garlic"),
            ("3 garlic cloves", "garlic"),
            ("½ tsp ground cumin", "ground cumin"),
            ("2 to 3 tbsp olive oil", "olive oil"),
            ("Salt & pepper, to taste", "salt and pepper"),
            ("1 large onion, finely chopped", "onion"),
            ("Fresh parsley, for garnish (optional)", "parsley"),
            ("boneless skinless chicken thighs", "chicken thigh"),
            ("a few sprigs of thyme", "thyme"),
            ("00 flour", "flour"),
            ("2% milk", "milk"),
        ] {
            assert_eq!(normalize(raw), expected, "{raw}");
        }
        assert_eq!(normalize("cloves"), "clove", "a unit word alone is a food");
        assert_eq!(normalize("fresh"), "fresh", "a name is never emptied");
        assert_eq!(normalize(""), "");
    }

    #[test]
    fn synonyms_map_to_one_name() {
        for (a, b) in [
            ("Fresh coriander leaves", "cilantro"),
            ("coriander", "cilantro"),
            ("King prawns", "king shrimp"),
            ("aubergine", "eggplant"),
            ("courgettes", "zucchini"),
            ("spring onions", "scallions"),
            ("green onion", "scallion"),
            ("garbanzo beans", "chickpeas"),
            ("red capsicum", "red bell pepper"),
            ("red pepper", "red bell pepper"),
            ("rocket", "arugula"),
            ("minced beef", "ground beef"),
            ("beef mince", "ground beef"),
            ("double cream", "heavy cream"),
            ("icing sugar", "powdered sugar"),
            ("cornflour", "cornstarch"),
            ("Parmesan cheese", "parmesan"),
            ("Parmigiano-Reggiano", "parmesan"),
            ("extra-virgin olive oil", "olive oil"),
            ("cannellini beans", "cannellini"),
            ("soya sauce", "shoyu"),
        ] {
            assert_eq!(normalize(a), normalize(b), "{a} / {b}");
        }
        assert_eq!(
            normalize("ground coriander"),
            "ground coriander",
            "the spice stays"
        );
        assert_eq!(normalize("crushed red pepper"), "red pepper flake");
    }
}
