//! Ingredient knowledge: the rules, the grocery list and the stand-in model must agree on what an
//! ingredient name means (that "Tomatoes" and "tomato" are one food, that "ghee" is dairy, that
//! "sirloin steak" is beef), because the model's own claims about its recipes are not trusted.
//!
//! Names are normalised first (case, punctuation, quantities, plurals, synonyms), then read as a
//! sequence of known food phrases, longest first, so that "peanut butter" is one food and not
//! peanut plus butter. What a phrase is made of, its family and its aisle come from the tables at
//! the end of this file, which are plain text so that hundreds of foods stay readable.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

use crate::vocabulary::{DietType, Restriction};

/// What an ingredient is made of, as far as diets, restrictions and disliked foods care.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FoodTraits {
    /// Red meat and pork.
    pub meat: bool,
    pub poultry: bool,
    pub fish: bool,
    /// Crustaceans and molluscs.
    pub shellfish: bool,
    pub egg: bool,
    pub dairy: bool,
    pub honey: bool,
    /// Animal products that are not flesh, eggs, dairy or honey: gelatin, lard, suet, collagen.
    pub other_animal: bool,
    pub gluten: bool,
    pub tree_nut: bool,
    pub peanut: bool,
    pub soy: bool,
    pub grain: bool,
    pub legume: bool,
    /// Potato, corn, rice, cassava and other starchy staples.
    pub starchy: bool,
    pub added_sugar: bool,
    /// Salt, soy sauce, bouillon, cured meats, brined foods.
    pub high_sodium: bool,
}

/// Where an ingredient is found in a shop, in the order a shopper usually walks them.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Aisle {
    /// Fresh fruit, vegetables and herbs, and tofu, which most shops keep beside them.
    Produce,
    MeatAndSeafood,
    DairyAndEggs,
    Bakery,
    /// Dry staples: rice, pasta, noodles, grains, dried beans and lentils.
    GrainsAndPasta,
    CannedAndJarred,
    /// Flour, sugar, leavening, chocolate, extracts.
    Baking,
    NutsSeedsAndDriedFruit,
    /// Dried herbs, spices, salt and pepper.
    Spices,
    /// Oils, vinegars, sauces, dressings, spreads, sweet syrups.
    Condiments,
    Frozen,
    /// Drinks, snacks and whatever is not recognised.
    Other,
}

/// Lowercases, drops punctuation, quantities and preparation words ("2 cups", "chopped",
/// "to taste"), singularises each word and maps synonyms to one canonical name, so that
/// "Fresh Coriander Leaves, chopped" and "cilantro" are the same string.
pub fn normalize(name: &str) -> String {
    let words: Vec<String> = clean(name).split_whitespace().map(singular).collect();
    let words = strip_quantities(words);
    let words = SYNONYMS.replace(&words);
    strip_noise(words).join(" ")
}

/// Whether an ingredient is, or contains, a food the person does not eat.
///
/// Matching is by whole words after normalising both sides, never by substring, so "pineapple"
/// does not match "apple" and "eggplant" does not match "egg". A food also matches when it names
/// the ingredient's family ("mushroom" matches "shiitake", "pork" matches "bacon") or a group the
/// ingredient belongs to ("nuts", "fish", "dairy", "cheese", "meat", "seafood", ...).
///
/// Known multi-word foods are read as one unit, so a food does not match a word inside a
/// different food: "peanut butter" does not contain "butter", "coconut milk" does not contain
/// "milk", "sweet potato" does not contain "potato". It still matches a word beside a known food:
/// "chicken stock" contains "chicken".
pub fn matches_food(ingredient_name: &str, food: &str) -> bool {
    let food = normalize(food);
    if food.is_empty() {
        return false;
    }
    let parsed = Parsed::new(ingredient_name);
    let wanted: Vec<&str> = food.split(' ').collect();
    if parsed.has_span_run(&wanted) {
        return true;
    }
    let foods = foods_in(&parsed.spans);
    if foods.iter().any(|e| e.family == Some(food.as_str())) {
        return true;
    }
    match GROUPS.iter().find(|(name, _)| *name == food) {
        Some((_, Group::Traits(bits))) => parsed.bits() & bits != 0,
        Some((_, Group::Cheese)) => foods.iter().any(|e| e.cheese),
        None => false,
    }
}

/// What an ingredient is made of. Words such as "gluten-free", "vegan" or "unsalted" in the name
/// clear what they deny.
pub fn traits(ingredient_name: &str) -> FoodTraits {
    FoodTraits::from_bits(Parsed::new(ingredient_name).bits())
}

/// The family a dish's main ingredient belongs to, for the rule that no main ingredient comes
/// back within three days: "chicken thighs" and "chicken breast" are both "chicken", "sirloin
/// steak" is "beef", "red lentils" is "lentil". An unknown ingredient is its normalised name.
pub fn main_key(main_ingredient: &str) -> String {
    let parsed = Parsed::new(main_ingredient);
    match foods_in(&parsed.spans).first().and_then(|e| e.family) {
        Some(family) => family.to_string(),
        None => parsed.words.join(" "),
    }
}

/// The aisle an ingredient is bought in. The last known food before "and", "or", "in", "with"
/// decides ("chicken stock" is stock, "tuna in olive oil" is tuna); "frozen", "canned" and "dried"
/// move it.
pub fn aisle(ingredient_name: &str) -> Aisle {
    let parsed = Parsed::new(ingredient_name);
    let head_end = parsed
        .spans
        .iter()
        .position(|s| s.entry.is_none() && CONNECTORS.contains(&parsed.words[s.start].as_str()))
        .unwrap_or(parsed.spans.len());
    let head = &parsed.spans[..head_end];
    let Some(food) = foods_in(head).last().copied() else {
        return Aisle::Other;
    };
    let aisle = food.aisle.unwrap_or(Aisle::Other);
    let said = |word: &str| {
        head.iter()
            .any(|s| s.entry.is_none() && parsed.words[s.start] == word)
    };
    if said("frozen") {
        Aisle::Frozen
    } else if said("canned") || said("jarred") {
        Aisle::CannedAndJarred
    } else if said("dried") || said("dry") {
        match aisle {
            Aisle::Produce if food.herb => Aisle::Spices,
            Aisle::Produce => Aisle::NutsSeedsAndDriedFruit,
            Aisle::CannedAndJarred if food.bits & LEGUME != 0 => Aisle::GrainsAndPasta,
            other => other,
        }
    } else {
        aisle
    }
}

/// Why an ingredient breaks a diet ("contains meat"), or `None` when it fits.
pub fn diet_conflict(diet: DietType, ingredient_name: &str) -> Option<&'static str> {
    let forbidden = match diet {
        DietType::Omnivore => return None,
        DietType::Vegetarian => FLESH,
        DietType::Vegan => ANIMAL,
        // Lard, gelatin and suet come from land animals, which a pescatarian does not eat.
        DietType::Pescatarian => MEAT | POULTRY | OTHER_ANIMAL,
        DietType::Keto => GRAIN | STARCHY | ADDED_SUGAR | LEGUME,
        DietType::Paleo => GRAIN | LEGUME | DAIRY | ADDED_SUGAR | SOY,
    };
    reason(Parsed::new(ingredient_name).bits() & forbidden)
}

/// Why an ingredient breaks a restriction ("contains gluten"), or `None` when it fits.
pub fn restriction_conflict(r: Restriction, ingredient_name: &str) -> Option<&'static str> {
    let forbidden = match r {
        Restriction::GlutenFree => GLUTEN,
        Restriction::DairyFree => DAIRY,
        Restriction::NutFree => TREE_NUT | PEANUT,
        Restriction::EggFree => EGG,
        Restriction::SoyFree => SOY,
        Restriction::ShellfishFree => SHELLFISH,
        Restriction::LowSodium => HIGH_SODIUM,
    };
    reason(Parsed::new(ingredient_name).bits() & forbidden)
}

// Traits are bits internally so that tables, markers and diets combine them with `|` and `&`.
const MEAT: u32 = 1;
const POULTRY: u32 = 1 << 1;
const FISH: u32 = 1 << 2;
const SHELLFISH: u32 = 1 << 3;
const EGG: u32 = 1 << 4;
const DAIRY: u32 = 1 << 5;
const HONEY: u32 = 1 << 6;
const OTHER_ANIMAL: u32 = 1 << 7;
const GLUTEN: u32 = 1 << 8;
const TREE_NUT: u32 = 1 << 9;
const PEANUT: u32 = 1 << 10;
const SOY: u32 = 1 << 11;
const GRAIN: u32 = 1 << 12;
const LEGUME: u32 = 1 << 13;
const STARCHY: u32 = 1 << 14;
const ADDED_SUGAR: u32 = 1 << 15;
const HIGH_SODIUM: u32 = 1 << 16;

const FLESH: u32 = MEAT | POULTRY | FISH | SHELLFISH | OTHER_ANIMAL;
const ANIMAL: u32 = FLESH | EGG | DAIRY | HONEY;

/// Each trait's tag in the tables and the reason given when it breaks a diet or restriction;
/// the first listed wins when several do.
const TRAITS: [(&str, u32, &str); 17] = [
    ("meat", MEAT, "contains meat"),
    ("poultry", POULTRY, "contains poultry"),
    ("fish", FISH, "contains fish"),
    ("shellfish", SHELLFISH, "contains shellfish"),
    ("animal", OTHER_ANIMAL, "contains an animal product"),
    ("egg", EGG, "contains egg"),
    ("dairy", DAIRY, "contains dairy"),
    ("honey", HONEY, "contains honey"),
    ("gluten", GLUTEN, "contains gluten"),
    ("treenut", TREE_NUT, "contains tree nuts"),
    ("peanut", PEANUT, "contains peanuts"),
    ("soy", SOY, "contains soy"),
    ("grain", GRAIN, "contains grain"),
    ("legume", LEGUME, "contains legumes"),
    ("starchy", STARCHY, "is a starchy food"),
    ("sugar", ADDED_SUGAR, "contains added sugar"),
    ("salty", HIGH_SODIUM, "is high in sodium"),
];

fn reason(bits: u32) -> Option<&'static str> {
    TRAITS
        .iter()
        .find(|(_, bit, _)| bits & bit != 0)
        .map(|(_, _, why)| *why)
}

impl FoodTraits {
    fn from_bits(bits: u32) -> FoodTraits {
        let has = |bit: u32| bits & bit != 0;
        FoodTraits {
            meat: has(MEAT),
            poultry: has(POULTRY),
            fish: has(FISH),
            shellfish: has(SHELLFISH),
            egg: has(EGG),
            dairy: has(DAIRY),
            honey: has(HONEY),
            other_animal: has(OTHER_ANIMAL),
            gluten: has(GLUTEN),
            tree_nut: has(TREE_NUT),
            peanut: has(PEANUT),
            soy: has(SOY),
            grain: has(GRAIN),
            legume: has(LEGUME),
            starchy: has(STARCHY),
            added_sugar: has(ADDED_SUGAR),
            high_sodium: has(HIGH_SODIUM),
        }
    }
}

/// Words in a name that deny a trait ("gluten-free bread", "vegan mayonnaise").
const MARKERS: &[(&[&str], u32)] = &[
    (&["gluten", "free"], GLUTEN),
    (&["dairy", "free"], DAIRY),
    (&["non", "dairy"], DAIRY),
    (&["egg", "free"], EGG),
    (&["eggless"], EGG),
    (&["nut", "free"], TREE_NUT | PEANUT),
    (&["peanut", "free"], PEANUT),
    (&["soy", "free"], SOY),
    (&["sugar", "free"], ADDED_SUGAR),
    (&["unsweetened"], ADDED_SUGAR),
    (&["no", "sugar", "added"], ADDED_SUGAR),
    (&["no", "added", "sugar"], ADDED_SUGAR),
    (&["unsalted"], HIGH_SODIUM),
    (&["salt", "free"], HIGH_SODIUM),
    (&["sodium", "free"], HIGH_SODIUM),
    (&["low", "sodium"], HIGH_SODIUM),
    (&["reduced", "sodium"], HIGH_SODIUM),
    (&["low", "salt"], HIGH_SODIUM),
    (&["no", "salt", "added"], HIGH_SODIUM),
    (&["vegan"], ANIMAL),
    (&["plant", "based"], ANIMAL),
    (&["vegetarian"], FLESH),
    (&["meatless"], MEAT | POULTRY),
    (&["meat", "free"], MEAT | POULTRY),
];

/// Disliked "foods" that name a group rather than a food.
enum Group {
    Traits(u32),
    Cheese,
}

const GROUPS: &[(&str, Group)] = &[
    ("nut", Group::Traits(TREE_NUT | PEANUT)),
    ("tree nut", Group::Traits(TREE_NUT)),
    ("peanut", Group::Traits(PEANUT)),
    ("fish", Group::Traits(FISH)),
    ("shellfish", Group::Traits(SHELLFISH)),
    ("seafood", Group::Traits(FISH | SHELLFISH)),
    ("dairy", Group::Traits(DAIRY)),
    ("dairy product", Group::Traits(DAIRY)),
    ("cheese", Group::Cheese),
    // Someone who dislikes "meat" rarely means to keep chicken.
    ("meat", Group::Traits(MEAT | POULTRY)),
    ("red meat", Group::Traits(MEAT)),
    ("poultry", Group::Traits(POULTRY)),
    ("egg", Group::Traits(EGG)),
    ("gluten", Group::Traits(GLUTEN)),
    ("soy", Group::Traits(SOY)),
    ("legume", Group::Traits(LEGUME)),
];

/// Words after which the rest of a name no longer says what is bought ("tuna in water").
const CONNECTORS: &[&str] = &["and", "or", "in", "with", "for", "on"];

// ---------------------------------------------------------------------------------------------
// Normalising names

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
fn listed(text: &'static str) -> impl Iterator<Item = &'static str> {
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

/// A table of word sequences, looked up longest first.
struct Phrases<V> {
    map: HashMap<String, V>,
    longest: usize,
}

impl<V> Phrases<V> {
    fn new(entries: impl IntoIterator<Item = (String, V)>) -> Self {
        let map: HashMap<String, V> = entries.into_iter().collect();
        let longest = map.keys().map(|k| k.split(' ').count()).max().unwrap_or(0);
        Phrases { map, longest }
    }

    /// The longest phrase starting at `at`: its length in words and its value.
    fn longest_at<S: AsRef<str>>(&self, words: &[S], at: usize) -> Option<(usize, &V)> {
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
    fn replace(&self, words: &[String]) -> Vec<String> {
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

/// Other names for a food, mapped to the name the tables use. A mapping to itself protects a
/// phrase from a shorter synonym inside it ("ground coriander" is the spice, not cilantro).
const SYNONYM_PAIRS: &[(&str, &str)] = &[
    ("coriander", "cilantro"),
    ("coriander leaf", "cilantro"),
    ("cilantro leaf", "cilantro"),
    ("chinese parsley", "cilantro"),
    ("ground coriander", "ground coriander"),
    ("coriander powder", "ground coriander"),
    ("coriander seed", "coriander seed"),
    ("prawn", "shrimp"),
    ("aubergine", "eggplant"),
    ("brinjal", "eggplant"),
    ("egg plant", "eggplant"),
    ("courgette", "zucchini"),
    ("courgetti", "zucchini noodle"),
    ("zoodle", "zucchini noodle"),
    ("scallion", "green onion"),
    ("spring onion", "green onion"),
    ("salad onion", "green onion"),
    ("garbanzo", "chickpea"),
    ("garbanzo bean", "chickpea"),
    ("chick pea", "chickpea"),
    ("capsicum", "bell pepper"),
    ("sweet pepper", "bell pepper"),
    ("red pepper", "red bell pepper"),
    ("green pepper", "green bell pepper"),
    ("yellow pepper", "yellow bell pepper"),
    ("orange pepper", "orange bell pepper"),
    ("roasted red pepper", "roasted red pepper"),
    ("crushed red pepper", "red pepper flake"),
    ("crushed red pepper flake", "red pepper flake"),
    ("chili flake", "red pepper flake"),
    ("red chili flake", "red pepper flake"),
    ("crushed chili", "red pepper flake"),
    ("rocket", "arugula"),
    ("roquette", "arugula"),
    ("minced beef", "ground beef"),
    ("beef mince", "ground beef"),
    ("hamburger meat", "ground beef"),
    ("minced pork", "ground pork"),
    ("pork mince", "ground pork"),
    ("minced lamb", "ground lamb"),
    ("lamb mince", "ground lamb"),
    ("minced turkey", "ground turkey"),
    ("turkey mince", "ground turkey"),
    ("minced chicken", "ground chicken"),
    ("chicken mince", "ground chicken"),
    ("minced meat", "ground meat"),
    ("beetroot", "beet"),
    ("swede", "rutabaga"),
    ("mangetout", "snow pea"),
    ("snap pea", "sugar snap pea"),
    ("sugar snap", "sugar snap pea"),
    ("cornflour", "cornstarch"),
    ("corn starch", "cornstarch"),
    ("maize", "corn"),
    ("sweetcorn", "corn"),
    ("sweet corn", "corn"),
    ("corn on the cob", "corn"),
    ("corn kernel", "corn"),
    ("icing sugar", "powdered sugar"),
    ("confectioner sugar", "powdered sugar"),
    ("superfine sugar", "caster sugar"),
    ("double cream", "heavy cream"),
    ("whipping cream", "heavy cream"),
    ("heavy whipping cream", "heavy cream"),
    ("single cream", "light cream"),
    ("soured cream", "sour cream"),
    ("plain flour", "all purpose flour"),
    ("self raising flour", "self rising flour"),
    ("bicarbonate of soda", "baking soda"),
    ("bicarb soda", "baking soda"),
    ("bicarb", "baking soda"),
    ("sodium bicarbonate", "baking soda"),
    ("chilli", "chili"),
    ("chile", "chili"),
    ("yoghurt", "yogurt"),
    ("yoghourt", "yogurt"),
    ("cos", "romaine"),
    ("haricot bean", "navy bean"),
    ("broad bean", "fava bean"),
    ("cannellini", "cannellini bean"),
    ("black eyed bean", "black eyed pea"),
    ("azuki", "adzuki"),
    ("soya", "soy"),
    ("soy bean", "soybean"),
    ("soya bean", "soybean"),
    ("shoyu", "soy sauce"),
    ("bean curd", "tofu"),
    ("tvp", "textured vegetable protein"),
    ("gram flour", "chickpea flour"),
    ("besan", "chickpea flour"),
    ("pak choi", "bok choy"),
    ("pak choy", "bok choy"),
    ("bok choi", "bok choy"),
    ("mooli", "daikon"),
    ("celery root", "celeriac"),
    ("flat leaf parsley", "parsley"),
    ("italian parsley", "parsley"),
    ("curly parsley", "parsley"),
    ("parsley leaf", "parsley"),
    ("basil leaf", "basil"),
    ("mint leaf", "mint"),
    ("sage leaf", "sage"),
    ("thyme leaf", "thyme"),
    ("lettuce leaf", "lettuce"),
    ("spinach leaf", "spinach"),
    ("kaffir lime leaf", "lime leaf"),
    ("makrut lime leaf", "lime leaf"),
    ("groundnut", "peanut"),
    ("monkey nut", "peanut"),
    ("calamari", "squid"),
    ("crayfish", "crawfish"),
    ("filet", "fillet"),
    ("filet mignon", "filet mignon"),
    ("wholemeal", "whole wheat"),
    ("wholewheat", "whole wheat"),
    ("rapeseed oil", "canola oil"),
    ("ladies finger", "okra"),
    ("bhindi", "okra"),
    ("string bean", "green bean"),
    ("french bean", "green bean"),
    ("runner bean", "green bean"),
    ("snap bean", "green bean"),
    ("haricot vert", "green bean"),
    ("veggie", "vegetable"),
    ("mayo", "mayonnaise"),
    ("gelatine", "gelatin"),
    ("parmigiano", "parmesan"),
    ("parmigiano reggiano", "parmesan"),
    ("extra virgin olive oil", "olive oil"),
    ("virgin olive oil", "olive oil"),
    ("evoo", "olive oil"),
    ("garlic clove", "garlic"),
    ("chinese cabbage", "napa cabbage"),
    ("cider vinegar", "apple cider vinegar"),
    ("rice wine vinegar", "rice vinegar"),
    ("apple sauce", "applesauce"),
    ("tinned", "canned"),
    ("bread crumb", "breadcrumb"),
    ("panko breadcrumb", "panko"),
    ("panko bread crumb", "panko"),
    ("filo", "phyllo"),
    ("filo pastry", "phyllo"),
    ("phyllo pastry", "phyllo"),
    ("phyllo dough", "phyllo"),
    ("lasagne", "lasagna"),
    ("fettuccini", "fettuccine"),
    ("doughnut", "donut"),
    ("pignoli", "pine nut"),
    ("filbert", "hazelnut"),
    ("almond meal", "almond flour"),
    ("ground almond", "almond flour"),
    ("pepita", "pumpkin seed"),
    ("flax seed", "flaxseed"),
    ("linseed", "flaxseed"),
    ("stock cube", "bouillon"),
    ("bouillon cube", "bouillon"),
    ("bulgar", "bulgur"),
    ("burghul", "bulgur"),
    ("cracked wheat", "bulgur"),
    ("dhal", "dal"),
    ("daal", "dal"),
    ("dahl", "dal"),
    ("tabasco", "hot sauce"),
    ("barbecue sauce", "bbq sauce"),
    ("barbeque sauce", "bbq sauce"),
    ("kiwifruit", "kiwi"),
    ("kiwi fruit", "kiwi"),
    ("baby bella", "cremini"),
    ("crimini", "cremini"),
    ("portabella", "portobello"),
    ("portabello", "portobello"),
    ("powdered milk", "milk powder"),
    ("ginger powder", "ground ginger"),
    ("dijon", "dijon mustard"),
    ("nooch", "nutritional yeast"),
    ("vanilla pod", "vanilla bean"),
    ("vanilla essence", "vanilla extract"),
    ("agar agar", "agar"),
    ("cornichon", "gherkin"),
    ("hing", "asafoetida"),
    ("pizza base", "pizza crust"),
    ("corn bread", "cornbread"),
    ("sun dried tomato", "sun dried tomato"),
];

/// The synonym table, plus "feta cheese" → "feta" for every one-word cheese, so a cheese is
/// listed once on the grocery list however it is named.
static SYNONYMS: LazyLock<Phrases<String>> = LazyLock::new(|| {
    let singular_phrase = |p: &str| p.split(' ').map(singular).collect::<Vec<_>>().join(" ");
    let mut entries: Vec<(String, String)> = Vec::new();
    for (from, to) in SYNONYM_PAIRS {
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

// ---------------------------------------------------------------------------------------------
// Reading a normalised name as foods

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// A food in its own right.
    Food,
    /// A cut or form that names a food only when nothing else does: "steak" is beef, but "tuna
    /// steak" is tuna and "cauliflower steak" is cauliflower.
    Form,
    /// A word that adds traits to the food beside it ("whole wheat", "salted").
    Modifier,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    role: Role,
    bits: u32,
    cheese: bool,
    /// Dried, it is bought as a spice (herbs, chilies, garlic, ginger).
    herb: bool,
    aisle: Option<Aisle>,
    family: Option<&'static str>,
}

static FOODS: LazyLock<Phrases<Entry>> = LazyLock::new(|| {
    let mut map: HashMap<String, Entry> = HashMap::new();
    for (defaults, entries) in FOOD_SECTIONS {
        for line in listed(entries) {
            let (name, tags) = line.split_once('|').unwrap_or((line, ""));
            let name = name.trim();
            let entry = parse_entry(
                name,
                defaults.split_whitespace().chain(tags.split_whitespace()),
            );
            assert!(
                map.insert(name.to_string(), entry).is_none(),
                "food {name:?} is listed twice"
            );
        }
    }
    Phrases::new(map)
});

/// Reads one table line's tags: trait names (see `TRAITS`), `cheese`, `herb`, `@aisle`,
/// `=family` (the name itself when absent), `?` for a form, `~` for a modifier. A mistake
/// panics when the table is first used, and the tests use it.
fn parse_entry(name: &'static str, tags: impl Iterator<Item = &'static str>) -> Entry {
    let mut entry = Entry {
        role: Role::Food,
        bits: 0,
        cheese: false,
        herb: false,
        aisle: None,
        family: Some(name),
    };
    for tag in tags {
        match tag {
            "?" => entry.role = Role::Form,
            "~" => entry.role = Role::Modifier,
            "cheese" => entry.cheese = true,
            "herb" => entry.herb = true,
            _ if tag.starts_with('@') => entry.aisle = Some(aisle_tag(&tag[1..])),
            _ if tag.starts_with('=') => entry.family = Some(&tag[1..]),
            _ => match TRAITS.iter().find(|(t, _, _)| *t == tag) {
                Some((_, bit, _)) => entry.bits |= bit,
                None => panic!("food {name:?}: unknown tag {tag:?}"),
            },
        }
    }
    if entry.role == Role::Modifier {
        entry.aisle = None;
        entry.family = None;
    } else {
        assert!(entry.aisle.is_some(), "food {name:?} has no aisle");
    }
    entry
}

fn aisle_tag(tag: &str) -> Aisle {
    match tag {
        "produce" => Aisle::Produce,
        "meat" => Aisle::MeatAndSeafood,
        "dairy" => Aisle::DairyAndEggs,
        "bakery" => Aisle::Bakery,
        "grains" => Aisle::GrainsAndPasta,
        "canned" => Aisle::CannedAndJarred,
        "baking" => Aisle::Baking,
        "nuts" => Aisle::NutsSeedsAndDriedFruit,
        "spices" => Aisle::Spices,
        "condiments" => Aisle::Condiments,
        "frozen" => Aisle::Frozen,
        "other" => Aisle::Other,
        _ => panic!("unknown aisle tag @{tag}"),
    }
}

/// A run of words: a known phrase, or one unknown word.
struct Span {
    start: usize,
    end: usize,
    entry: Option<&'static Entry>,
}

/// The foods named in `spans`: the named foods, or the forms when no food is named.
fn foods_in(spans: &[Span]) -> Vec<&'static Entry> {
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
struct Parsed {
    words: Vec<String>,
    spans: Vec<Span>,
}

impl Parsed {
    fn new(name: &str) -> Parsed {
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

    fn bits(&self) -> u32 {
        let modifiers = self
            .spans
            .iter()
            .filter_map(|s| s.entry)
            .filter(|e| e.role == Role::Modifier);
        let bits = foods_in(&self.spans)
            .into_iter()
            .chain(modifiers)
            .fold(0, |bits, e| bits | e.bits);
        MARKERS
            .iter()
            .filter(|(phrase, _)| self.contains(phrase))
            .fold(bits, |bits, (_, denied)| bits & !denied)
    }

    fn contains(&self, phrase: &[&str]) -> bool {
        self.words.windows(phrase.len()).any(|w| w == phrase)
    }

    /// Whether `phrase` is exactly the words of one or more whole spans in a row.
    fn has_span_run(&self, phrase: &[&str]) -> bool {
        self.spans.iter().any(|first| {
            let end = first.start + phrase.len();
            end <= self.words.len()
                && self.words[first.start..end] == *phrase
                && self.spans.iter().any(|s| s.end == end)
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The tables
//
// Each section is (tags every entry gets, entries separated by commas); an entry is "name" or
// "name | more tags". Names are written normalised (singular, canonical synonym); a test checks
// that. Phrases are listed where the words alone would mislead: "peanut butter" is not dairy,
// "rice flour" has no gluten, "kidney bean" is not offal.

const FOOD_SECTIONS: &[(&str, &str)] = &[
    (
        "poultry @meat",
        "chicken, turkey, duck, goose, quail, pheasant, guinea fowl, cornish hen | =chicken,
         poussin | =chicken, foie gras | =duck",
    ),
    (
        "meat @meat",
        "beef, veal, sirloin | =beef, ribeye | =beef, rib eye | =beef, brisket | =beef,
         chuck | =beef, flank steak | =beef, skirt steak | =beef, short rib | =beef,
         oxtail | =beef, corned beef | salty =beef, roast beef | salty =beef,
         filet mignon | =beef, t bone | =beef, bresaola | salty =beef, pastrami | salty =beef,
         tenderloin, pork, prosciutto | salty =pork, pancetta | salty =pork,
         guanciale | salty =pork, lardon | salty =pork, chorizo | salty =pork,
         salami | salty =pork, pepperoni | salty =pork, mortadella | salty =pork,
         bratwurst | salty =pork, kielbasa | salty =pork, andouille | salty =pork,
         speck | salty =pork, gammon | salty =pork, spare rib | =pork, baby back rib | =pork,
         carnitas | =pork, char siu | salty sugar =pork, wild boar | =pork,
         black pudding | salty animal =pork, hot dog | salty, frankfurter | salty, lamb,
         mutton | =lamb, goat, venison, bison, rabbit, elk, liver, kidney, tripe, sweetbread,
         tongue, steak | ? =beef, mince | ? =beef, burger | ? =beef, jerky | ? salty =beef,
         bacon | ? salty =pork, ham | ? salty =pork, sausage | ? salty, meatball | ?, meat | ?",
    ),
    (
        "fish @meat",
        "fish, salmon, tuna, cod, haddock, halibut, tilapia, trout, mackerel, sardine,
         anchovy | salty, herring, bass, snapper, sole, flounder, mahi mahi, swordfish, catfish,
         pollock, hake, carp, perch, branzino, barramundi, monkfish, plaice, bream, eel, sprat,
         whitebait, pilchard, arctic char, yellowtail, skate, grouper, turbot, john dory, mullet,
         whiting, sturgeon, whitefish, bonito, roe, caviar | salty =roe,
         smoked salmon | salty =salmon, lox | salty =salmon, gravlax | salty =salmon,
         salt cod | salty =cod, bacalao | salty =cod, kipper | salty =herring, surimi,
         imitation crab | =surimi, fish sauce | salty @condiments,
         anchovy paste | salty @condiments =anchovy, bonito flake | @other =bonito,
         katsuobushi | @other =bonito, dashi | @condiments, fish stock | salty @canned,
         worcestershire | salty @condiments, caesar dressing | egg dairy salty @condiments",
    ),
    (
        "shellfish @meat",
        "shrimp, crab, lobster, crawfish, langoustine, scallop, mussel, clam, oyster, squid,
         octopus, cuttlefish, cockle, whelk, abalone, sea urchin, seafood | fish,
         shrimp paste | salty @condiments =shrimp, oyster sauce | salty @condiments,
         clam juice | @canned =clam",
    ),
    (
        "egg @dairy",
        "egg, egg white | =egg, egg yolk | =egg, quail egg | =egg, duck egg | =egg,
         mayonnaise | @condiments, aioli | @condiments =mayonnaise, tartar sauce | @condiments,
         hollandaise | dairy @condiments, meringue | sugar @bakery, quorn | @frozen",
    ),
    (
        "dairy @dairy",
        "milk, goat milk | =milk, evaporated milk | @canned =milk,
         condensed milk | sugar @canned =milk, milk powder | @baking =milk, buttermilk | =milk,
         cream, heavy cream | =cream, light cream | =cream, half and half | =cream, sour cream,
         whipped cream | sugar =cream, clotted cream | =cream, creme fraiche, creamer,
         ice cream | sugar @frozen, gelato | sugar @frozen, butter, ghee | =butter, yogurt, kefir,
         skyr | =yogurt, labneh, quark, curd, whey | @other, casein | @other, custard | egg sugar,
         lassi, tzatziki | @condiments, raita | @condiments, alfredo | @canned,
         lemon curd | egg sugar @condiments, dulce de leche | sugar @baking",
    ),
    (
        "dairy cheese @dairy",
        "cheese, parmesan | salty, pecorino | salty, romano | salty, grana padano, feta | salty,
         mozzarella, burrata, bocconcini, cheddar, gouda, brie, camembert, gruyere, emmental,
         swiss cheese, provolone, manchego, halloumi | salty, monterey jack, pepper jack, colby,
         blue cheese, gorgonzola, roquefort, stilton, goat cheese, chevre, queso, cotija | salty,
         asiago, fontina, havarti, edam, muenster, cottage cheese, cream cheese, string cheese,
         mascarpone, taleggio, comte, raclette, jarlsberg, wensleydale, panela, paneer, ricotta,
         kefalotyri, kasseri, boursin, neufchatel, velveeta",
    ),
    (
        "animal",
        "gelatin | @baking, lard | @baking =pork, suet | @baking =beef, tallow | @baking =beef,
         bone marrow | @meat =beef, bone broth | salty @canned, collagen | @other,
         marshmallow | sugar @baking, schmaltz | poultry @meat =chicken",
    ),
    // Oats are nearly always milled beside wheat: only oats sold as gluten-free are free of it.
    (
        "gluten grain @grains",
        "wheat, whole wheat | ~, breaded | ~, battered | ~, spelt, rye, barley, farro, bulgur,
         couscous, semolina | @baking, durum, freekeh, kamut, einkorn, emmer, triticale,
         wheat berry | =wheat, wheat germ | =wheat, gluten | @baking, flour | @baking,
         cake flour | @baking =flour, malt | @baking, beer | @other, oat, oatmeal | =oat,
         oat flour | @baking =oat, oat milk | @dairy =oat, oat yogurt | @dairy =oat,
         oatcake | @bakery =oat, granola | sugar, muesli, cereal | @other, seitan | @produce,
         pasta, spaghetti | =pasta, penne | =pasta, fusilli | =pasta, linguine | =pasta,
         fettuccine | =pasta, tagliatelle | =pasta, pappardelle | =pasta, macaroni | =pasta,
         lasagna | =pasta, ravioli | =pasta, tortellini | =pasta, rigatoni | =pasta,
         farfalle | =pasta, orecchiette | =pasta, rotini | =pasta, ziti | =pasta,
         angel hair | =pasta, bucatini | =pasta, cannelloni | =pasta, conchiglie | =pasta,
         ditalini | =pasta, vermicelli | =pasta, manicotti | =pasta, capellini | =pasta,
         paccheri | =pasta, gemelli | =pasta, cavatappi | =pasta, orzo | =pasta,
         gnocchi | starchy, noodle, egg noodle | egg =noodle, ramen | =noodle, udon | =noodle,
         soba | =noodle, lo mein | =noodle, chow mein | =noodle, wonton wrapper | @produce,
         dumpling wrapper | @produce, gyoza wrapper | @produce, spring roll wrapper | @produce,
         egg roll wrapper | egg @produce, wonton | @frozen, dumpling | @frozen, pierogi | @frozen,
         spaetzle | egg, breadcrumb | @baking, panko | @baking =breadcrumb, tempura | @baking",
    ),
    (
        "gluten grain @bakery",
        "bread, toast | =bread, flatbread | =bread, baguette | =bread, ciabatta | =bread,
         focaccia | =bread, sourdough | =bread, pumpernickel | =bread, brioche | egg dairy =bread,
         challah | egg =bread, croissant | dairy, bagel, pita, naan | dairy, roti, chapati,
         paratha, lavash, injera, matzo, crispbread, tortilla, wrap | =tortilla, bun,
         burger bun | =bun, hot dog bun | =bun, hamburger bun | =bun, dinner roll | =bun,
         english muffin | =muffin, muffin | egg dairy sugar, crumpet, scone | dairy sugar,
         biscuit, cracker, crouton, pizza dough, pizza crust, pie crust | @baking, pastry,
         puff pastry | dairy @frozen, phyllo | @frozen, pancake | egg dairy,
         waffle | egg dairy @frozen, crepe | egg dairy, cake | egg dairy sugar, cookie | sugar,
         brownie | egg dairy sugar, donut | sugar, cheesecake | egg dairy sugar, pie,
         graham cracker | sugar @baking, biscotti | egg sugar, breadstick,
         cornbread | egg dairy sugar, pretzel | salty @other, bao | @frozen, dough",
    ),
    // Wheat-based sauces: gluten, but too little grain to matter to a keto diet.
    (
        "gluten @condiments",
        "soy sauce | soy salty, teriyaki | soy salty sugar, hoisin | soy salty sugar,
         ponzu | soy salty, gochujang | soy salty sugar, malt vinegar | =vinegar,
         bechamel | dairy, roux | dairy @baking, gravy | salty @canned",
    ),
    (
        "grain @grains",
        "rice | starchy, wild rice | starchy =rice, rice noodle | starchy =noodle,
         rice vermicelli | starchy =noodle, rice paper | starchy,
         rice flour | starchy @baking =rice, rice cake | starchy @other,
         rice cracker | starchy salty @other, rice milk | @dairy =rice,
         rice pasta | starchy =pasta, quinoa, quinoa flour | @baking =quinoa, buckwheat,
         buckwheat flour | @baking =buckwheat, millet, millet flour | @baking =millet, amaranth,
         sorghum, sorghum flour | @baking =sorghum, teff, teff flour | @baking =teff,
         polenta | starchy, grits | starchy, cornmeal | starchy @baking,
         masa harina | starchy @baking, corn | starchy @produce,
         corn flour | starchy @baking =corn, corn tortilla | starchy @bakery =tortilla,
         tortilla chip | starchy salty @other, taco shell | starchy @bakery,
         tostada | starchy @bakery, arepa | starchy @bakery, popcorn | starchy @other,
         cornflake | starchy sugar @other, cornstarch | starchy @baking, hominy | starchy @canned",
    ),
    (
        "starchy @baking",
        "starch, tapioca, arrowroot, sago, potato flour | =potato, tapioca flour | =tapioca,
         cassava flour | =cassava, potato chip | salty @other =potato,
         hash brown | @frozen =potato, french fry | @frozen =potato, tater tot | @frozen =potato",
    ),
    (
        "legume @canned",
        "bean | =bean, kidney bean | =bean, butter bean | =bean, baked bean | sugar =bean,
         black eyed pea, split pea | @grains =pea, lentil | @grains, dal | @grains =lentil,
         chana dal | @grains =chickpea, chickpea, hummus | @condiments =chickpea,
         falafel | @frozen =chickpea, chickpea flour | @baking =chickpea,
         chickpea pasta | @grains =pasta, lentil pasta | @grains =pasta, soybean | soy,
         edamame | soy @frozen, peanut | peanut @nuts, peanut butter | peanut @condiments =peanut,
         satay | peanut soy salty sugar @condiments =peanut, pea milk | @dairy =pea,
         pea protein | @other =pea",
    ),
    // Soy foods are not counted as legumes: a keto diet commonly keeps tofu and soy sauce.
    (
        "soy",
        "soy | @other, tofu | @produce, tempeh | @produce, natto | @produce,
         miso | salty @condiments, soy milk | @dairy =soy, soy yogurt | @dairy =soy,
         tamari | salty @condiments, doenjang | salty @condiments =miso,
         black bean sauce | salty @condiments, textured vegetable protein | @grains",
    ),
    (
        "treenut @nuts",
        "almond, walnut, cashew, pecan, pistachio, hazelnut, macadamia, brazil nut, pine nut,
         chestnut, nut | ? peanut, praline | sugar, almond flour | @baking =almond,
         almond milk | @dairy =almond, almond butter | @condiments =almond,
         almond yogurt | @dairy =almond, almond extract | @baking =almond,
         cashew butter | @condiments =cashew, cashew milk | @dairy =cashew,
         cashew cream | @condiments =cashew, cashew cheese | @dairy =cashew,
         hazelnut milk | @dairy =hazelnut, macadamia milk | @dairy =macadamia,
         nut butter | @condiments =nut, nut milk | @dairy =nut, marzipan | sugar @baking =almond,
         frangipane | egg dairy sugar @baking =almond,
         nutella | dairy sugar @condiments =hazelnut, pesto | dairy @condiments,
         trail mix | peanut",
    ),
    (
        "@nuts",
        "seed, sesame, chia, flaxseed, hemp, hemp milk | @dairy =hemp,
         tahini | @condiments =sesame, sunflower seed butter | @condiments,
         flax egg | @baking =flaxseed, chia egg | @baking =chia, raisin, sultana | =raisin,
         currant, prune, date, goji",
    ),
    (
        "herb @produce",
        "basil, parsley, cilantro, mint, dill, chive, rosemary, thyme, sage, oregano | @spices,
         tarragon, marjoram | @spices, bay leaf | @spices, curry leaf, lime leaf, lemongrass,
         chervil, sorrel, lovage, shiso, epazote, herb, garlic, onion, ginger, chili",
    ),
    (
        "@produce",
        "shallot, leek, celery, carrot, potato | starchy, sweet potato | starchy, yam | starchy,
         cassava | starchy, yuca | starchy =cassava, taro | starchy, plantain | starchy,
         parsnip | starchy, breadfruit | starchy, turnip, rutabaga, beet, radish, daikon,
         celeriac, jicama, fennel, kohlrabi, artichoke, asparagus, broccoli,
         broccolini | =broccoli, rapini, cauliflower, cauliflower rice | =cauliflower, cabbage,
         brussels sprout, bok choy, kale, spinach, chard, swiss chard | =chard, collard,
         green | ?, lettuce, lettuce wrap | =lettuce, romaine | =lettuce, iceberg | =lettuce,
         butter lettuce | =lettuce, little gem | =lettuce, salad leaf | =lettuce,
         salad green | =lettuce, spring mix | =lettuce, mesclun | =lettuce, arugula, watercress,
         cress, endive, radicchio, frisee, escarole, microgreen, sprout, bean sprout | =sprout,
         pea shoot, tomato, cherry tomato | =tomato, grape tomato | =tomato,
         plum tomato | =tomato, tomatillo, cucumber, zucchini, zucchini noodle | =zucchini,
         squash, butternut squash | =squash, acorn squash | =squash, spaghetti squash | =squash,
         kabocha | =squash, pumpkin, eggplant, bell pepper | =pepper, banana pepper | =pepper,
         jalapeno, serrano, poblano, habanero, scotch bonnet, anaheim, fresno, shishito, padron,
         cubanelle, baby corn | =corn, pea | legume starchy, snow pea | =pea,
         sugar snap pea | =pea, green bean, okra, lotus root, mushroom, shiitake | =mushroom,
         portobello | =mushroom, cremini | =mushroom, oyster mushroom | =mushroom,
         enoki | =mushroom, chanterelle | =mushroom, porcini | =mushroom, morel | =mushroom,
         maitake | =mushroom, wood ear | =mushroom, truffle, avocado, vegetable, fruit | ?,
         berry | ?, apple, pear, banana, orange, lemon, lime, grapefruit, clementine, tangerine,
         mandarin, satsuma, kumquat, yuzu, grape, strawberry, blueberry, raspberry, blackberry,
         cranberry, cherry, maraschino cherry | sugar @canned =cherry, peach, nectarine, plum,
         apricot, mango, pineapple, papaya, kiwi, passion fruit, pomegranate,
         pomegranate seed | =pomegranate, fig, watermelon, cantaloupe, honeydew, melon, guava,
         lychee, dragon fruit, persimmon, star fruit, rhubarb, acai, lemon juice | =lemon,
         lime juice | =lime, lemon zest | =lemon, lime zest | =lime, orange zest | =orange,
         coconut meat | =coconut, pico de gallo | =tomato, guacamole | =avocado, galangal,
         horseradish, kimchi | salty fish",
    ),
    (
        "@spices",
        "salt | salty, pepper | ?, peppercorn | =pepper, cayenne, paprika, cumin,
         cumin seed | =cumin, ground coriander | =coriander, coriander seed | =coriander,
         turmeric, ground ginger | =ginger, cinnamon, nutmeg, clove, cardamom, anise,
         anise seed | =anise, allspice, chili powder | =chili, red pepper flake | =chili, ancho,
         chipotle powder | =chipotle, curry, garam masala, ras el hanout, zaatar, sumac,
         gochugaru | =chili, spice, pumpkin pie spice | =spice, apple pie spice | =spice,
         seasoning, old bay | salty, herbes de provence, saffron, mustard seed | =mustard,
         mustard powder | =mustard, fennel seed | =fennel, caraway, caraway seed | =caraway,
         celery seed | =celery, dill seed | =dill, garlic powder | =garlic, onion powder | =onion,
         fenugreek, fenugreek seed | =fenugreek, nigella, nigella seed | =nigella, asafoetida,
         mace, juniper, juniper berry | =juniper, lemon pepper, msg | salty, poppy seed | @baking",
    ),
    (
        "@condiments",
        "oil, olive oil, vinegar, apple cider vinegar | =vinegar, rice vinegar | =vinegar,
         balsamic | =vinegar, mustard, dijon mustard | =mustard, ketchup | sugar salty, hot sauce,
         sriracha | sugar salty, harissa, sambal, sweet chili sauce | sugar,
         bbq sauce | sugar salty, salsa, sauce, paste, dressing, vinaigrette, ranch | dairy egg,
         relish | sugar, pickle | salty, gherkin | salty =pickle, caper | salty,
         olive | salty @canned, sauerkraut | salty @canned, chutney | sugar, wasabi,
         coconut amino | =coconut, tamarind, pomegranate molasses | sugar =pomegranate,
         syrup | sugar, honey | honey sugar, honeycomb | honey sugar =honey, agave | sugar,
         jam | sugar, jelly | sugar, marmalade | sugar, preserve | sugar,
         apple butter | sugar =apple, cooking spray, liquid smoke, rice wine, mirin | sugar,
         salted | ~ salty, cured | ~ salty, sweetened | ~ sugar, candied | ~ sugar,
         glazed | ~ sugar",
    ),
    (
        "@canned",
        "stock | salty, broth | salty, bouillon | salty, tomato paste | =tomato,
         tomato sauce | =tomato, tomato puree | =tomato, passata | =tomato,
         crushed tomato | =tomato, marinara | =tomato, pasta sauce | =tomato,
         pizza sauce | =tomato, enchilada sauce, coconut milk | =coconut,
         coconut cream | =coconut, applesauce | =apple, pumpkin puree | =pumpkin,
         artichoke heart | =artichoke, water chestnut, bamboo shoot, heart of palm,
         roasted red pepper | =pepper, piquillo | =pepper, pepperoncini | =pepper,
         chipotle | herb, sun dried tomato | =tomato, jackfruit",
    ),
    (
        "@baking",
        "sugar | sugar, muscovado | sugar =sugar, jaggery | sugar =sugar, molasses | sugar,
         treacle | sugar, chocolate | sugar, white chocolate | dairy sugar =chocolate, cocoa,
         cacao | =cocoa, cocoa butter | =cocoa, caramel | sugar, toffee | sugar, sprinkle | sugar,
         icing | sugar, frosting | sugar, fondant | sugar, stevia, erythritol, xylitol,
         monk fruit, sweetener, yeast, baking powder, baking soda, cream of tartar, pectin, agar,
         vanilla, vanilla bean | =vanilla, coconut, coconut flour | =coconut,
         coconut yogurt | @dairy =coconut, food coloring",
    ),
    (
        "@other",
        "water, wine, sake, sherry, brandy, rum, bourbon, whiskey, vodka, tequila, coffee,
         coffee bean | =coffee, espresso | =coffee, tea, matcha | =tea, juice, soda, kombucha,
         protein powder, seaweed, nori | =seaweed, wakame | =seaweed, kombu | =seaweed,
         ice | @frozen, candy | sugar, jelly bean | sugar =candy, sorbet | sugar @frozen",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tables_are_consistent() {
        LazyLock::force(&FOODS);
        LazyLock::force(&SYNONYMS);
        assert!(FOODS.map.len() > 500, "{} foods", FOODS.map.len());
    }

    #[test]
    fn every_food_name_is_already_normalised() {
        let changed: Vec<(String, &String)> = FOODS
            .map
            .keys()
            .map(|name| (normalize(name), name))
            .filter(|(normal, name)| normal != *name)
            .collect();
        assert!(changed.is_empty(), "{changed:?}");
    }

    #[test]
    fn every_synonym_target_is_already_normalised() {
        for (_, to) in SYNONYM_PAIRS {
            assert_eq!(normalize(to), *to);
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

    #[test]
    fn disliked_foods_match_whole_words_after_normalising() {
        for (ingredient, food) in [
            ("Shiitake mushrooms", "mushroom"),
            ("shiitake", "mushrooms"),
            ("red onion", "onions"),
            ("prawns", "shrimp"),
            ("coriander", "cilantro"),
            ("chicken stock", "chicken"),
            ("cherry tomatoes", "tomato"),
            ("bacon", "pork"),
            ("prosciutto", "pork"),
            ("sirloin steak", "beef"),
            ("Tomatoes", "TOMATO"),
            ("egg noodles", "egg"),
            ("coconut milk", "coconut"),
            ("green onions", "onion"),
            ("bell pepper", "peppers"),
        ] {
            assert!(
                matches_food(ingredient, food),
                "{ingredient} should match {food}"
            );
        }
        for (ingredient, food) in [
            ("pineapple", "apple"),
            ("eggplant", "egg"),
            ("peanut butter", "butter"),
            ("coconut milk", "milk"),
            ("butternut squash", "butter"),
            ("nutmeg", "nuts"),
            ("coconut", "nuts"),
            ("water chestnuts", "nuts"),
            ("sweet potato", "potato"),
            ("tuna steak", "beef"),
            ("turkey bacon", "pork"),
            ("ground coriander", "cilantro"),
            ("rice vinegar", "rice"),
            ("", "rice"),
            ("rice", ""),
        ] {
            assert!(
                !matches_food(ingredient, food),
                "{ingredient} should not match {food}"
            );
        }
    }

    #[test]
    fn group_words_match_their_members() {
        for ingredient in [
            "almonds",
            "walnut",
            "cashews",
            "peanut butter",
            "pine nuts",
            "pesto",
        ] {
            assert!(matches_food(ingredient, "nuts"), "{ingredient}");
        }
        for ingredient in ["salmon fillet", "tuna", "cod", "fish sauce", "anchovies"] {
            assert!(matches_food(ingredient, "fish"), "{ingredient}");
        }
        for ingredient in ["ghee", "parmesan", "greek yogurt", "heavy cream"] {
            assert!(matches_food(ingredient, "dairy"), "{ingredient}");
        }
        for ingredient in ["feta", "halloumi", "paneer", "cream cheese"] {
            assert!(matches_food(ingredient, "cheese"), "{ingredient}");
        }
        for ingredient in ["bacon", "chicken thighs", "lamb chops", "ground beef"] {
            assert!(matches_food(ingredient, "meat"), "{ingredient}");
        }
        for ingredient in ["prawns", "mussels", "salmon"] {
            assert!(matches_food(ingredient, "seafood"), "{ingredient}");
        }
        assert!(!matches_food("milk", "cheese"));
        assert!(!matches_food("tofu", "meat"));
        assert!(!matches_food("coconut meat", "meat"));
        assert!(!matches_food("vegan cheese", "dairy"));
    }

    #[test]
    fn gluten_is_found_unless_the_name_says_gluten_free() {
        for name in [
            "all-purpose flour",
            "whole wheat bread",
            "spaghetti",
            "couscous",
            "bulgur wheat",
            "pearl barley",
            "rye bread",
            "soy sauce",
            "panko breadcrumbs",
            "flour tortillas",
            "egg noodles",
            "udon noodles",
            "seitan",
            "semolina",
            "farro",
            "rolled oats",
            "pita bread",
            "beer",
            "malt vinegar",
        ] {
            assert!(traits(name).gluten, "{name}");
        }
        for name in [
            "gluten-free pasta",
            "tamari",
            "rice noodles",
            "corn tortillas",
            "rice flour",
            "almond flour",
            "quinoa",
            "buckwheat",
            "gluten-free rolled oats",
            "chickpea flour",
            "glutinous rice",
            "cornstarch",
            "potatoes",
            "gluten free soy sauce",
        ] {
            assert!(!traits(name).gluten, "{name}");
        }
        assert!(
            traits("gluten-free bread").grain,
            "gluten-free bread is still grain"
        );
    }

    #[test]
    fn dairy_is_found_but_plant_milks_and_nut_butters_are_not_dairy() {
        for name in [
            "whole milk",
            "unsalted butter",
            "heavy cream",
            "greek yogurt",
            "ghee",
            "whey",
            "parmesan",
            "feta",
            "mozzarella",
            "cheddar cheese",
            "ricotta",
            "halloumi",
            "paneer",
            "buttermilk",
            "sour cream",
            "cream cheese",
            "garlic butter",
        ] {
            assert!(traits(name).dairy, "{name}");
        }
        for name in [
            "coconut milk",
            "almond milk",
            "oat milk",
            "soy milk",
            "peanut butter",
            "almond butter",
            "cocoa butter",
            "cream of tartar",
            "butternut squash",
            "butter beans",
            "coconut cream",
            "dairy-free cheese",
            "vegan butter",
            "nutritional yeast",
            "coconut yogurt",
            "soy yogurt",
        ] {
            assert!(!traits(name).dairy, "{name}");
        }
    }

    #[test]
    fn traits_cover_the_categories() {
        let t = traits("bacon");
        assert!(t.meat && t.high_sodium && !t.poultry);
        assert!(traits("chicken thighs").poultry);
        assert!(traits("smoked salmon").fish);
        assert!(traits("fish sauce").fish, "fish sauce counts as fish");
        assert!(
            traits("Worcestershire sauce").fish,
            "it is made with anchovies"
        );
        assert!(traits("king prawns").shellfish);
        assert!(traits("oyster sauce").shellfish);
        assert!(traits("mayonnaise").egg);
        assert!(!traits("eggplant").egg);
        assert!(traits("honey").honey && traits("honey").added_sugar);
        assert!(traits("gelatin").other_animal);
        assert!(traits("lard").other_animal);
        assert!(traits("cashews").tree_nut);
        let macadamia = traits("macadamia nuts");
        assert!(
            macadamia.tree_nut && !macadamia.peanut,
            "a named nut is not a peanut"
        );
        assert!(traits("mixed nuts").peanut, "mixed nuts may hold peanuts");
        assert!(traits("peanuts").peanut && traits("peanuts").legume);
        assert!(traits("firm tofu").soy);
        assert!(traits("edamame").soy && traits("edamame").legume);
        assert!(traits("brown rice").grain && traits("brown rice").starchy);
        assert!(traits("quinoa").grain);
        assert!(traits("red lentils").legume);
        assert!(traits("black beans").legume);
        assert!(!traits("green beans").legume);
        assert!(traits("sweet potato").starchy);
        assert!(traits("maple syrup").added_sugar);
        assert!(!traits("sugar snap peas").added_sugar);
        assert!(traits("kosher salt").high_sodium);
        assert!(traits("chicken bouillon").high_sodium && traits("chicken bouillon").poultry);
        assert!(!traits("low-sodium chicken broth").high_sodium);
        assert!(
            !traits("olive oil").high_sodium,
            "olives are brined, their oil is not"
        );
        assert!(traits("kalamata olives").high_sodium);
        assert_eq!(traits("broccoli"), FoodTraits::default());
        assert_eq!(traits("something unheard of"), FoodTraits::default());
    }

    #[test]
    fn a_cut_yields_to_the_food_it_is_cut_from() {
        assert!(traits("steak").meat);
        assert!(!traits("tuna steak").meat && traits("tuna steak").fish);
        assert!(!traits("cauliflower steak").meat);
        assert!(!traits("vegetable sausage").meat);
        assert!(traits("turkey bacon").poultry && !traits("turkey bacon").meat);
        assert!(!traits("crab meat").meat && traits("crab meat").shellfish);
    }

    #[test]
    fn main_ingredients_fall_into_families() {
        for (name, key) in [
            ("chicken breast", "chicken"),
            ("Chicken thighs", "chicken"),
            ("ground beef", "beef"),
            ("minced beef", "beef"),
            ("sirloin steak", "beef"),
            ("steak", "beef"),
            ("salmon fillet", "salmon"),
            ("smoked salmon", "salmon"),
            ("firm tofu", "tofu"),
            ("red lentils", "lentil"),
            ("black beans", "bean"),
            ("kidney beans", "bean"),
            ("chickpeas", "chickpea"),
            ("jasmine rice", "rice"),
            ("penne", "pasta"),
            ("portobello mushrooms", "mushroom"),
            ("pork tenderloin", "pork"),
            ("lamb shoulder", "lamb"),
            ("tuna steak", "tuna"),
            ("cauliflower steak", "cauliflower"),
            ("eggs", "egg"),
            ("unheard-of grain", "unheard of grain"),
        ] {
            assert_eq!(main_key(name), key, "{name}");
        }
    }

    #[test]
    fn aisles_follow_the_food_and_its_state() {
        for (name, expected) in [
            ("red onion", Aisle::Produce),
            ("fresh basil", Aisle::Produce),
            ("dried basil", Aisle::Spices),
            ("dried apricots", Aisle::NutsSeedsAndDriedFruit),
            ("chicken breast", Aisle::MeatAndSeafood),
            ("salmon fillet", Aisle::MeatAndSeafood),
            ("canned tuna", Aisle::CannedAndJarred),
            ("tuna in olive oil", Aisle::MeatAndSeafood),
            ("frozen peas", Aisle::Frozen),
            ("greek yogurt", Aisle::DairyAndEggs),
            ("eggs", Aisle::DairyAndEggs),
            ("sourdough bread", Aisle::Bakery),
            ("spaghetti", Aisle::GrainsAndPasta),
            ("red lentils", Aisle::GrainsAndPasta),
            ("chickpeas", Aisle::CannedAndJarred),
            ("dried chickpeas", Aisle::GrainsAndPasta),
            ("chicken stock", Aisle::CannedAndJarred),
            ("coconut milk", Aisle::CannedAndJarred),
            ("all-purpose flour", Aisle::Baking),
            ("rice flour", Aisle::Baking),
            ("brown sugar", Aisle::Baking),
            ("almonds", Aisle::NutsSeedsAndDriedFruit),
            ("pumpkin seeds", Aisle::NutsSeedsAndDriedFruit),
            ("ground cumin", Aisle::Spices),
            ("garlic powder", Aisle::Spices),
            ("black pepper", Aisle::Spices),
            ("jalapeno pepper", Aisle::Produce),
            ("salt and pepper", Aisle::Spices),
            ("olive oil", Aisle::Condiments),
            ("soy sauce", Aisle::Condiments),
            ("peanut butter", Aisle::Condiments),
            ("white wine", Aisle::Other),
            ("something unheard of", Aisle::Other),
        ] {
            assert_eq!(aisle(name), expected, "{name}");
        }
    }

    #[test]
    fn diets_reject_what_they_exclude() {
        use DietType::*;
        assert_eq!(diet_conflict(Vegetarian, "bacon"), Some("contains meat"));
        assert_eq!(
            diet_conflict(Vegetarian, "chicken stock"),
            Some("contains poultry")
        );
        assert_eq!(
            diet_conflict(Vegetarian, "fish sauce"),
            Some("contains fish")
        );
        assert_eq!(
            diet_conflict(Vegetarian, "gelatin"),
            Some("contains an animal product")
        );
        for fine in [
            "eggs",
            "feta",
            "honey",
            "vegetarian worcestershire sauce",
            "tofu",
        ] {
            assert_eq!(diet_conflict(Vegetarian, fine), None, "{fine}");
        }
        assert_eq!(diet_conflict(Vegan, "eggs"), Some("contains egg"));
        assert_eq!(diet_conflict(Vegan, "butter"), Some("contains dairy"));
        assert_eq!(diet_conflict(Vegan, "honey"), Some("contains honey"));
        assert_eq!(diet_conflict(Vegan, "vegan mayonnaise"), None);
        assert_eq!(diet_conflict(Vegan, "coconut milk"), None);
        assert_eq!(diet_conflict(Pescatarian, "prawns"), None);
        assert_eq!(
            diet_conflict(Pescatarian, "turkey"),
            Some("contains poultry")
        );
        assert_eq!(
            diet_conflict(Pescatarian, "lard"),
            Some("contains an animal product")
        );
        assert_eq!(diet_conflict(Keto, "white rice"), Some("contains grain"));
        assert_eq!(diet_conflict(Keto, "potatoes"), Some("is a starchy food"));
        assert_eq!(
            diet_conflict(Keto, "brown sugar"),
            Some("contains added sugar")
        );
        assert_eq!(diet_conflict(Keto, "chickpeas"), Some("contains legumes"));
        assert_eq!(diet_conflict(Keto, "cauliflower rice"), None);
        assert_eq!(diet_conflict(Keto, "tofu"), None);
        assert_eq!(diet_conflict(Paleo, "cheddar"), Some("contains dairy"));
        assert_eq!(diet_conflict(Paleo, "tempeh"), Some("contains soy"));
        assert_eq!(diet_conflict(Paleo, "peanuts"), Some("contains legumes"));
        assert_eq!(diet_conflict(Paleo, "sweet potato"), None);
        assert_eq!(diet_conflict(Omnivore, "bacon"), None);
    }

    #[test]
    fn restrictions_reject_what_they_exclude() {
        use Restriction::*;
        assert_eq!(
            restriction_conflict(GlutenFree, "soy sauce"),
            Some("contains gluten")
        );
        assert_eq!(restriction_conflict(GlutenFree, "tamari"), None);
        assert_eq!(
            restriction_conflict(DairyFree, "ghee"),
            Some("contains dairy")
        );
        assert_eq!(restriction_conflict(DairyFree, "oat milk"), None);
        assert_eq!(
            restriction_conflict(NutFree, "almond flour"),
            Some("contains tree nuts")
        );
        assert_eq!(
            restriction_conflict(NutFree, "peanut butter"),
            Some("contains peanuts")
        );
        assert_eq!(restriction_conflict(NutFree, "nutmeg"), None);
        assert_eq!(restriction_conflict(NutFree, "coconut"), None);
        assert_eq!(
            restriction_conflict(EggFree, "egg noodles"),
            Some("contains egg")
        );
        assert_eq!(
            restriction_conflict(SoyFree, "edamame"),
            Some("contains soy")
        );
        assert_eq!(
            restriction_conflict(ShellfishFree, "shrimp paste"),
            Some("contains shellfish")
        );
        assert_eq!(restriction_conflict(ShellfishFree, "salmon"), None);
        assert_eq!(
            restriction_conflict(LowSodium, "feta"),
            Some("is high in sodium")
        );
        assert_eq!(
            restriction_conflict(LowSodium, "reduced-sodium soy sauce"),
            None
        );
    }

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

    /// Ingredient names as recipes from many cuisines write them.
    const COMMON_INGREDIENTS: &str = "
         2 cups basmati rice, Jasmine rice, arborio rice, sushi rice, brown rice,
         boneless skinless chicken breasts, chicken thighs, whole chicken, chicken wings,
         ground turkey, duck breast, ground beef, beef chuck, flank steak, pork shoulder,
         pork belly, bacon, pancetta, chorizo, Italian sausage, lamb shoulder, lamb chops,
         ground lamb, salmon fillets, cod fillets, canned tuna, shrimp, king prawns, mussels,
         scallops, squid, crab meat, white fish fillets, sea bass, eggs, egg yolks, whole milk,
         heavy cream, butter, ghee, greek yogurt, plain yogurt, sour cream, cream cheese,
         parmesan cheese, feta cheese, fresh mozzarella, shredded cheddar, ricotta, halloumi,
         paneer, goat cheese, gruyère, firm tofu, silken tofu, tempeh, red lentils, green lentils,
         chickpeas, black beans, kidney beans, cannellini beans, edamame, frozen peas, onion,
         red onion, shallots, garlic cloves, fresh ginger, scallions, leeks, carrots, celery stalks,
         potatoes, sweet potatoes, butternut squash, zucchini, eggplant, red bell pepper, jalapeño,
         tomatoes, cherry tomatoes, canned diced tomatoes, tomato paste, passata, spinach,
         baby spinach, kale, bok choy, napa cabbage, broccoli florets, cauliflower, mushrooms,
         shiitake mushrooms, asparagus, green beans, corn kernels, avocado, cucumber, lettuce,
         romaine lettuce, arugula, lemon, lime juice, orange zest, apples, bananas, blueberries,
         strawberries, mango, pineapple, dates, raisins, fresh cilantro, fresh parsley, fresh basil,
         mint leaves, dill, thyme, rosemary, bay leaves, oregano, ground cumin, ground coriander,
         turmeric, paprika, smoked paprika, chili powder, cayenne pepper, red pepper flakes,
         garam masala, curry powder, cinnamon, nutmeg, cardamom pods, star anise, cloves,
         black pepper, sea salt, kosher salt, olive oil, vegetable oil, sesame oil, coconut oil,
         soy sauce, tamari, fish sauce, oyster sauce, hoisin sauce, rice vinegar, balsamic vinegar,
         red wine vinegar, apple cider vinegar, dijon mustard, mayonnaise, ketchup, sriracha,
         gochujang, miso paste, tahini, honey, maple syrup, brown sugar, sugar, all-purpose flour,
         whole wheat flour, cornstarch, baking powder, baking soda, vanilla extract, cocoa powder,
         dark chocolate, rolled oats, quinoa, couscous, bulgur, spaghetti, penne pasta, egg noodles,
         rice noodles, udon noodles, corn tortillas, flour tortillas, pita bread, naan,
         sourdough bread, panko breadcrumbs, chicken stock, vegetable broth, coconut milk, almonds,
         walnuts, cashews, peanuts, pine nuts, sesame seeds, chia seeds, pumpkin seeds,
         peanut butter, capers, kalamata olives, white wine, water, lemongrass, kaffir lime leaves,
         galangal, tamarind paste, nori sheets, mirin, sake, dashi, harissa, za'atar, sumac,
         pomegranate molasses, preserved lemons, saffron threads, chipotle peppers in adobo,
         queso fresco, cotija, masa harina, plantains, cassava, okra, collard greens, hominy,
         tomatillos, poblano peppers,
         crispbread, gochugaru, oatcakes, pea protein powder, coconut yogurt";
}
