//! The completion caps the worker derives from a day's dishes (`domain::tokens`) hold the
//! stand-in's realistic answers, for every shape of day: a tight cap must not cut answers.

use chrono::NaiveDate;
use domain::prompt::DayBrief;
use domain::request::{GenerationRequest, MenuOptions};
use domain::tokens::completion_cap;
use domain::vocabulary::{DietType, MealTime};
use standin::compose::{answer_content, compose};
use standin::tokens;

#[test]
fn every_shape_of_day_fits_its_cap_with_room_to_spare() {
    let start = NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
    for meals in 1..=3 {
        for snacks in [0, 3] {
            for diet in [DietType::Omnivore, DietType::Vegan] {
                let options = MenuOptions {
                    meal_times: Some(MealTime::MEALS[..meals].to_vec()),
                    snacks_per_day: Some(snacks),
                    servings: Some(10),
                    diet_type: Some(diet),
                    ..MenuOptions::default()
                };
                let request = GenerationRequest::from_options(&options, start).unwrap();
                let brief = DayBrief::new(&request, 1, &[], vec![]);
                let cap = completion_cap(&brief, u32::MAX);
                let largest = (0..40)
                    .map(|seed| tokens::count(&answer_content(&compose(&brief, seed).day)))
                    .max()
                    .unwrap();
                let shape = format!("{meals} meals, {snacks} snacks, {diet:?}");
                assert!(
                    largest <= cap,
                    "{shape}: an answer of {largest} over the cap {cap}"
                );
                // Tight, too: the cap is what the budget reserves.
                assert!(
                    f64::from(largest) >= 0.5 * f64::from(cap),
                    "{shape}: the cap {cap} is far above the largest answer {largest}"
                );
            }
        }
    }
}
