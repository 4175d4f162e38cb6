//! The food table (`data/foods.tsv`): for each known food phrase, what it is made of, the
//! family it counts as and the aisle it is bought in. Read once, on first use.

use std::collections::HashMap;
use std::sync::LazyLock;

use super::aisle::Aisle;
use super::phrases::Phrases;
use super::traits::TRAITS;
use super::tsv;

/// How a phrase counts when a name is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    /// A food in its own right.
    Food,
    /// A cut or form that names a food only when nothing else does: "steak" is beef, but "tuna
    /// steak" is tuna and "cauliflower steak" is cauliflower.
    Form,
    /// A word that adds traits to the food beside it ("whole wheat", "salted").
    Modifier,
}

/// One row of the table.
#[derive(Debug, Clone, Copy)]
pub(super) struct Entry {
    pub(super) role: Role,
    /// Trait bits (see `traits::TRAITS`).
    pub(super) bits: u32,
    pub(super) cheese: bool,
    /// Dried, it is bought as a spice (herbs, chilies, garlic, ginger).
    pub(super) herb: bool,
    /// `None` for a modifier only.
    pub(super) aisle: Option<Aisle>,
    /// `None` for a modifier only.
    pub(super) family: Option<&'static str>,
}

/// Every known food phrase, looked up longest first. A mistake in the table panics on first
/// use; the tests use it.
pub(super) static FOODS: LazyLock<Phrases<Entry>> = LazyLock::new(|| {
    let mut map: HashMap<String, Entry> = HashMap::new();
    for row in food_rows() {
        let (name, entry) = row.unwrap_or_else(|e| panic!("{e}"));
        assert!(
            map.insert(name.to_string(), entry).is_none(),
            "food {name:?} is listed twice"
        );
    }
    Phrases::new(map)
});

/// The rows of `data/foods.tsv` (columns: food, aisle, family, traits, kind; see its header),
/// each a name and its entry, or what is wrong with the row.
fn food_rows() -> impl Iterator<Item = Result<(&'static str, Entry), String>> {
    tsv::rows(include_str!("data/foods.tsv"))
        .map(|row| parse_row(&row.fields).map_err(|e| format!("foods.tsv line {}: {e}", row.line)))
}

fn parse_row(fields: &[&'static str]) -> Result<(&'static str, Entry), String> {
    let (name, aisle, family, traits, kind) = match *fields {
        [name] => (name, "", "", "", ""),
        [name, aisle] => (name, aisle, "", "", ""),
        [name, aisle, family] => (name, aisle, family, "", ""),
        [name, aisle, family, traits] => (name, aisle, family, traits, ""),
        [name, aisle, family, traits, kind] => (name, aisle, family, traits, kind),
        _ => return Err(format!("{} columns, at most 5", fields.len())),
    };
    if name.is_empty() {
        return Err("no food name".into());
    }
    let mut entry = Entry {
        role: Role::Food,
        bits: 0,
        cheese: false,
        herb: false,
        aisle: None,
        family: None,
    };
    for word in kind.split_whitespace() {
        match word {
            "form" => entry.role = Role::Form,
            "modifier" => entry.role = Role::Modifier,
            "cheese" => entry.cheese = true,
            "herb" => entry.herb = true,
            _ => return Err(format!("food {name:?}: unknown kind {word:?}")),
        }
    }
    for tag in traits.split_whitespace() {
        match TRAITS.iter().find(|(t, _, _)| *t == tag) {
            Some((_, bit, _)) => entry.bits |= bit,
            None => return Err(format!("food {name:?}: unknown trait {tag:?}")),
        }
    }
    match (entry.role, aisle, family) {
        (Role::Modifier, "", "") => {}
        (Role::Modifier, _, _) => return Err(format!("modifier {name:?} has an aisle or family")),
        (_, "", _) => return Err(format!("food {name:?} has no aisle")),
        (_, aisle, family) => {
            entry.aisle = Some(aisle_tag(aisle).ok_or(format!("unknown aisle {aisle:?}"))?);
            entry.family = Some(if family.is_empty() { name } else { family });
        }
    }
    Ok((name, entry))
}

/// The aisle an `aisle` column names.
fn aisle_tag(tag: &str) -> Option<Aisle> {
    Some(match tag {
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
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::foods::names::normalize;

    #[test]
    fn every_row_parses_and_no_food_is_listed_twice() {
        assert_eq!(tsv::repeated_key(food_rows()), None);
    }

    #[test]
    fn the_tables_are_consistent() {
        LazyLock::force(&FOODS);
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
    fn a_row_that_breaks_the_format_is_refused() {
        for bad in [
            &["", "meat"][..],
            &["beef", ""],
            &["beef", "butcher"],
            &["beef", "meat", "", "red"],
            &["beef", "meat", "", "", "cut"],
            &["salted", "condiments", "", "salty", "modifier"],
            &["beef", "meat", "", "meat", "", "extra"],
        ] {
            assert!(parse_row(bad).is_err(), "{bad:?}");
        }
        let (name, steak) = parse_row(&["steak", "meat", "beef", "meat", "form"]).unwrap();
        assert_eq!(name, "steak");
        assert_eq!(steak.role, Role::Form);
        assert_eq!(steak.family, Some("beef"));
    }
}
