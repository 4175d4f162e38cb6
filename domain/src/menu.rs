//! The menu a job produces: days of meals with typed quantities and nutrition.
//!
//! The same types are the LLM's output contract (their JSON Schema is sent as Structured
//! Outputs) and what is stored. Fields the model must not decide (`day_number`, `servings`,
//! `totals`, `date`) are skipped in the schema and filled in locally after validation.

use chrono::NaiveDate;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::vocabulary::{Complexity, MealTime};

/// Units a quantity may be given in. A closed set so quantities can be summed and converted.
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
pub enum Unit {
    G,
    Kg,
    Oz,
    Lb,
    Ml,
    L,
    Tsp,
    Tbsp,
    Cup,
    Pinch,
    Piece,
    Clove,
    Slice,
}

/// What a unit measures; quantities are only summed within one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnitKind {
    Mass,
    Volume,
    Count,
}

impl Unit {
    pub fn kind(self) -> UnitKind {
        match self {
            Unit::G | Unit::Kg | Unit::Oz | Unit::Lb => UnitKind::Mass,
            Unit::Ml | Unit::L | Unit::Tsp | Unit::Tbsp | Unit::Cup | Unit::Pinch => {
                UnitKind::Volume
            }
            Unit::Piece | Unit::Clove | Unit::Slice => UnitKind::Count,
        }
    }

    /// The factor to the kind's base unit (grams, millilitres); count units are their own base.
    pub fn to_base(self) -> f64 {
        match self {
            Unit::G | Unit::Ml | Unit::Piece | Unit::Clove | Unit::Slice => 1.0,
            Unit::Kg | Unit::L => 1000.0,
            Unit::Oz => 28.349_523,
            Unit::Lb => 453.592_37,
            Unit::Tsp => 4.928_922,
            Unit::Tbsp => 14.786_765,
            Unit::Cup => 236.588_24,
            Unit::Pinch => 0.31,
        }
    }
}

/// Energy and macronutrients.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, JsonSchema, ToSchema)]
pub struct Nutrition {
    pub kcal: f64,
    pub protein_g: f64,
    pub carbs_g: f64,
    pub fat_g: f64,
}

impl Nutrition {
    pub fn scaled(self, factor: f64) -> Nutrition {
        Nutrition {
            kcal: self.kcal * factor,
            protein_g: self.protein_g * factor,
            carbs_g: self.carbs_g * factor,
            fat_g: self.fat_g * factor,
        }
    }

    /// Protein, carbs and fat as percentages of the energy they supply (4/4/9 kcal per gram).
    pub fn macro_percentages(self) -> (f64, f64, f64) {
        let p = self.protein_g * 4.0;
        let c = self.carbs_g * 4.0;
        let f = self.fat_g * 9.0;
        let total = p + c + f;
        if total <= 0.0 {
            return (0.0, 0.0, 0.0);
        }
        (p * 100.0 / total, c * 100.0 / total, f * 100.0 / total)
    }
}

impl std::ops::Add for Nutrition {
    type Output = Nutrition;

    fn add(self, other: Nutrition) -> Nutrition {
        Nutrition {
            kcal: self.kcal + other.kcal,
            protein_g: self.protein_g + other.protein_g,
            carbs_g: self.carbs_g + other.carbs_g,
            fat_g: self.fat_g + other.fat_g,
        }
    }
}

/// One ingredient line; `quantity` is for all of the dish's servings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, ToSchema)]
pub struct Ingredient {
    pub name: String,
    pub quantity: f64,
    pub unit: Unit,
}

/// One dish of a day: a meal or a snack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, ToSchema)]
pub struct Meal {
    pub meal_time: MealTime,
    pub title: String,
    pub cuisine: String,
    /// The dish's primary protein or base; not repeated within three days.
    pub main_ingredient: String,
    /// Set locally from the request.
    #[serde(default)]
    #[schemars(skip)]
    pub servings: u8,
    pub prep_minutes: u32,
    pub cook_minutes: u32,
    pub complexity: Complexity,
    pub ingredients: Vec<Ingredient>,
    pub steps: Vec<String>,
    pub per_serving: Nutrition,
}

impl Meal {
    pub fn total_minutes(&self) -> u32 {
        self.prep_minutes + self.cook_minutes
    }

    /// What the whole dish supplies: per serving times servings.
    pub fn nutrition(&self) -> Nutrition {
        self.per_serving.scaled(f64::from(self.servings))
    }
}

/// One day of a menu. The model writes `meals` and `snacks`; the rest is filled in locally.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, ToSchema)]
pub struct Day {
    #[serde(default)]
    #[schemars(skip)]
    pub day_number: u8,
    #[serde(default)]
    #[schemars(skip)]
    pub date: Option<NaiveDate>,
    pub meals: Vec<Meal>,
    pub snacks: Vec<Meal>,
    /// Sum over the day's dishes for all servings, computed locally.
    #[serde(default)]
    #[schemars(skip)]
    pub totals: Nutrition,
    /// Which endpoint, model and lane produced the day, recorded by the worker (never read
    /// from the model's answer: it is set after every call). Absent on days stored before
    /// it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(skip)]
    pub source: Option<DaySource>,
}

/// Where a day came from: the configured endpoint's name (`LLM_ENDPOINTS`, or `default` for
/// the single-endpoint settings), the model that answered, and the lane (`normal`: a Chat
/// Completions call; `batch`: a line of a provider batch through the Batch API).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DaySource {
    pub endpoint: String,
    pub model: String,
    pub lane: String,
}

impl Day {
    pub fn dishes(&self) -> impl Iterator<Item = &Meal> {
        self.meals.iter().chain(self.snacks.iter())
    }

    /// Fills in what the model does not decide: numbering, date, servings and totals.
    pub fn finish(&mut self, day_number: u8, date: Option<NaiveDate>, servings: u8) {
        self.day_number = day_number;
        self.date = date;
        for meal in self.meals.iter_mut().chain(self.snacks.iter_mut()) {
            meal.servings = servings;
        }
        self.totals = self
            .dishes()
            .fold(Nutrition::default(), |sum, m| sum + m.nutrition());
    }
}

/// A finished plan: the days in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, ToSchema)]
pub struct MenuPlan {
    pub days: Vec<Day>,
}
