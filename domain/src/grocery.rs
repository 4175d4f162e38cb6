//! The grocery list of a menu: every ingredient of every day, one line per food and kind of
//! measure, summed in a common unit and grouped by aisle. Nothing is added that no recipe uses.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::foods::{Aisle, aisle, normalize};
use crate::menu::{MenuPlan, Unit, UnitKind};

/// A menu's shopping list, aisle by aisle in shop order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GroceryList {
    pub aisles: Vec<AisleGroup>,
}

/// The items bought in one aisle, sorted by name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AisleGroup {
    pub aisle: Aisle,
    pub items: Vec<GroceryItem>,
}

/// One food in one kind of measure. `name` is the normalised ingredient name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GroceryItem {
    pub name: String,
    pub quantity: f64,
    pub unit: Unit,
}

/// Sums every ingredient of `plan` by normalised name and unit kind: masses in grams, volumes in
/// millilitres (shown in kg or l from 1000 up), counts in their own unit, or pieces when one food
/// is counted in different units.
pub fn grocery_list(plan: &MenuPlan) -> GroceryList {
    // Keyed by name, then kind, so that iteration is already in the list's order within an aisle.
    let mut totals: BTreeMap<(String, UnitKind), (f64, Unit)> = BTreeMap::new();
    for ingredient in plan
        .days
        .iter()
        .flat_map(|d| d.dishes())
        .flat_map(|m| &m.ingredients)
    {
        // Validated days never hold such quantities; a stored menu from before the rules might.
        if !(ingredient.quantity.is_finite() && ingredient.quantity > 0.0) {
            continue;
        }
        let name = normalize(&ingredient.name);
        if name.is_empty() {
            continue;
        }
        let kind = ingredient.unit.kind();
        let base_unit = match kind {
            UnitKind::Mass => Unit::G,
            UnitKind::Volume => Unit::Ml,
            UnitKind::Count => ingredient.unit,
        };
        let amount = ingredient.quantity * ingredient.unit.to_base();
        totals
            .entry((name, kind))
            .and_modify(|(sum, unit)| {
                *sum += amount;
                if *unit != base_unit {
                    *unit = Unit::Piece;
                }
            })
            .or_insert((amount, base_unit));
    }

    let mut aisles: BTreeMap<Aisle, Vec<GroceryItem>> = BTreeMap::new();
    for ((name, kind), (sum, unit)) in totals {
        let (quantity, unit) = displayed(rounded(sum, kind), unit);
        aisles.entry(aisle(&name)).or_default().push(GroceryItem {
            name,
            quantity,
            unit,
        });
    }
    GroceryList {
        aisles: aisles
            .into_iter()
            .map(|(aisle, items)| AisleGroup { aisle, items })
            .collect(),
    }
}

/// Counted items up to the next whole one (nobody buys 3.8 eggs); otherwise one decimal under
/// 10 and whole numbers from 10 up; never 0 for something a recipe uses.
fn rounded(quantity: f64, kind: UnitKind) -> f64 {
    if kind == UnitKind::Count {
        quantity.ceil()
    } else if quantity < 10.0 {
        ((quantity * 10.0).round() / 10.0).max(0.1)
    } else {
        quantity.round()
    }
}

/// Grams and millilitres from 1000 up are shown in kilograms and litres.
fn displayed(quantity: f64, unit: Unit) -> (f64, Unit) {
    match unit {
        Unit::G if quantity >= 1000.0 => (quantity / 1000.0, Unit::Kg),
        Unit::Ml if quantity >= 1000.0 => (quantity / 1000.0, Unit::L),
        _ => (quantity, unit),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::menu::{Day, Ingredient, Meal, Nutrition};
    use crate::vocabulary::{Complexity, MealTime};

    fn dish(meal_time: MealTime, ingredients: &[(&str, f64, Unit)]) -> Meal {
        Meal {
            meal_time,
            title: "A dish".into(),
            cuisine: "Any".into(),
            main_ingredient: "anything".into(),
            servings: 1,
            prep_minutes: 5,
            cook_minutes: 5,
            complexity: Complexity::Easy,
            ingredients: ingredients
                .iter()
                .map(|(name, quantity, unit)| Ingredient {
                    name: (*name).into(),
                    quantity: *quantity,
                    unit: *unit,
                })
                .collect(),
            steps: vec!["Cook.".into()],
            per_serving: Nutrition::default(),
        }
    }

    /// A plan whose first day has one dinner per ingredient list and whose second day has one
    /// snack, so that grouping across dishes, meals and snacks and days is exercised.
    fn plan(dinners: &[&[(&str, f64, Unit)]], snack: &[(&str, f64, Unit)]) -> MenuPlan {
        MenuPlan {
            days: vec![
                Day {
                    day_number: 1,
                    date: None,
                    meals: dinners.iter().map(|i| dish(MealTime::Dinner, i)).collect(),
                    snacks: vec![],
                    totals: Nutrition::default(),
                    source: None,
                },
                Day {
                    day_number: 2,
                    date: None,
                    meals: vec![],
                    snacks: vec![dish(MealTime::Snack, snack)],
                    totals: Nutrition::default(),
                    source: None,
                },
            ],
        }
    }

    fn items(list: &GroceryList) -> Vec<(Aisle, &str, f64, Unit)> {
        list.aisles
            .iter()
            .flat_map(|g| {
                g.items
                    .iter()
                    .map(|i| (g.aisle, i.name.as_str(), i.quantity, i.unit))
            })
            .collect()
    }

    fn item(list: &GroceryList, name: &str) -> Vec<(f64, Unit)> {
        items(list)
            .into_iter()
            .filter(|(_, n, _, _)| *n == name)
            .map(|(_, _, q, u)| (q, u))
            .collect()
    }

    #[test]
    fn volumes_in_different_units_are_summed_in_millilitres() {
        let list = grocery_list(&plan(
            &[&[("olive oil", 2.0, Unit::Tbsp)]],
            &[("extra-virgin olive oil", 30.0, Unit::Ml)],
        ));
        // 2 × 14.79 + 30 = 59.57 ml.
        assert_eq!(item(&list, "olive oil"), vec![(60.0, Unit::Ml)]);
    }

    #[test]
    fn counted_items_are_rounded_up_to_whole_ones() {
        let list = grocery_list(&plan(
            &[&[("egg", 1.4, Unit::Piece)], &[("eggs", 2.4, Unit::Piece)]],
            &[("garlic", 0.3, Unit::Clove)],
        ));
        assert_eq!(item(&list, "egg"), vec![(4.0, Unit::Piece)]);
        assert_eq!(item(&list, "garlic"), vec![(1.0, Unit::Clove)]);
    }

    #[test]
    fn plurals_and_synonyms_are_one_item() {
        let list = grocery_list(&plan(
            &[
                &[
                    ("Tomatoes", 200.0, Unit::G),
                    ("prawns", 200.0, Unit::G),
                    ("coriander leaves", 10.0, Unit::G),
                ],
                &[
                    ("tomato", 100.0, Unit::G),
                    ("shrimp", 4.0, Unit::Oz),
                    ("fresh cilantro, chopped", 5.0, Unit::G),
                ],
            ],
            &[("cherry tomatoes", 150.0, Unit::G)],
        ));
        assert_eq!(item(&list, "tomato"), vec![(300.0, Unit::G)]);
        // 200 g + 4 × 28.35 g.
        assert_eq!(item(&list, "shrimp"), vec![(313.0, Unit::G)]);
        assert_eq!(item(&list, "cilantro"), vec![(15.0, Unit::G)]);
        assert_eq!(item(&list, "cherry tomato"), vec![(150.0, Unit::G)]);
    }

    #[test]
    fn mass_and_volume_of_one_food_are_listed_separately() {
        let list = grocery_list(&plan(
            &[&[("milk", 200.0, Unit::Ml), ("milk", 1.0, Unit::Cup)]],
            &[("Milk", 100.0, Unit::G)],
        ));
        assert_eq!(
            item(&list, "milk"),
            vec![(100.0, Unit::G), (437.0, Unit::Ml)]
        );
    }

    #[test]
    fn a_thousand_grams_or_millilitres_are_shown_in_kilograms_or_litres() {
        let list = grocery_list(&plan(
            &[&[
                ("all-purpose flour", 600.0, Unit::G),
                ("water", 1.5, Unit::L),
                ("potatoes", 2.0, Unit::Lb),
            ]],
            &[
                ("all purpose flour", 500.0, Unit::G),
                ("water", 500.0, Unit::Ml),
            ],
        ));
        assert_eq!(item(&list, "all purpose flour"), vec![(1.1, Unit::Kg)]);
        assert_eq!(item(&list, "water"), vec![(2.0, Unit::L)]);
        // 2 lb = 907.18 g stays in grams.
        assert_eq!(item(&list, "potato"), vec![(907.0, Unit::G)]);
    }

    #[test]
    fn small_amounts_keep_one_decimal() {
        let list = grocery_list(&plan(
            &[&[("salt", 1.0, Unit::Tsp), ("salt", 1.0, Unit::Pinch)]],
            &[("saffron", 0.01, Unit::G)],
        ));
        // 4.93 + 0.31 ml.
        assert_eq!(item(&list, "salt"), vec![(5.2, Unit::Ml)]);
        assert_eq!(
            item(&list, "saffron"),
            vec![(0.1, Unit::G)],
            "never rounded to nothing"
        );
    }

    #[test]
    fn counts_keep_their_unit_or_become_pieces_when_units_differ() {
        let list = grocery_list(&plan(
            &[&[
                ("garlic cloves", 3.0, Unit::Clove),
                ("eggs", 2.0, Unit::Piece),
                ("bread", 2.0, Unit::Slice),
            ]],
            &[
                ("garlic", 2.0, Unit::Clove),
                ("egg", 1.0, Unit::Piece),
                ("bread", 1.0, Unit::Piece),
            ],
        ));
        assert_eq!(item(&list, "garlic"), vec![(5.0, Unit::Clove)]);
        assert_eq!(item(&list, "egg"), vec![(3.0, Unit::Piece)]);
        assert_eq!(item(&list, "bread"), vec![(3.0, Unit::Piece)]);
    }

    #[test]
    fn items_are_sorted_by_aisle_then_name() {
        let list = grocery_list(&plan(
            &[&[
                ("soy sauce", 2.0, Unit::Tbsp),
                ("spinach", 100.0, Unit::G),
                ("chicken thighs", 500.0, Unit::G),
                ("basmati rice", 200.0, Unit::G),
                ("carrots", 2.0, Unit::Piece),
                ("eggs", 2.0, Unit::Piece),
            ]],
            &[("almonds", 30.0, Unit::G)],
        ));
        let order: Vec<(Aisle, &str)> = items(&list)
            .into_iter()
            .map(|(a, n, _, _)| (a, n))
            .collect();
        assert_eq!(
            order,
            vec![
                (Aisle::Produce, "carrot"),
                (Aisle::Produce, "spinach"),
                (Aisle::MeatAndSeafood, "chicken thigh"),
                (Aisle::DairyAndEggs, "egg"),
                (Aisle::GrainsAndPasta, "basmati rice"),
                (Aisle::NutsSeedsAndDriedFruit, "almond"),
                (Aisle::Condiments, "soy sauce"),
            ]
        );
    }

    #[test]
    fn nothing_is_added_that_no_recipe_uses() {
        let list = grocery_list(&plan(&[&[("lentils", 200.0, Unit::G)]], &[]));
        assert_eq!(
            items(&list),
            vec![(Aisle::GrainsAndPasta, "lentil", 200.0, Unit::G)]
        );
        assert_eq!(
            grocery_list(&MenuPlan { days: vec![] }),
            GroceryList { aisles: vec![] }
        );
    }

    #[test]
    fn unusable_quantities_are_left_out() {
        let list = grocery_list(&plan(
            &[&[("lentils", 0.0, Unit::G), ("rice", f64::NAN, Unit::G)]],
            &[("oats", -1.0, Unit::G)],
        ));
        assert_eq!(list.aisles, vec![]);
    }
}
