//! What we ask the model for one day: a compact brief (the user message, as JSON data) and a
//! short system prompt with the rules. Kept lean on purpose: tokens are the running cost.

use serde::{Deserialize, Serialize};

use crate::menu::{Complexity, Day, MealTime};
use crate::request::{Appliance, Cuisine, DietType, GenerationRequest, Macros, Restriction};

/// How many earlier days a main ingredient may not come back from.
pub const MAIN_INGREDIENT_WINDOW: usize = 3;

/// One dish the day must contain and its energy target per serving.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DishTarget {
    pub meal_time: MealTime,
    pub kcal_per_serving: u32,
}

/// The user message for one day, serialised as compact JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DayBrief {
    pub day: u8,
    pub of_days: u8,
    pub servings: u8,
    pub diet: DietType,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restrictions: Vec<Restriction>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other_restrictions: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub avoid_foods: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cuisines: Vec<Cuisine>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub appliances: Vec<Appliance>,
    pub complexity: Complexity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_minutes_per_meal: Option<u16>,
    /// Meals first (in the order breakfast, lunch, dinner), then one entry per snack.
    pub dishes: Vec<DishTarget>,
    pub macros_pct: Macros,
    /// Titles used on other days of this menu, and (for a weekly batch menu) on the person's
    /// previous week's menu: none may be repeated.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub used_titles: Vec<String>,
    /// Main ingredients of the previous three days: none may be the main ingredient again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recent_main_ingredients: Vec<String>,
    /// What was wrong with the previous answer for this day, when asking again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

impl DayBrief {
    /// The brief for `day_number`, given the days already generated (in order).
    pub fn new(
        request: &GenerationRequest,
        day_number: u8,
        earlier_days: &[Day],
        problems: Vec<String>,
    ) -> DayBrief {
        let mut dishes: Vec<DishTarget> = request
            .meal_times
            .iter()
            .map(|t| DishTarget {
                meal_time: *t,
                kcal_per_serving: request.kcal_target(*t).round() as u32,
            })
            .collect();
        for _ in 0..request.snacks_per_day {
            dishes.push(DishTarget {
                meal_time: MealTime::Snack,
                kcal_per_serving: request.kcal_target(MealTime::Snack).round() as u32,
            });
        }
        let used_titles = request
            .avoid_titles
            .iter()
            .cloned()
            .chain(
                earlier_days
                    .iter()
                    .flat_map(|d| d.dishes().map(|m| m.title.clone())),
            )
            .collect();
        let recent = earlier_days
            .iter()
            .filter(|d| {
                d.day_number < day_number
                    && usize::from(day_number - d.day_number) <= MAIN_INGREDIENT_WINDOW
            })
            .flat_map(|d| d.meals.iter().map(|m| m.main_ingredient.to_lowercase()));
        let mut recent_main_ingredients: Vec<String> = Vec::new();
        for m in recent {
            if !recent_main_ingredients.contains(&m) {
                recent_main_ingredients.push(m);
            }
        }
        DayBrief {
            day: day_number,
            of_days: request.days,
            servings: request.servings,
            diet: request.diet_type,
            restrictions: request.restrictions.clone(),
            other_restrictions: request.other_restrictions.clone(),
            avoid_foods: request.disliked_foods.clone(),
            cuisines: request.cuisines.clone(),
            appliances: request.appliances.clone(),
            complexity: request.complexity(),
            max_minutes_per_meal: request.minutes_limit(day_number),
            dishes,
            macros_pct: request.macros,
            used_titles,
            recent_main_ingredients,
            problems,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The system prompt: the rules once, in as few tokens as they can be said.
pub const SYSTEM_PROMPT: &str = "You plan one day of a meal menu. The user message is a JSON brief. \
Reply with JSON only: {\"meals\":[...],\"snacks\":[...]} with one meal per brief dish whose meal_time \
is not snack (same order) and one snack per snack dish. Rules: per_serving kcal within 5% of the \
dish's kcal_per_serving and the day's macros near macros_pct; follow diet, restrictions and \
other_restrictions; never use avoid_foods or anything containing them; no title from used_titles \
and no two dishes with the same title; no main_ingredient from recent_main_ingredients; ingredient \
quantities are for all servings, positive; steps in order; prep_minutes + cook_minutes within \
max_minutes_per_meal; prefer the cuisines and appliances given. If problems are listed, your \
previous answer broke them: fix every one.";

/// Appended to the system prompt when the provider cannot enforce a JSON Schema
/// (`json_object` mode), so the model still knows the shape.
pub fn schema_hint(schema: &serde_json::Value) -> String {
    format!(" The JSON must match this JSON Schema: {schema}")
}
