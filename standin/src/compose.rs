//! The stand-in's "model": builds one day from the catalogue that honours a [`DayBrief`] the way
//! a good LLM answer would, and is checked with the same rules the worker applies
//! ([`domain::rules::check_day`]), so a plain call gets a valid day and the worker's re-ask path
//! is only exercised when a test asks for it.
//!
//! Each dish is portioned to its calorie target, so the day's calories are right by
//! construction; what the search decides is which recipes to combine so the day's macro split
//! lands on the target (the split is the calorie-weighted mean of the dishes' splits).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, LazyLock, Mutex};

use domain::foods::{diet_conflict, main_key, matches_food, normalize, restriction_conflict};
use domain::menu::{Day, Meal, Nutrition};
use domain::prompt::{DayBrief, DishTarget};
use domain::rules::{MACRO_TOLERANCE_POINTS, Problem, check_day};
use domain::vocabulary::{DietType, MealTime, Restriction};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::catalogue::{Recipe, recipes};
use crate::faults::BrokenRule;

/// A composed day and what `check_day` says about it (empty when valid).
#[derive(Debug, Clone)]
pub struct Composition {
    pub day: Day,
    pub problems: Vec<Problem>,
}

/// Restarts of the local search; more when the brief says an earlier answer was wrong.
const RESTARTS: usize = 12;
const RESTARTS_ON_REASK: usize = 48;
/// How many of the best distinct combinations are checked against the rules.
const SHORTLIST: usize = 8;
/// Squared points of macro error a preference is worth: a preferred cuisine or an easier dish
/// wins over a slightly closer split, never over a valid one.
const PREFERENCE_WEIGHT: f64 = 12.0;
/// The same main ingredient twice in one day is allowed by the rules but reads badly.
const SAME_MAIN_PENALTY: f64 = 30.0;
/// Macro error kept clear of the tolerance, so portions rounded for display cannot tip a day
/// over it.
const SAFETY_POINTS: f64 = 1.5;

/// Builds the day for `brief`. The same brief and seed always give the same day.
pub fn compose(brief: &DayBrief, seed: u64) -> Composition {
    let mut rng = StdRng::seed_from_u64(seed);
    let slots = candidate_slots(brief, &mut rng);
    let restarts = if brief.problems.is_empty() {
        RESTARTS
    } else {
        RESTARTS_ON_REASK
    };
    let ranked = search(brief, &slots, restarts, &mut rng);
    let mut best: Option<Composition> = None;
    for assignment in ranked {
        let day = build_day(brief, &slots, &assignment);
        let problems = check_day(brief, &day);
        if problems.is_empty() {
            return Composition { day, problems };
        }
        if best
            .as_ref()
            .is_none_or(|b| problems.len() < b.problems.len())
        {
            best = Some(Composition { day, problems });
        }
    }
    best.unwrap_or_else(|| {
        let day = build_day(brief, &slots, &[]);
        let problems = check_day(brief, &day);
        Composition { day, problems }
    })
}

/// A recipe that may fill a slot, with what the search needs about it.
#[derive(Debug, Clone)]
struct Candidate {
    recipe: usize,
    key: Arc<str>,
    /// Protein, carbs and fat shares of the recipe's energy.
    shares: [f64; 3],
    /// Soft costs: off-preference cuisine, harder than asked, and a little seeded noise so
    /// different seeds give different (equally good) days.
    penalty: f64,
}

struct Slot {
    target: DishTarget,
    /// Share of the day's energy this dish supplies.
    weight: f64,
    candidates: Vec<Candidate>,
}

/// What the catalogue knows once about each recipe, so a call does not re-read every
/// ingredient name.
struct Facts {
    key: Arc<str>,
    title: String,
}

static FACTS: LazyLock<Vec<Facts>> = LazyLock::new(|| {
    recipes()
        .iter()
        .map(|r| Facts {
            key: main_key(&r.main_ingredient).into(),
            title: normalize(&r.title),
        })
        .collect()
});

/// Per diet and per restriction: which recipes fit, computed on first use.
static DIET_FITS: LazyLock<Mutex<HashMap<DietType, Arc<Vec<bool>>>>> =
    LazyLock::new(Default::default);
static RESTRICTION_FITS: LazyLock<Mutex<HashMap<Restriction, Arc<Vec<bool>>>>> =
    LazyLock::new(Default::default);

fn fits<K: Copy + Eq + std::hash::Hash>(
    cache: &Mutex<HashMap<K, Arc<Vec<bool>>>>,
    key: K,
    conflict: impl Fn(K, &str) -> Option<&'static str>,
) -> Arc<Vec<bool>> {
    let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
    cache
        .entry(key)
        .or_insert_with(|| {
            Arc::new(
                recipes()
                    .iter()
                    .map(|r| {
                        r.ingredients
                            .iter()
                            .all(|i| conflict(key, &i.name).is_none())
                    })
                    .collect(),
            )
        })
        .clone()
}

/// Free-text restrictions that name a food to leave out ("no pork", "mushroom-free").
fn foods_in_other_restrictions(brief: &DayBrief) -> Vec<String> {
    brief
        .other_restrictions
        .iter()
        .filter_map(|text| {
            let t = text.trim().to_lowercase();
            let food = ["no ", "avoid ", "without ", "free of "]
                .iter()
                .find_map(|p| t.strip_prefix(p))
                .or_else(|| t.strip_suffix("-free"))
                .or_else(|| t.strip_suffix(" free"))?;
            let food = food.trim();
            (!food.is_empty()).then(|| food.to_string())
        })
        .collect()
}

/// For each dish of the brief, the recipes that may fill it. Rules that make a day invalid are
/// hard filters, loosened one at a time only when nothing is left, so a best-effort day still
/// comes out.
fn candidate_slots(brief: &DayBrief, rng: &mut StdRng) -> Vec<Slot> {
    let all = recipes();
    let facts = &*FACTS;
    let diet = fits(&DIET_FITS, brief.diet, diet_conflict);
    let restrictions: Vec<Arc<Vec<bool>>> = brief
        .restrictions
        .iter()
        .map(|r| fits(&RESTRICTION_FITS, *r, restriction_conflict))
        .collect();
    let mut avoid = brief.avoid_foods.clone();
    avoid.extend(foods_in_other_restrictions(brief));
    let allowed: Vec<bool> = (0..all.len())
        .map(|i| {
            diet[i]
                && restrictions.iter().all(|r| r[i])
                && !avoid.iter().any(|food| uses(&all[i], food))
        })
        .collect();
    let used: HashSet<String> = brief.used_titles.iter().map(|t| normalize(t)).collect();
    let recent: HashSet<String> = brief
        .recent_main_ingredients
        .iter()
        .map(|m| main_key(m))
        .collect();
    let total_kcal: f64 = brief
        .dishes
        .iter()
        .map(|d| f64::from(d.kcal_per_serving))
        .sum::<f64>()
        .max(1.0);

    brief
        .dishes
        .iter()
        .map(|target| {
            let time = target.meal_time;
            let is_meal = time != MealTime::Snack;
            let suits = |r: &Recipe| r.meal_times.contains(&time);
            // Loosely: any meal for a meal, any snack for a snack.
            let suits_loosely = |r: &Recipe| {
                r.meal_times
                    .iter()
                    .any(|t| (*t != MealTime::Snack) == is_meal)
            };
            let quick = |r: &Recipe| {
                brief
                    .max_minutes_per_meal
                    .is_none_or(|max| r.total_minutes() <= u32::from(max))
            };
            let fresh = |i: usize| !used.contains(&facts[i].title);
            let new_main = |i: usize| !is_meal || !recent.contains(&*facts[i].key);
            // Strictest first: each tier drops one wish, the last keeps only what the diet
            // and the foods to avoid demand.
            let tiers: [&dyn Fn(usize) -> bool; 5] = [
                &|i| suits(&all[i]) && quick(&all[i]) && fresh(i) && new_main(i),
                &|i| suits_loosely(&all[i]) && quick(&all[i]) && fresh(i) && new_main(i),
                &|i| suits_loosely(&all[i]) && fresh(i) && new_main(i),
                &|i| suits_loosely(&all[i]) && fresh(i),
                &|i| suits_loosely(&all[i]),
            ];
            let chosen: Vec<usize> = tiers
                .iter()
                .map(|tier| (0..all.len()).filter(|&i| allowed[i] && tier(i)).collect())
                .find(|c: &Vec<usize>| !c.is_empty())
                .unwrap_or_else(|| (0..all.len()).filter(|&i| suits_loosely(&all[i])).collect());
            let candidates = chosen
                .into_iter()
                .map(|i| {
                    let r = &all[i];
                    let mut penalty = rng.random::<f64>() * 0.5;
                    if !brief.cuisines.is_empty() && !brief.cuisines.contains(&r.cuisine) {
                        penalty += 1.0;
                    }
                    if r.complexity > brief.complexity {
                        penalty += (r.complexity as u8 - brief.complexity as u8) as f64;
                    }
                    Candidate {
                        recipe: i,
                        key: facts[i].key.clone(),
                        shares: r.macro_shares(),
                        penalty,
                    }
                })
                .collect();
            Slot {
                target: target.clone(),
                weight: f64::from(target.kcal_per_serving) / total_kcal,
                candidates,
            }
        })
        .collect()
}

/// Whether a recipe uses a food to avoid: in an ingredient, its title or its main ingredient.
fn uses(recipe: &Recipe, food: &str) -> bool {
    matches_food(&recipe.title, food)
        || matches_food(&recipe.main_ingredient, food)
        || recipe
            .ingredients
            .iter()
            .any(|i| matches_food(&i.name, food))
}

/// How far a combination is from the ideal: squared macro error in points (with a steep
/// penalty near the tolerance), plus the soft costs.
fn cost(brief: &DayBrief, slots: &[Slot], choice: &[usize]) -> f64 {
    let mut split = [0.0; 3];
    let mut soft = 0.0;
    let mut keys: Vec<&str> = Vec::with_capacity(choice.len());
    for (slot, &c) in slots.iter().zip(choice) {
        let cand = &slot.candidates[c];
        for (s, share) in split.iter_mut().zip(cand.shares) {
            *s += slot.weight * share * 100.0;
        }
        soft += cand.penalty * PREFERENCE_WEIGHT;
        if slot.target.meal_time != MealTime::Snack {
            if keys.contains(&&*cand.key) {
                soft += SAME_MAIN_PENALTY;
            }
            keys.push(&cand.key);
        }
    }
    let m = brief.macros_pct;
    let limit = MACRO_TOLERANCE_POINTS - SAFETY_POINTS;
    split
        .iter()
        .zip([m.protein, m.carbs, m.fat])
        .map(|(actual, target)| {
            let error = (actual - f64::from(target)).abs();
            error * error + (error - limit).max(0.0) * 1000.0
        })
        .sum::<f64>()
        + soft
}

/// Local search from random starts: each pass gives every slot the candidate that lowers the
/// cost most given the others, until nothing improves. Returns the best distinct combinations,
/// best first.
fn search(brief: &DayBrief, slots: &[Slot], restarts: usize, rng: &mut StdRng) -> Vec<Vec<usize>> {
    if slots.iter().any(|s| s.candidates.is_empty()) {
        return Vec::new();
    }
    let mut found: Vec<(f64, Vec<usize>)> = Vec::new();
    for _ in 0..restarts {
        let mut choice: Vec<usize> = slots
            .iter()
            .map(|s| rng.random_range(0..s.candidates.len()))
            .collect();
        for _pass in 0..12 {
            let mut improved = false;
            for i in 0..slots.len() {
                let mut best = (cost(brief, slots, &choice), choice[i]);
                for c in 0..slots[i].candidates.len() {
                    let recipe = slots[i].candidates[c].recipe;
                    let taken = choice
                        .iter()
                        .enumerate()
                        .any(|(j, &o)| j != i && slots[j].candidates[o].recipe == recipe);
                    if taken || c == choice[i] {
                        continue;
                    }
                    let was = choice[i];
                    choice[i] = c;
                    let value = cost(brief, slots, &choice);
                    choice[i] = was;
                    if value < best.0 {
                        best = (value, c);
                    }
                }
                if best.1 != choice[i] {
                    choice[i] = best.1;
                    improved = true;
                }
            }
            if !improved {
                break;
            }
        }
        let distinct = all_distinct(slots, &choice);
        if distinct && !found.iter().any(|(_, c)| *c == choice) {
            found.push((cost(brief, slots, &choice), choice));
        }
    }
    found.sort_by(|a, b| a.0.total_cmp(&b.0));
    found.truncate(SHORTLIST);
    found.into_iter().map(|(_, c)| c).collect()
}

/// No recipe twice in one day (a random start may pick one twice; the passes may not fix it).
fn all_distinct(slots: &[Slot], choice: &[usize]) -> bool {
    let mut seen = HashSet::new();
    slots
        .iter()
        .zip(choice)
        .all(|(s, &c)| seen.insert(s.candidates[c].recipe))
}

/// The day for a combination (or, for an empty one, each slot's first candidate).
fn build_day(brief: &DayBrief, slots: &[Slot], choice: &[usize]) -> Day {
    let all = recipes();
    let mut meals = Vec::new();
    let mut snacks = Vec::new();
    for (i, slot) in slots.iter().enumerate() {
        let Some(cand) = slot.candidates.get(choice.get(i).copied().unwrap_or(0)) else {
            continue;
        };
        let meal = all[cand.recipe].to_meal(
            slot.target.meal_time,
            f64::from(slot.target.kcal_per_serving),
            brief.servings,
        );
        if slot.target.meal_time == MealTime::Snack {
            snacks.push(meal);
        } else {
            meals.push(meal);
        }
    }
    let mut day = Day {
        day_number: brief.day,
        date: None,
        meals,
        snacks,
        totals: Nutrition::default(),
        source: None,
    };
    day.finish(brief.day, None, brief.servings);
    day
}

/// The day as the model answers it: a JSON object with exactly the fields of the `Day` JSON
/// Schema (`meals` and `snacks`; no day number, date, totals or per-dish servings, which the
/// worker fills in itself).
pub fn answer_content(day: &Day) -> String {
    let mut value = serde_json::to_value(day).unwrap_or_default();
    if let Some(object) = value.as_object_mut() {
        object.retain(|key, _| key == "meals" || key == "snacks");
        for list in object.values_mut() {
            for dish in list.as_array_mut().into_iter().flatten() {
                if let Some(dish) = dish.as_object_mut() {
                    dish.remove("servings");
                }
            }
        }
    }
    value.to_string()
}

/// A copy of a valid day that breaks `rule` in a way the worker must notice. When the brief
/// gives nothing to break that rule with (no foods to avoid, a single dish), calories are
/// broken instead.
pub fn break_rule(brief: &DayBrief, mut day: Day, rule: BrokenRule) -> Day {
    match rule {
        BrokenRule::DislikedFood if !brief.avoid_foods.is_empty() && !day.meals.is_empty() => {
            let food = brief.avoid_foods[0].clone();
            let meal = &mut day.meals[0];
            meal.ingredients.push(domain::menu::Ingredient {
                name: food,
                quantity: f64::from(brief.servings.max(1)) * 50.0,
                unit: domain::menu::Unit::G,
            });
        }
        BrokenRule::RepeatedTitle if !brief.used_titles.is_empty() && !day.meals.is_empty() => {
            day.meals[0].title = brief.used_titles[0].clone();
        }
        BrokenRule::RepeatedTitle if day.dishes().count() >= 2 => {
            let title = day
                .meals
                .first()
                .map(|m| m.title.clone())
                .unwrap_or_default();
            if let Some(other) = day.meals.iter_mut().chain(day.snacks.iter_mut()).nth(1) {
                other.title = title;
            }
        }
        BrokenRule::MissingMeal if !day.meals.is_empty() => {
            day.meals.pop();
        }
        _ => {
            for meal in day.meals.iter_mut().chain(day.snacks.iter_mut()) {
                overportion(meal, 2.5);
            }
        }
    }
    day.finish(brief.day, None, brief.servings);
    day
}

fn overportion(meal: &mut Meal, factor: f64) {
    meal.per_serving = meal.per_serving.scaled(factor);
    for i in &mut meal.ingredients {
        i.quantity = (i.quantity * factor).round().max(1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::request::Macros;
    use domain::vocabulary::Complexity;

    fn brief() -> DayBrief {
        DayBrief {
            day: 1,
            of_days: 7,
            servings: 2,
            diet: DietType::Omnivore,
            restrictions: vec![],
            other_restrictions: vec![],
            avoid_foods: vec![],
            cuisines: vec![],
            appliances: vec![],
            complexity: Complexity::Standard,
            max_minutes_per_meal: None,
            dishes: vec![
                DishTarget {
                    meal_time: MealTime::Breakfast,
                    kcal_per_serving: 500,
                },
                DishTarget {
                    meal_time: MealTime::Lunch,
                    kcal_per_serving: 700,
                },
                DishTarget {
                    meal_time: MealTime::Dinner,
                    kcal_per_serving: 700,
                },
                DishTarget {
                    meal_time: MealTime::Snack,
                    kcal_per_serving: 200,
                },
            ],
            macros_pct: Macros {
                protein: 30,
                carbs: 40,
                fat: 30,
            },
            used_titles: vec![],
            recent_main_ingredients: vec![],
            problems: vec![],
        }
    }

    #[test]
    fn a_plain_brief_gets_a_valid_day_with_every_dish() {
        let c = compose(&brief(), 1);
        assert_eq!(c.problems, vec![]);
        assert_eq!(c.day.meals.len(), 3);
        assert_eq!(c.day.snacks.len(), 1);
        assert_eq!(c.day.meals[0].meal_time, MealTime::Breakfast);
        assert!(c.day.dishes().all(|m| m.servings == 2));
    }

    #[test]
    fn the_same_seed_gives_the_same_day_and_another_seed_may_not() {
        let a = compose(&brief(), 42).day;
        assert_eq!(a, compose(&brief(), 42).day);
        let titles = |d: &Day| d.dishes().map(|m| m.title.clone()).collect::<Vec<_>>();
        assert!((0..5).any(|s| titles(&compose(&brief(), s).day) != titles(&a)));
    }

    #[test]
    fn foods_titles_and_recent_mains_of_the_brief_are_avoided() {
        let mut b = brief();
        b.avoid_foods = vec!["egg".into(), "chicken".into()];
        b.other_restrictions = vec!["no pork".into()];
        b.used_titles = compose(&brief(), 3)
            .day
            .dishes()
            .map(|m| m.title.clone())
            .collect();
        b.recent_main_ingredients = vec!["beef".into(), "salmon".into()];
        let c = compose(&b, 3);
        assert_eq!(c.problems, vec![]);
        for m in c.day.dishes() {
            assert!(!b.used_titles.contains(&m.title));
            for i in &m.ingredients {
                for food in ["egg", "chicken", "pork"] {
                    assert!(!matches_food(&i.name, food), "{} in {}", i.name, m.title);
                }
            }
        }
        for m in &c.day.meals {
            assert!(!["beef", "salmon"].contains(&main_key(&m.main_ingredient).as_str()));
        }
    }

    #[test]
    fn a_time_limit_and_preferred_cuisines_are_honoured() {
        let mut b = brief();
        b.max_minutes_per_meal = Some(20);
        b.cuisines = vec![
            domain::vocabulary::Cuisine::Italian,
            domain::vocabulary::Cuisine::Greek,
        ];
        let c = compose(&b, 5);
        assert_eq!(c.problems, vec![]);
        assert!(c.day.dishes().all(|m| m.total_minutes() <= 20));
        let preferred = c
            .day
            .dishes()
            .filter(|m| m.cuisine == "italian" || m.cuisine == "greek")
            .count();
        assert!(preferred >= 1, "no preferred cuisine in {:?}", c.day);
    }

    #[test]
    fn each_broken_rule_is_caught_by_the_rules() {
        let mut b = brief();
        b.avoid_foods = vec!["okra".into()];
        b.used_titles = vec!["Some Earlier Dish".into()];
        let valid = compose(&b, 9).day;
        for (rule, code) in [
            (BrokenRule::DislikedFood, "disliked_food"),
            (BrokenRule::RepeatedTitle, "repeated_title"),
            (BrokenRule::CaloriesOff, "calories"),
            (BrokenRule::MissingMeal, "meal_times"),
        ] {
            let broken = break_rule(&b, valid.clone(), rule);
            let problems = check_day(&b, &broken);
            assert!(
                problems.iter().any(|p| p.code == code),
                "{rule:?} gave {problems:?}"
            );
        }
    }
}
