//! The rules a generated day must pass (DOMAIN.md, "Rules a day must pass"), checked locally
//! whatever the model claims. Each problem's message is written for the model: it is sent back
//! when the day is asked for again, so it names the dish, the ingredient and the numbers.

use serde::Serialize;

use crate::foods::{diet_conflict, main_key, matches_food, normalize, restriction_conflict};
use crate::menu::{Day, Meal};
use crate::prompt::DayBrief;
use crate::vocabulary::MealTime;

/// The stable code of each rule, for callers that count or filter problems.
pub mod code {
    pub const MEAL_TIMES: &str = "meal_times";
    pub const DISLIKED_FOOD: &str = "disliked_food";
    pub const DIET: &str = "diet";
    pub const RESTRICTION: &str = "restriction";
    pub const REPEATED_TITLE: &str = "repeated_title";
    pub const RECENT_MAIN_INGREDIENT: &str = "recent_main_ingredient";
    pub const CALORIES: &str = "calories";
    pub const MACROS: &str = "macros";
    pub const QUANTITIES: &str = "quantities";
    pub const STEPS: &str = "steps";
    pub const EMPTY_TEXT: &str = "empty_text";
    pub const TIME_LIMIT: &str = "time_limit";
}

/// One broken rule: a stable `code` (see [`code`]) and a sentence for the model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub code: &'static str,
    pub message: String,
}

/// How far the day's calories may stray from the target, as a share of it.
pub const CALORIE_TOLERANCE: f64 = 0.10;
/// How far each macro's share of calories may stray from its target, in percentage points.
pub const MACRO_TOLERANCE_POINTS: f64 = 10.0;

/// Every rule `day` breaks, judged against `brief` alone. `day` must have been
/// [`finish`](Day::finish)ed so that servings and totals are set. An empty list means the day
/// is accepted.
pub fn check_day(brief: &DayBrief, day: &Day) -> Vec<Problem> {
    let mut problems = Vec::new();
    meal_times(brief, day, &mut problems);
    empty_text(day, &mut problems);
    quantities(brief, day, &mut problems);
    steps(day, &mut problems);
    disliked_foods(brief, day, &mut problems);
    diet(brief, day, &mut problems);
    restrictions(brief, day, &mut problems);
    repeated_titles(brief, day, &mut problems);
    recent_main_ingredients(brief, day, &mut problems);
    time_limit(brief, day, &mut problems);
    calories(brief, day, &mut problems);
    macros(brief, day, &mut problems);
    problems
}

fn problem(code: &'static str, message: String) -> Problem {
    Problem { code, message }
}

/// How a dish is named in a message: `Lunch "Chickpea Salad"`.
fn label(meal: &Meal) -> String {
    let time = meal.meal_time.as_str();
    let mut when = time[..1].to_uppercase();
    when.push_str(&time[1..]);
    match meal.title.trim() {
        "" => format!("{when} (untitled)"),
        title => format!("{when} \"{title}\""),
    }
}

/// "1 serving", "2 servings".
fn counted(n: usize, noun: &str) -> String {
    match n {
        1 => format!("1 {noun}"),
        n => format!("{n} {noun}s"),
    }
}

/// The spelling clients use for a diet or restriction ("vegetarian", "gluten-free").
fn wire_name(value: impl Serialize) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn meal_times(brief: &DayBrief, day: &Day, problems: &mut Vec<Problem>) {
    let wanted: Vec<MealTime> = brief
        .dishes
        .iter()
        .map(|d| d.meal_time)
        .filter(|t| *t != MealTime::Snack)
        .collect();
    let wanted_names: Vec<&str> = wanted.iter().map(|t| t.as_str()).collect();
    for time in &wanted {
        let name = time.as_str();
        match day.meals.iter().filter(|m| m.meal_time == *time).count() {
            1 => {}
            0 => problems.push(problem(
                code::MEAL_TIMES,
                format!("The day has no {name}; add exactly one {name} to meals."),
            )),
            n => problems.push(problem(
                code::MEAL_TIMES,
                format!("The day has {n} {name} dishes in meals; keep exactly one."),
            )),
        }
    }
    for meal in day.meals.iter().filter(|m| !wanted.contains(&m.meal_time)) {
        let message = if meal.meal_time == MealTime::Snack {
            format!(
                "{} is a snack but is listed in meals; put snacks in snacks.",
                label(meal)
            )
        } else {
            format!(
                "{} is a {}, which this day does not have; meals must be exactly: {}.",
                label(meal),
                meal.meal_time.as_str(),
                wanted_names.join(", ")
            )
        };
        problems.push(problem(code::MEAL_TIMES, message));
    }
    for snack in day.snacks.iter().filter(|m| m.meal_time != MealTime::Snack) {
        problems.push(problem(
            code::MEAL_TIMES,
            format!(
                "{} is listed in snacks but has meal_time {}; every snack needs meal_time snack.",
                label(snack),
                snack.meal_time.as_str()
            ),
        ));
    }
    let wanted_snacks = brief
        .dishes
        .iter()
        .filter(|d| d.meal_time == MealTime::Snack)
        .count();
    if day.snacks.len() != wanted_snacks {
        problems.push(problem(
            code::MEAL_TIMES,
            format!(
                "The day has {}; it must have exactly {}.",
                counted(day.snacks.len(), "snack"),
                counted(wanted_snacks, "snack")
            ),
        ));
    }
}

fn empty_text(day: &Day, problems: &mut Vec<Problem>) {
    for meal in day.dishes() {
        for (field, value) in [
            ("title", &meal.title),
            ("cuisine", &meal.cuisine),
            ("main_ingredient", &meal.main_ingredient),
        ] {
            if value.trim().is_empty() {
                problems.push(problem(
                    code::EMPTY_TEXT,
                    format!("{} has an empty {field}.", label(meal)),
                ));
            }
        }
    }
}

fn quantities(brief: &DayBrief, day: &Day, problems: &mut Vec<Problem>) {
    for meal in day.dishes() {
        if meal.ingredients.is_empty() {
            problems.push(problem(
                code::QUANTITIES,
                format!("{} has no ingredients.", label(meal)),
            ));
        }
        for ingredient in &meal.ingredients {
            let q = ingredient.quantity;
            if !(q.is_finite() && q > 0.0) {
                problems.push(problem(
                    code::QUANTITIES,
                    format!(
                        "{}: ingredient \"{}\" has quantity {q}; every quantity must be a \
                         positive number, for all {} together.",
                        label(meal),
                        ingredient.name,
                        counted(usize::from(brief.servings), "serving")
                    ),
                ));
            }
        }
        let n = meal.per_serving;
        for (field, value) in [
            ("kcal", n.kcal),
            ("protein_g", n.protein_g),
            ("carbs_g", n.carbs_g),
            ("fat_g", n.fat_g),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                problems.push(problem(
                    code::QUANTITIES,
                    format!(
                        "{}: per_serving {field} is {value}; nutrition values must be numbers \
                         of at least 0.",
                        label(meal)
                    ),
                ));
            }
        }
    }
}

fn steps(day: &Day, problems: &mut Vec<Problem>) {
    for meal in day.dishes() {
        if meal.steps.is_empty() {
            problems.push(problem(
                code::STEPS,
                format!("{} has no steps; give the method in order.", label(meal)),
            ));
        }
        for (i, step) in meal.steps.iter().enumerate() {
            if step.trim().is_empty() {
                problems.push(problem(
                    code::STEPS,
                    format!("{}: step {} is empty.", label(meal), i + 1),
                ));
            }
        }
    }
}

fn disliked_foods(brief: &DayBrief, day: &Day, problems: &mut Vec<Problem>) {
    for meal in day.dishes() {
        for food in &brief.avoid_foods {
            let mut found: Vec<String> = Vec::new();
            if matches_food(&meal.title, food) {
                found.push("the title".to_string());
            }
            if matches_food(&meal.main_ingredient, food) {
                found.push(format!("the main ingredient \"{}\"", meal.main_ingredient));
            }
            found.extend(
                meal.ingredients
                    .iter()
                    .filter(|i| matches_food(&i.name, food))
                    .map(|i| format!("ingredient \"{}\"", i.name)),
            );
            if !found.is_empty() {
                problems.push(problem(
                    code::DISLIKED_FOOD,
                    format!(
                        "{} uses \"{food}\", which must be avoided entirely (in {}); replace it \
                         with something else.",
                        label(meal),
                        found.join(", ")
                    ),
                ));
            }
        }
    }
}

fn diet(brief: &DayBrief, day: &Day, problems: &mut Vec<Problem>) {
    for meal in day.dishes() {
        for ingredient in &meal.ingredients {
            if let Some(why) = diet_conflict(brief.diet, &ingredient.name) {
                problems.push(problem(
                    code::DIET,
                    format!(
                        "{}: ingredient \"{}\" {why}, which a {} diet does not allow.",
                        label(meal),
                        ingredient.name,
                        wire_name(brief.diet)
                    ),
                ));
            }
        }
    }
}

fn restrictions(brief: &DayBrief, day: &Day, problems: &mut Vec<Problem>) {
    for meal in day.dishes() {
        for ingredient in &meal.ingredients {
            for r in &brief.restrictions {
                if let Some(why) = restriction_conflict(*r, &ingredient.name) {
                    problems.push(problem(
                        code::RESTRICTION,
                        format!(
                            "{}: ingredient \"{}\" {why}, which breaks the {} restriction.",
                            label(meal),
                            ingredient.name,
                            wire_name(r)
                        ),
                    ));
                }
            }
        }
    }
}

fn repeated_titles(brief: &DayBrief, day: &Day, problems: &mut Vec<Problem>) {
    let used: Vec<String> = brief.used_titles.iter().map(|t| normalize(t)).collect();
    let dishes: Vec<(&Meal, String)> = day.dishes().map(|m| (m, normalize(&m.title))).collect();
    for (i, (meal, title)) in dishes.iter().enumerate() {
        if title.is_empty() {
            continue;
        }
        if used.contains(title) {
            problems.push(problem(
                code::REPEATED_TITLE,
                format!(
                    "{} repeats a title already used on another day of the menu (or on last week's menu); choose a \
                     different dish.",
                    label(meal)
                ),
            ));
        }
        if let Some((earlier, _)) = dishes[..i].iter().find(|(_, t)| t == title) {
            problems.push(problem(
                code::REPEATED_TITLE,
                format!(
                    "{} has the same title as {} on this day; every dish needs its own title.",
                    label(meal),
                    label(earlier)
                ),
            ));
        }
    }
}

fn recent_main_ingredients(brief: &DayBrief, day: &Day, problems: &mut Vec<Problem>) {
    let recent: Vec<(String, &String)> = brief
        .recent_main_ingredients
        .iter()
        .map(|r| (main_key(r), r))
        .collect();
    for meal in &day.meals {
        let key = main_key(&meal.main_ingredient);
        if let Some((_, earlier)) = recent.iter().find(|(k, _)| *k == key) {
            problems.push(problem(
                code::RECENT_MAIN_INGREDIENT,
                format!(
                    "{} has main ingredient \"{}\", but {key} was a main ingredient in the \
                     previous three days (\"{earlier}\"); choose a different main ingredient.",
                    label(meal),
                    meal.main_ingredient
                ),
            ));
        }
    }
}

fn time_limit(brief: &DayBrief, day: &Day, problems: &mut Vec<Problem>) {
    let Some(max) = brief.max_minutes_per_meal else {
        return;
    };
    for meal in day.dishes() {
        if meal.total_minutes() > u32::from(max) {
            problems.push(problem(
                code::TIME_LIMIT,
                format!(
                    "{} takes {} minutes ({} prep + {} cook) but the limit is {max} minutes per \
                     dish; choose a quicker dish or method.",
                    label(meal),
                    meal.total_minutes(),
                    meal.prep_minutes,
                    meal.cook_minutes
                ),
            ));
        }
    }
}

fn calories(brief: &DayBrief, day: &Day, problems: &mut Vec<Problem>) {
    let servings = f64::from(brief.servings);
    let target_per_serving: f64 = brief
        .dishes
        .iter()
        .map(|d| f64::from(d.kcal_per_serving))
        .sum();
    let target = target_per_serving * servings;
    let actual = day.totals.kcal;
    if target <= 0.0 || (actual - target).abs() <= target * CALORIE_TOLERANCE {
        return;
    }
    // The model sets per-serving numbers; showing each against its target tells it which to fix.
    let per_dish: Vec<String> = day
        .dishes()
        .map(|m| {
            let dish_target = brief
                .dishes
                .iter()
                .find(|d| d.meal_time == m.meal_time)
                .map_or(String::new(), |d| {
                    format!(" (target {})", d.kcal_per_serving)
                });
            format!("{} {:.0}{dish_target}", label(m), m.per_serving.kcal)
        })
        .collect();
    problems.push(problem(
        code::CALORIES,
        format!(
            "The day totals {actual:.0} kcal for {} ({:.0} per serving) but must be \
             within {:.0}% of {target:.0} kcal ({target_per_serving:.0} per serving), that is \
             {:.0} to {:.0}. Per-serving kcal: {}.",
            counted(usize::from(brief.servings), "serving"),
            actual / servings.max(1.0),
            CALORIE_TOLERANCE * 100.0,
            target * (1.0 - CALORIE_TOLERANCE),
            target * (1.0 + CALORIE_TOLERANCE),
            per_dish.join(", ")
        ),
    ));
}

fn macros(brief: &DayBrief, day: &Day, problems: &mut Vec<Problem>) {
    let (protein, carbs, fat) = day.totals.macro_percentages();
    let targets = brief.macros_pct;
    let advice: Vec<String> = [
        ("protein", protein, targets.protein),
        ("carbs", carbs, targets.carbs),
        ("fat", fat, targets.fat),
    ]
    .into_iter()
    .filter(|(_, actual, target)| (actual - f64::from(*target)).abs() > MACRO_TOLERANCE_POINTS)
    .map(|(name, actual, target)| {
        let direction = if actual < f64::from(target) {
            "raise"
        } else {
            "lower"
        };
        format!("{direction} {name}")
    })
    .collect();
    if advice.is_empty() {
        return;
    }
    problems.push(problem(
        code::MACROS,
        format!(
            "The day's calories come {protein:.0}% from protein, {carbs:.0}% from carbs and \
             {fat:.0}% from fat; each must be within {MACRO_TOLERANCE_POINTS:.0} points of the \
             targets (protein {}%, carbs {}%, fat {}%): {}.",
            targets.protein,
            targets.carbs,
            targets.fat,
            advice.join(", ")
        ),
    ));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::menu::{Ingredient, Nutrition, Unit};
    use crate::prompt::DishTarget;
    use crate::request::Macros;
    use crate::vocabulary::{Complexity, DietType, Restriction};

    const SERVINGS: u8 = 2;

    fn brief() -> DayBrief {
        let dish = |meal_time, kcal_per_serving| DishTarget {
            meal_time,
            kcal_per_serving,
        };
        DayBrief {
            day: 4,
            of_days: 7,
            servings: SERVINGS,
            diet: DietType::Vegetarian,
            restrictions: vec![Restriction::GlutenFree],
            other_restrictions: vec![],
            avoid_foods: vec!["Mushrooms".into(), "olives".into()],
            cuisines: vec![],
            appliances: vec![],
            complexity: Complexity::Easy,
            max_minutes_per_meal: Some(45),
            dishes: vec![
                dish(MealTime::Breakfast, 550),
                dish(MealTime::Lunch, 725),
                dish(MealTime::Dinner, 725),
            ],
            macros_pct: Macros {
                protein: 25,
                carbs: 45,
                fat: 30,
            },
            used_titles: vec!["Lentil Soup".into(), "Shakshuka".into()],
            recent_main_ingredients: vec!["lentils".into(), "eggs".into(), "halloumi".into()],
            problems: vec![],
        }
    }

    fn ingredient(name: &str, quantity: f64, unit: Unit) -> Ingredient {
        Ingredient {
            name: name.into(),
            quantity,
            unit,
        }
    }

    fn meal(
        meal_time: MealTime,
        title: &str,
        cuisine: &str,
        main_ingredient: &str,
        (prep_minutes, cook_minutes): (u32, u32),
        ingredients: Vec<Ingredient>,
        (kcal, protein_g, carbs_g, fat_g): (f64, f64, f64, f64),
    ) -> Meal {
        Meal {
            meal_time,
            title: title.into(),
            cuisine: cuisine.into(),
            main_ingredient: main_ingredient.into(),
            servings: 0,
            prep_minutes,
            cook_minutes,
            complexity: Complexity::Easy,
            ingredients,
            steps: vec!["Prepare the ingredients.".into(), "Cook and serve.".into()],
            per_serving: Nutrition {
                kcal,
                protein_g,
                carbs_g,
                fat_g,
            },
        }
    }

    /// A vegetarian, gluten-free day for two that passes every rule.
    #[test]
    fn a_title_from_last_weeks_menu_is_reported_from_the_first_day() {
        let mut request = crate::request::GenerationRequest::from_options(
            &Default::default(),
            chrono::NaiveDate::from_ymd_opt(2026, 12, 7).unwrap(),
        )
        .unwrap();
        request.avoid_titles = vec!["chickpea and feta salads".into()];
        let brief = DayBrief::new(&request, 1, &[], vec![]);
        assert_eq!(brief.used_titles, request.avoid_titles);
        let repeated: Vec<Problem> = check_day(&brief, &valid_day())
            .into_iter()
            .filter(|p| p.code == code::REPEATED_TITLE)
            .collect();
        assert_eq!(repeated.len(), 1, "{repeated:?}");
        assert_names(&repeated[0], &["Chickpea and Feta Salad", "last week"]);
    }

    fn valid_day() -> Day {
        use Unit::*;
        let breakfast = meal(
            MealTime::Breakfast,
            "Greek Yogurt Parfait with Berries",
            "Greek",
            "greek yogurt",
            (10, 0),
            vec![
                ingredient("greek yogurt", 400.0, G),
                ingredient("mixed berries", 300.0, G),
                ingredient("gluten-free rolled oats", 80.0, G),
                ingredient("honey", 2.0, Tbsp),
                ingredient("pumpkin seeds", 30.0, G),
            ],
            (520.0, 28.0, 60.0, 18.0),
        );
        let lunch = meal(
            MealTime::Lunch,
            "Chickpea and Feta Salad",
            "Mediterranean",
            "chickpeas",
            (15, 0),
            vec![
                ingredient("canned chickpeas, drained", 400.0, G),
                ingredient("cucumber", 1.0, Piece),
                ingredient("cherry tomatoes", 250.0, G),
                ingredient("feta cheese", 100.0, G),
                ingredient("red onion", 0.5, Piece),
                ingredient("extra virgin olive oil", 2.0, Tbsp),
                ingredient("lemon juice", 30.0, Ml),
                ingredient("fresh parsley", 15.0, G),
            ],
            (700.0, 30.0, 70.0, 30.0),
        );
        let dinner = meal(
            MealTime::Dinner,
            "Tofu and Broccoli Stir-Fry with Brown Rice",
            "Chinese",
            "firm tofu",
            (15, 25),
            vec![
                ingredient("firm tofu", 400.0, G),
                ingredient("broccoli florets", 300.0, G),
                ingredient("red bell pepper", 1.0, Piece),
                ingredient("tamari", 3.0, Tbsp),
                ingredient("garlic", 3.0, Clove),
                ingredient("fresh ginger", 15.0, G),
                ingredient("sesame oil", 1.0, Tbsp),
                ingredient("brown rice", 200.0, G),
            ],
            (740.0, 38.0, 85.0, 24.0),
        );
        finished(Day {
            day_number: 0,
            date: None,
            meals: vec![breakfast, lunch, dinner],
            snacks: vec![],
            totals: Nutrition::default(),
            source: None,
        })
    }

    fn finished(mut day: Day) -> Day {
        day.finish(4, None, SERVINGS);
        day
    }

    /// Changes the valid day, checks it, and returns the problems, asserting that all have `code`.
    fn problems_after(code: &str, change: impl FnOnce(&mut Day)) -> Vec<Problem> {
        let mut day = valid_day();
        change(&mut day);
        let problems = check_day(&brief(), &finished(day));
        assert!(!problems.is_empty(), "expected a {code} problem");
        assert!(
            problems.iter().all(|p| p.code == code),
            "expected only {code}: {problems:#?}"
        );
        problems
    }

    fn assert_names(problem: &Problem, parts: &[&str]) {
        for part in parts {
            assert!(
                problem.message.contains(part),
                "{:?} should name {part:?}",
                problem.message
            );
        }
    }

    #[test]
    fn a_valid_vegetarian_day_passes() {
        assert_eq!(check_day(&brief(), &valid_day()), vec![]);
    }

    #[test]
    fn a_missing_meal_time_is_reported() {
        let mut day = valid_day();
        // Dinner takes over lunch's calories, so that only the meal times are wrong.
        let lunch = day.meals.remove(1);
        day.meals[1].per_serving.kcal += lunch.per_serving.kcal;
        let problems = check_day(&brief(), &finished(day));
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert_eq!(problems[0].code, code::MEAL_TIMES);
        assert_names(&problems[0], &["no lunch"]);
    }

    #[test]
    fn a_meal_time_twice_or_not_asked_for_is_reported() {
        let problems = problems_after(code::MEAL_TIMES, |d| {
            d.meals[2].meal_time = MealTime::Lunch;
        });
        assert_eq!(problems.len(), 2, "{problems:#?}");
        assert_names(&problems[0], &["2 lunch"]);
        assert_names(&problems[1], &["no dinner"]);

        let mut short_brief = brief();
        let breakfast = short_brief.dishes.remove(0);
        short_brief.dishes[0].kcal_per_serving += breakfast.kcal_per_serving;
        let problems = check_day(&short_brief, &valid_day());
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert_eq!(problems[0].code, code::MEAL_TIMES);
        assert_names(&problems[0], &["Greek Yogurt Parfait", "breakfast"]);
    }

    #[test]
    fn snacks_must_be_as_many_as_asked_and_be_snacks() {
        let problems = problems_after(code::MEAL_TIMES, |d| {
            let mut snack = d.meals[0].clone();
            snack.title = "Apple Slices".into();
            snack.per_serving = Nutrition::default();
            d.snacks.push(snack);
        });
        assert_eq!(problems.len(), 2, "{problems:#?}");
        assert_names(&problems[0], &["Apple Slices", "meal_time breakfast"]);
        assert_names(&problems[1], &["1 snack;", "exactly 0 snacks"]);
    }

    #[test]
    fn a_disliked_food_in_an_ingredient_title_or_main_ingredient_is_reported() {
        let problems = problems_after(code::DISLIKED_FOOD, |d| {
            d.meals[2]
                .ingredients
                .push(ingredient("shiitake mushrooms", 150.0, Unit::G));
        });
        assert_eq!(problems.len(), 1);
        assert_names(
            &problems[0],
            &["Tofu and Broccoli", "shiitake mushrooms", "Mushrooms"],
        );

        let problems = problems_after(code::DISLIKED_FOOD, |d| {
            d.meals[1].title = "Chickpea Salad with Olives".into();
        });
        assert_names(&problems[0], &["the title", "olives"]);
    }

    #[test]
    fn an_ingredient_outside_the_diet_is_reported() {
        let problems = problems_after(code::DIET, |d| {
            d.meals[0]
                .ingredients
                .push(ingredient("bacon", 4.0, Unit::Slice));
        });
        assert_eq!(problems.len(), 1);
        assert_names(
            &problems[0],
            &["Greek Yogurt Parfait", "\"bacon\"", "meat", "vegetarian"],
        );
    }

    #[test]
    fn an_ingredient_breaking_a_restriction_is_reported() {
        let problems = problems_after(code::RESTRICTION, |d| {
            d.meals[2].ingredients[3].name = "soy sauce".into();
        });
        assert_eq!(problems.len(), 1);
        assert_names(
            &problems[0],
            &["Tofu and Broccoli", "soy sauce", "gluten", "gluten-free"],
        );
    }

    #[test]
    fn a_title_from_another_day_or_twice_in_this_day_is_reported() {
        let problems = problems_after(code::REPEATED_TITLE, |d| {
            d.meals[1].title = "lentil soups".into();
        });
        assert_eq!(problems.len(), 1);
        assert_names(&problems[0], &["lentil soups", "another day"]);

        let problems = problems_after(code::REPEATED_TITLE, |d| {
            d.meals[2].title = d.meals[1].title.to_uppercase();
        });
        assert_eq!(problems.len(), 1);
        assert_names(
            &problems[0],
            &["Dinner", "Lunch \"Chickpea and Feta Salad\""],
        );
    }

    #[test]
    fn a_main_ingredient_from_the_previous_three_days_is_reported() {
        let problems = problems_after(code::RECENT_MAIN_INGREDIENT, |d| {
            d.meals[1].main_ingredient = "red lentils".into();
        });
        assert_eq!(problems.len(), 1);
        assert_names(
            &problems[0],
            &["Chickpea and Feta Salad", "red lentils", "\"lentils\""],
        );
    }

    #[test]
    fn a_snack_may_reuse_a_recent_main_ingredient() {
        let mut b = brief();
        b.dishes.push(DishTarget {
            meal_time: MealTime::Snack,
            kcal_per_serving: 0,
        });
        let mut day = valid_day();
        let mut snack = day.meals[0].clone();
        snack.meal_time = MealTime::Snack;
        snack.title = "Boiled Egg".into();
        snack.main_ingredient = "eggs".into();
        snack.per_serving = Nutrition::default();
        day.snacks.push(snack);
        assert_eq!(check_day(&b, &finished(day)), vec![]);
    }

    #[test]
    fn day_calories_outside_the_tolerance_are_reported() {
        let problems = problems_after(code::CALORIES, |d| {
            d.meals[2].per_serving.kcal = 400.0;
        });
        assert_eq!(problems.len(), 1);
        // 520 + 700 + 400 = 1620 per serving, 3240 for two, against 2000 × 2 = 4000.
        assert_names(
            &problems[0],
            &[
                "3240 kcal",
                "1620 per serving",
                "4000 kcal",
                "3600 to 4400",
                "Dinner",
            ],
        );
    }

    #[test]
    fn calories_just_inside_the_tolerance_pass() {
        let mut day = valid_day();
        // 520 + 700 + 580 = 1800 per serving: exactly 10% under.
        day.meals[2].per_serving.kcal = 580.0;
        assert_eq!(check_day(&brief(), &finished(day)), vec![]);
    }

    #[test]
    fn macros_outside_the_tolerance_are_reported() {
        let problems = problems_after(code::MACROS, |d| {
            d.meals[2].per_serving.fat_g = 90.0;
        });
        assert_eq!(problems.len(), 1);
        assert_names(&problems[0], &["lower fat", "fat 30%"]);
    }

    #[test]
    fn a_non_positive_quantity_or_missing_ingredients_are_reported() {
        let problems = problems_after(code::QUANTITIES, |d| {
            d.meals[1].ingredients[3].quantity = 0.0;
        });
        assert_eq!(problems.len(), 1);
        assert_names(
            &problems[0],
            &["Chickpea and Feta Salad", "feta cheese", "quantity 0"],
        );

        let problems = problems_after(code::QUANTITIES, |d| {
            d.meals[0].per_serving.protein_g = f64::NAN;
        });
        assert_names(&problems[0], &["Greek Yogurt Parfait", "protein_g"]);
    }

    #[test]
    fn a_dish_without_ingredients_is_reported() {
        let mut day = valid_day();
        day.meals[0].ingredients.clear();
        let problems = check_day(&brief(), &finished(day));
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].code, code::QUANTITIES);
        assert_names(&problems[0], &["Greek Yogurt Parfait", "no ingredients"]);
    }

    #[test]
    fn missing_or_empty_steps_are_reported() {
        let problems = problems_after(code::STEPS, |d| {
            d.meals[0].steps.clear();
            d.meals[1].steps.push("  ".into());
        });
        assert_eq!(problems.len(), 2);
        assert_names(&problems[0], &["Greek Yogurt Parfait", "no steps"]);
        assert_names(&problems[1], &["Chickpea and Feta Salad", "step 3"]);
    }

    #[test]
    fn empty_text_fields_are_reported() {
        let problems = problems_after(code::EMPTY_TEXT, |d| {
            d.meals[1].cuisine = " ".into();
        });
        assert_eq!(problems.len(), 1);
        assert_names(&problems[0], &["Chickpea and Feta Salad", "cuisine"]);
    }

    #[test]
    fn a_dish_over_the_time_limit_is_reported() {
        let problems = problems_after(code::TIME_LIMIT, |d| {
            d.meals[2].cook_minutes = 50;
        });
        assert_eq!(problems.len(), 1);
        assert_names(
            &problems[0],
            &["Tofu and Broccoli", "65 minutes", "45 minutes"],
        );
    }

    #[test]
    fn without_a_time_limit_long_dishes_pass() {
        let mut b = brief();
        b.max_minutes_per_meal = None;
        let mut day = valid_day();
        day.meals[2].cook_minutes = 240;
        assert_eq!(check_day(&b, &finished(day)), vec![]);
    }
}
