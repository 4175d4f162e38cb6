//! Generating one day: ask the model, check its answer against the rules, and ask again with
//! the problems listed, a bounded number of times.

use shared::job::Usage;
use shared::llm::{ErrorClass, LlmClient, LlmError};
use shared::menu::Day;
use shared::prompt::DayBrief;
use shared::request::GenerationRequest;
use shared::rules;

/// Asks for day `day_number` given the days before it. Returns what the calls cost either way.
pub async fn day(
    llm: &LlmClient,
    model: &str,
    request: &GenerationRequest,
    day_number: u8,
    earlier: &[Day],
    max_asks: u32,
) -> (Usage, Result<Day, LlmError>) {
    let mut usage = Usage::default();
    let mut problems: Vec<String> = Vec::new();
    for ask in 1..=max_asks.max(1) {
        let brief = DayBrief::new(request, day_number, earlier, problems.clone());
        let call = llm.plan_day(model, &brief).await;
        usage.add(call.usage);
        match call.result {
            Ok(mut day) => {
                day.finish(
                    day_number,
                    Some(request.date_of(day_number)),
                    request.servings,
                );
                let found = rules::check_day(&brief, &day);
                if found.is_empty() {
                    return (usage, Ok(day));
                }
                tracing::info!(
                    day = day_number,
                    ask,
                    rules.broken = found.len(),
                    "day broke the rules; asking again"
                );
                problems = found.into_iter().map(|p| p.message).collect();
            }
            Err(e) if e.class == ErrorClass::InvalidOutput => {
                tracing::info!(
                    day = day_number,
                    ask,
                    "day did not match the schema; asking again"
                );
                problems = e.problems;
            }
            Err(e) => return (usage, Err(e)),
        }
    }
    (usage, Err(LlmError::invalid_output(problems)))
}
