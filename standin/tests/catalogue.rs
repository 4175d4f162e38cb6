//! The catalogue is rich enough for every common diet: a whole week of three meals and two
//! snacks a day, composed day by day as the worker asks for them, passes the worker's rules for
//! each diet and macro target.

use chrono::NaiveDate;
use domain::menu::Day;
use domain::prompt::DayBrief;
use domain::request::{GenerationRequest, MacrosInput, MenuOptions};
use domain::rules::check_day;
use domain::vocabulary::{DietType, Restriction};
use standin::compose::compose;

const TARGETS: [(i64, i64, i64); 3] = [(40, 30, 30), (30, 40, 30), (25, 50, 25)];

fn request(
    diet: DietType,
    restrictions: Vec<Restriction>,
    macros: (i64, i64, i64),
) -> GenerationRequest {
    let options = MenuOptions {
        days: Some(7),
        snacks_per_day: Some(2),
        servings: Some(2),
        diet_type: Some(diet),
        restrictions: Some(restrictions),
        macros: Some(MacrosInput {
            protein: macros.0,
            carbs: macros.1,
            fat: macros.2,
        }),
        ..MenuOptions::default()
    };
    let start = NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
    GenerationRequest::from_options(&options, start).unwrap()
}

/// Composes a week as the worker would, feeding each day back as used titles and recent main
/// ingredients; returns every problem found, labelled.
fn week_problems(request: &GenerationRequest) -> Vec<String> {
    let mut days: Vec<Day> = Vec::new();
    let mut problems = Vec::new();
    for n in 1..=request.days {
        let brief = DayBrief::new(request, n, &days, vec![]);
        let day = compose(&brief, u64::from(n)).day;
        for p in check_day(&brief, &day) {
            problems.push(format!("day {n}: {}", p.message));
        }
        days.push(day);
    }
    problems
}

fn assert_weeks_pass(diet: DietType, restrictions: Vec<Restriction>) {
    let mut failures = Vec::new();
    for target in TARGETS {
        let r = request(diet, restrictions.clone(), target);
        for p in week_problems(&r) {
            failures.push(format!("{diet:?} {restrictions:?} {target:?} {p}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn omnivore_weeks_pass_the_rules() {
    assert_weeks_pass(DietType::Omnivore, vec![]);
}

#[test]
fn vegetarian_weeks_pass_the_rules() {
    assert_weeks_pass(DietType::Vegetarian, vec![]);
}

#[test]
fn vegan_weeks_pass_the_rules() {
    assert_weeks_pass(DietType::Vegan, vec![]);
}

#[test]
fn pescatarian_weeks_pass_the_rules() {
    assert_weeks_pass(DietType::Pescatarian, vec![]);
}

#[test]
fn keto_weeks_pass_the_rules() {
    assert_weeks_pass(DietType::Keto, vec![]);
}

#[test]
fn paleo_weeks_pass_the_rules() {
    assert_weeks_pass(DietType::Paleo, vec![]);
}

#[test]
fn gluten_free_weeks_pass_the_rules() {
    assert_weeks_pass(DietType::Omnivore, vec![Restriction::GlutenFree]);
}

#[test]
fn dairy_free_weeks_pass_the_rules() {
    assert_weeks_pass(DietType::Omnivore, vec![Restriction::DairyFree]);
}

#[test]
fn nut_free_weeks_pass_the_rules() {
    assert_weeks_pass(DietType::Omnivore, vec![Restriction::NutFree]);
}
