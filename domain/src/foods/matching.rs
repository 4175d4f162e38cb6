//! Whether two names are the same food: a disliked food inside an ingredient ("pork" in
//! "bacon", "nuts" in "cashews", never "apple" in "pineapple"), and the family a main
//! ingredient counts as, so that "chicken thighs" and "chicken breast" are not served on
//! consecutive days.

use super::names::normalize;
use super::reading::{Parsed, foods_in};
use super::traits::{
    DAIRY, EGG, FISH, GLUTEN, LEGUME, MEAT, PEANUT, POULTRY, SHELLFISH, SOY, TREE_NUT, bits,
};

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
        Some((_, Group::Traits(group))) => bits(&parsed) & group != 0,
        Some((_, Group::Cheese)) => foods.iter().any(|e| e.cheese),
        None => false,
    }
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
