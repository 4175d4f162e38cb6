//! The bundled recipe catalogue (`data/recipes.json`, built by `data/generate.py`) and how one
//! recipe becomes a dish of a day: portioned to an energy target and scaled to the servings.

use std::sync::LazyLock;

use domain::menu::{Ingredient, Meal, Nutrition, Unit};
use domain::vocabulary::{Complexity, Cuisine, MealTime};
use serde::Deserialize;

/// One recipe as written: ingredients and nutrition for a single serving.
#[derive(Debug, Clone, Deserialize)]
pub struct Recipe {
    pub title: String,
    pub cuisine: Cuisine,
    pub meal_times: Vec<MealTime>,
    pub main_ingredient: String,
    pub prep_minutes: u32,
    pub cook_minutes: u32,
    pub complexity: Complexity,
    pub ingredients: Vec<Ingredient>,
    pub steps: Vec<String>,
    pub per_serving: Nutrition,
}

static RECIPES: LazyLock<Vec<Recipe>> = LazyLock::new(|| {
    serde_json::from_str(include_str!("../data/recipes.json"))
        .expect("data/recipes.json is generated and checked by the catalogue tests")
});

/// Every recipe in the catalogue.
pub fn recipes() -> &'static [Recipe] {
    &RECIPES
}

impl Recipe {
    pub fn total_minutes(&self) -> u32 {
        self.prep_minutes + self.cook_minutes
    }

    /// Shares of the recipe's energy from protein, carbs and fat (each 0–1).
    pub fn macro_shares(&self) -> [f64; 3] {
        let (p, c, f) = self.per_serving.macro_percentages();
        [p / 100.0, c / 100.0, f / 100.0]
    }

    /// The recipe as a dish: the portion resized so one serving supplies `kcal_per_serving`,
    /// and ingredient quantities for all `servings`.
    pub fn to_meal(&self, meal_time: MealTime, kcal_per_serving: f64, servings: u8) -> Meal {
        let portion = kcal_per_serving / self.per_serving.kcal;
        let factor = portion * f64::from(servings.max(1));
        let ingredients = self
            .ingredients
            .iter()
            .map(|i| Ingredient {
                name: i.name.clone(),
                quantity: round_quantity(i.quantity * factor, i.unit),
                unit: i.unit,
            })
            .collect();
        let n = self.per_serving.scaled(portion);
        Meal {
            meal_time,
            title: self.title.clone(),
            cuisine: cuisine_name(self.cuisine),
            main_ingredient: self.main_ingredient.clone(),
            servings,
            prep_minutes: self.prep_minutes,
            cook_minutes: self.cook_minutes,
            complexity: self.complexity,
            ingredients,
            steps: self.steps.clone(),
            per_serving: Nutrition {
                kcal: round_to(n.kcal, 1.0),
                protein_g: round_to(n.protein_g, 0.1),
                carbs_g: round_to(n.carbs_g, 0.1),
                fat_g: round_to(n.fat_g, 0.1),
            },
        }
    }
}

/// The cuisine as requests spell it ("middle-eastern").
pub fn cuisine_name(cuisine: Cuisine) -> String {
    match serde_json::to_value(cuisine) {
        Ok(serde_json::Value::String(name)) => name,
        _ => format!("{cuisine:?}").to_lowercase(),
    }
}

fn round_to(value: f64, step: f64) -> f64 {
    (value / step).round() * step
}

/// Kitchen precision: whole grams and millilitres for larger amounts, quarter spoons and
/// pieces; never rounded down to nothing.
fn round_quantity(quantity: f64, unit: Unit) -> f64 {
    let step = match unit {
        Unit::G | Unit::Ml if quantity >= 20.0 => 1.0,
        Unit::G | Unit::Ml => 0.5,
        Unit::Kg | Unit::L | Unit::Lb => 0.01,
        Unit::Oz => 0.1,
        Unit::Pinch => 1.0,
        Unit::Tsp | Unit::Tbsp | Unit::Cup | Unit::Piece | Unit::Clove | Unit::Slice => 0.25,
    };
    round_to(quantity, step).max(step)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalogue_loads_and_is_large_and_consistent() {
        let all = recipes();
        assert!(all.len() >= 300, "only {} recipes", all.len());
        for r in all {
            let n = r.per_serving;
            let from_macros = 4.0 * n.protein_g + 4.0 * n.carbs_g + 9.0 * n.fat_g;
            assert!(
                (n.kcal - from_macros).abs() <= 0.02 * n.kcal + 2.0,
                "{}: {} kcal but macros give {from_macros}",
                r.title,
                n.kcal
            );
            assert!((2..=6).contains(&r.steps.len()), "{}", r.title);
            assert!(!r.meal_times.is_empty(), "{}", r.title);
            assert!(
                r.ingredients.iter().all(|i| i.quantity > 0.0),
                "{}",
                r.title
            );
        }
        let mut titles: Vec<&str> = all.iter().map(|r| r.title.as_str()).collect();
        titles.sort_unstable();
        titles.dedup();
        assert_eq!(titles.len(), all.len(), "titles are unique");
    }

    #[test]
    fn a_dish_is_portioned_to_its_target_and_scaled_to_servings() {
        let recipe = &recipes()[0];
        let meal = recipe.to_meal(MealTime::Breakfast, 600.0, 3);
        assert!((meal.per_serving.kcal - 600.0).abs() <= 1.0);
        let portion = 600.0 / recipe.per_serving.kcal;
        for (scaled, original) in meal.ingredients.iter().zip(&recipe.ingredients) {
            let expected = original.quantity * portion * 3.0;
            assert!(
                (scaled.quantity - expected).abs() <= expected * 0.1 + 0.5,
                "{} {} vs {}",
                scaled.name,
                scaled.quantity,
                expected
            );
        }
    }

    #[test]
    fn cuisines_are_named_as_requests_name_them() {
        assert_eq!(cuisine_name(Cuisine::MiddleEastern), "middle-eastern");
    }
}
