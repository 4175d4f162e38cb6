//! The closed word lists a request, a menu, the prompt and the food rules share: diets,
//! restrictions, cuisines, appliances, model tiers, meal times and how demanding a dish is.
//! Each is an enum so that only known words get in; each serialises as the word clients and
//! the model write (kebab-case in requests, snake_case in menus).
//!
//! Each enum derives what it is as a value (copied, compared, hashed; ordered where a request
//! sorts and deduplicates lists of it; a default where a request may leave it out) and how it
//! is written (serde, JSON Schema for the model, OpenAPI). The derive lists are written out on
//! each type, not made by a macro: they differ from type to type, and a reader sees each
//! type's contract where it is declared.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A time of day a dish is eaten. Requests name meal times from the first three; snacks are
/// counted separately (`snacks_per_day`).
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
    JsonSchema,
    ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum MealTime {
    Breakfast,
    Lunch,
    Dinner,
    Snack,
}

impl MealTime {
    /// The meals a request may name, in the order of the day; every meal time but snack.
    pub const MEALS: [MealTime; 3] = [MealTime::Breakfast, MealTime::Lunch, MealTime::Dinner];

    /// The serialised name (`"breakfast"`, ..., `"snack"`).
    pub fn as_str(self) -> &'static str {
        match self {
            MealTime::Breakfast => "breakfast",
            MealTime::Lunch => "lunch",
            MealTime::Dinner => "dinner",
            MealTime::Snack => "snack",
        }
    }
}

/// How demanding a dish is to cook; the request's 0–100 `prep_complexity` maps onto it.
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
    JsonSchema,
    ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Complexity {
    Minimal,
    Easy,
    Standard,
    Complex,
}

impl Complexity {
    /// minimal (≤ 25), easy (≤ 50), standard (≤ 75), complex.
    pub fn from_score(score: u8) -> Self {
        match score {
            0..=25 => Complexity::Minimal,
            26..=50 => Complexity::Easy,
            51..=75 => Complexity::Standard,
            _ => Complexity::Complex,
        }
    }
}

/// What a person eats as a rule (default `omnivore`); the foods each excludes are
/// [`crate::foods::diet_conflict`]'s.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema, ToSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum DietType {
    #[default]
    Omnivore,
    Vegetarian,
    Vegan,
    Pescatarian,
    Keto,
    Paleo,
}

/// A kind of food to leave out, for an allergy or health; the foods each excludes are
/// [`crate::foods::restriction_conflict`]'s.
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
    JsonSchema,
    ToSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Restriction {
    GlutenFree,
    DairyFree,
    NutFree,
    EggFree,
    SoyFree,
    ShellfishFree,
    LowSodium,
}

/// A cuisine the dishes may be drawn from.
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
    JsonSchema,
    ToSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Cuisine {
    American,
    British,
    Caribbean,
    Chinese,
    French,
    Greek,
    Indian,
    Italian,
    Japanese,
    Korean,
    Mediterranean,
    Mexican,
    MiddleEastern,
    Moroccan,
    Spanish,
    Thai,
    Vietnamese,
}

/// A kitchen appliance at hand; the dishes need no other.
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
    JsonSchema,
    ToSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Appliance {
    Oven,
    Stovetop,
    Microwave,
    AirFryer,
    PressureCooker,
    SlowCooker,
    Grill,
    Blender,
    FoodProcessor,
    RiceCooker,
}

/// Quality tier; each maps to a configured model name.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema, ToSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum ModelTier {
    #[default]
    Standard,
    Premium,
}
