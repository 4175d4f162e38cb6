//! Generating one day: ask the model, check its answer against the rules, and ask again with
//! the problems listed, a bounded number of times. A day the batch lane's answer got wrong
//! starts with that answer's problems listed, and is asked around the days kept from it.

use domain::menu::Day;
use domain::prompt::DayBrief;
use domain::request::GenerationRequest;
use domain::rules;
use shared::db::jobs::Fence;
use shared::job::Usage;
use shared::llm::{CallId, ErrorClass, LlmError};

use crate::call::{Bounds, Caller, Interrupt};

/// One job's generation: what every day of it is asked with.
pub struct Generation<'a> {
    pub caller: &'a Caller,
    pub request: &'a GenerationRequest,
    /// The attempt, as its calls name it to the provider.
    pub fence: Fence,
    /// Asks per day when answers break the rules.
    pub max_asks: u32,
    pub bounds: Bounds,
}

impl Generation<'_> {
    /// Asks for day `day_number` given the menu's other known days (before it, and after it
    /// when the batch lane kept later days), `problems` listed on the first ask (what the
    /// batch lane's answer for it broke; usually none). `usage` collects what the calls cost
    /// whatever the outcome.
    #[tracing::instrument(skip_all, fields(day = day_number))]
    pub async fn day(
        &self,
        day_number: u8,
        others: &[Day],
        mut problems: Vec<String>,
        usage: &mut Usage,
    ) -> Result<Day, Interrupt> {
        let request = self.request;
        for ask in 1..=self.max_asks.max(1) {
            let brief = DayBrief::new(request, day_number, others, problems.clone());
            let id = CallId {
                job: self.fence.job,
                fence: self.fence.token,
                day: day_number,
                ask,
                retry: 0,
            };
            match self
                .caller
                .call(request.model, &brief, id, &self.bounds, usage)
                .await
            {
                Ok(mut day) => {
                    day.finish(
                        day_number,
                        Some(request.date_of(day_number)),
                        request.servings,
                    );
                    let found = rules::check_day(&brief, &day);
                    if found.is_empty() {
                        return Ok(day);
                    }
                    tracing::info!(
                        day = day_number,
                        ask,
                        rules.broken = found.len(),
                        "day broke the rules; asking again"
                    );
                    problems = found.into_iter().map(|p| p.message).collect();
                }
                Err(Interrupt::Failed(e)) if e.class == ErrorClass::InvalidOutput => {
                    tracing::info!(
                        day = day_number,
                        ask,
                        "day did not match the schema; asking again"
                    );
                    problems = e.problems;
                }
                Err(interrupt) => return Err(interrupt),
            }
        }
        Err(Interrupt::Failed(LlmError::invalid_output(problems)))
    }
}
