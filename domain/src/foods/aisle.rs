//! The aisle an ingredient is bought in, for the grocery list: the food's aisle from the food
//! table, moved by how it is sold ("frozen peas", "canned tuna", "dried basil").

use serde::{Deserialize, Serialize};

use super::reading::{Parsed, foods_in};
use super::traits::LEGUME;

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

/// Words after which the rest of a name no longer says what is bought ("tuna in water").
const CONNECTORS: &[&str] = &["and", "or", "in", "with", "for", "on"];

#[cfg(test)]
mod tests {
    use super::*;

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
}
