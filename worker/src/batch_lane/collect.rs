//! Collecting a finished provider batch: its output and error files are read, each job's
//! whole-menu answer is split into days, and each day is checked against the rules in order,
//! as a day asked alone would be (its brief given the days kept before it). The days that
//! pass are saved as the job's (attempt 0, their source the batch lane), the refused days'
//! problems are kept for the normal lane's first ask of them, the answer's cost at the batch
//! price is added to the job, and every job leaves the provider lane: a queued one is pushed
//! to the queue, where the normal lane generates only the days still missing. A line that
//! failed, expired or never ran leaves its job to the normal lane with no day.
//!
//! Each job's collection is fenced by the job still waiting on this batch, so a collection cut
//! short and done again (after a crash, by another worker) saves nothing twice.

use std::collections::{BTreeMap, HashMap};

use domain::menu::{Day, DaySource};
use domain::prompt::MenuBrief;
use domain::request::GenerationRequest;
use domain::rules;
use shared::db::jobs::to_json;
use shared::db::provider_batches::{self, JobCollection, LaneJob, ProviderBatch, Tally};
use shared::db::{self};
use shared::job::{JobStatus, Usage};
use shared::lifecycle::no_progress;
use shared::llm::LlmClient;
use shared::llm::batches::{OutputLine, read_lines};
use shared::llm::price::{PriceLane, Prices};
use shared::queue::Lane;

use super::{BatchLane, LaneError, job_of};

/// Jobs collected per statement.
const CHUNK: usize = 500;

/// What became of one job's line, for `llm_batch_requests_total{outcome}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Every day of the answer passed the rules.
    Accepted,
    /// Some days passed; the others are asked again on the normal lane.
    Partial,
    /// Answered, but no day passed (or the answer was not a menu).
    Refused,
    /// An error line: the request failed at the provider.
    Failed,
    /// No answer: the batch expired, was cancelled or failed first, or the line is missing.
    Expired,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Partial => "partial",
            Outcome::Refused => "refused",
            Outcome::Failed => "failed",
            Outcome::Expired => "expired",
        }
    }
}

/// The lines of a batch's output and error files by job (an answered line wins over an error
/// line for the same job), and the batch's tally over them.
struct Lines {
    by_job: HashMap<uuid::Uuid, OutputLine>,
    tally: Tally,
}

/// Reads the files' lines and tallies them: `requests` lines were sent, each answered line is
/// priced at the batch price of `model`.
fn read(files: &[Vec<u8>], requests: i32, model: &str, prices: &Prices) -> Lines {
    let mut by_job: HashMap<uuid::Uuid, OutputLine> = HashMap::new();
    let mut tally = Tally::default();
    for file in files {
        for line in read_lines(file) {
            let line = match line {
                Ok(line) => line,
                Err(number) => {
                    tracing::warn!(
                        line = number,
                        "a line of a batch's file is not an output line"
                    );
                    continue;
                }
            };
            let Some(job) = job_of(&line.custom_id) else {
                continue;
            };
            if let Some(body) = line.answer() {
                tally.completed += 1;
                let usage = priced(LlmClient::read_menu(body).0, model, prices);
                tally.cost_micros += usage.cost_micros;
                tally.saved_micros += usage.batch_saved_micros;
            } else if line.response.is_some() {
                tally.failed += 1;
            }
            let answered = |l: &OutputLine| l.answer().is_some();
            if !by_job.get(&job).is_some_and(answered) {
                by_job.insert(job, line);
            }
        }
    }
    tally.expired = (requests - tally.completed - tally.failed).max(0);
    Lines { by_job, tally }
}

/// `usage` with its cost at the batch price of `model`, and what that saved.
fn priced(mut usage: Usage, model: &str, prices: &Prices) -> Usage {
    let (prompt, completion) = (usage.prompt_tokens, usage.completion_tokens);
    usage.cost_micros = prices.cost_micros(model, PriceLane::Batch, prompt, completion);
    usage.batch_saved_micros = prices.saved_micros(model, prompt, completion);
    usage
}

/// The days of `answer` for `request` that pass the rules, in order, each checked with the
/// brief of its day given the days kept before it and stamped with `source`; and why each
/// other day of the answer was refused, by day number. Days past the menu's are ignored.
fn judge(
    request: &GenerationRequest,
    answer: Vec<Day>,
    source: &DaySource,
) -> (Vec<Day>, BTreeMap<String, Vec<String>>) {
    let brief = MenuBrief::new(request);
    let mut kept: Vec<Day> = Vec::new();
    let mut problems = BTreeMap::new();
    for (day_number, mut day) in (1..=request.days).zip(answer) {
        day.finish(
            day_number,
            Some(request.date_of(day_number)),
            request.servings,
        );
        let found = rules::check_day(&brief.day_brief(day_number, &kept), &day);
        if found.is_empty() {
            day.source = Some(source.clone());
            kept.push(day);
        } else {
            let found = found.into_iter().map(|p| p.message).collect();
            problems.insert(day_number.to_string(), found);
        }
    }
    (kept, problems)
}

/// What one job gets from `line` (none: its line is missing).
fn job_collection(
    job: &LaneJob,
    line: Option<&OutputLine>,
    model: &str,
    prices: &Prices,
    source: &DaySource,
) -> Result<(JobCollection, Outcome), sqlx::Error> {
    let mut collection = JobCollection {
        job_id: job.id,
        days: Vec::new(),
        problems: BTreeMap::new(),
        usage: Usage::default(),
    };
    let outcome = match line {
        None => Outcome::Expired,
        Some(line) => match line.answer() {
            None if line.response.is_some() => Outcome::Failed,
            None => Outcome::Expired,
            Some(body) => {
                let (usage, answer) = LlmClient::read_menu(body);
                collection.usage = priced(usage, model, prices);
                match answer {
                    Err(e) => {
                        tracing::info!(job.id = %job.id, error = %e, "a batch answer is not a menu; the normal lane asks every day");
                        Outcome::Refused
                    }
                    Ok(answer) => {
                        let request = &job.request.0;
                        let (kept, problems) = judge(request, answer, source);
                        collection.problems = problems;
                        for day in &kept {
                            collection
                                .days
                                .push((i32::from(day.day_number), to_json(day)?));
                        }
                        match kept.len() {
                            0 => Outcome::Refused,
                            n if n == usize::from(request.days) => Outcome::Accepted,
                            _ => Outcome::Partial,
                        }
                    }
                }
            }
        },
    };
    Ok((collection, outcome))
}

impl BatchLane {
    /// Collects a `finished` batch (see the module's comment) and marks it `collected`.
    #[tracing::instrument(skip_all, fields(provider_batch = %batch.id), err(level = "warn"))]
    pub(super) async fn collect(&self, batch: &ProviderBatch) -> Result<(), LaneError> {
        if !self.renew(batch).await? {
            return Ok(());
        }
        let mut files = Vec::new();
        for id in [&batch.output_file_id, &batch.error_file_id]
            .into_iter()
            .flatten()
        {
            files.push(self.client.download(id).await?);
        }
        let jobs = {
            let mut conn = db::hold(self.life.pool(), "provider_batch_jobs").await?;
            provider_batches::jobs_of(&mut conn, batch.id).await?
        };
        let source = DaySource {
            endpoint: batch.endpoint.clone(),
            model: batch.model.clone(),
            lane: PriceLane::Batch.as_str().to_string(),
        };
        let (requests, model, prices) = (batch.requests, batch.model.clone(), self.prices.clone());
        let (collections, outcomes, tally) = tokio::task::spawn_blocking(move || {
            let lines = read(&files, requests, &model, &prices);
            let mut collections = Vec::with_capacity(jobs.len());
            let mut outcomes = Vec::with_capacity(jobs.len());
            for job in &jobs {
                let line = lines.by_job.get(&job.id);
                let (collection, outcome) = job_collection(job, line, &model, &prices, &source)?;
                collections.push(collection);
                outcomes.push(outcome);
            }
            Ok::<_, sqlx::Error>((collections, outcomes, lines.tally))
        })
        .await??;

        let mut handed: Vec<(uuid::Uuid, Lane)> = Vec::new();
        for (chunk, outcomes) in collections.chunks(CHUNK).zip(outcomes.chunks(CHUNK)) {
            let collected = {
                let mut conn = db::hold(self.life.pool(), "provider_batch_collect").await?;
                provider_batches::collect_jobs(&mut conn, batch.id, chunk).await?
            };
            let now: std::collections::HashSet<uuid::Uuid> =
                collected.iter().map(|c| c.id).collect();
            for (job, outcome) in chunk.iter().zip(outcomes) {
                if now.contains(&job.job_id) {
                    metrics::counter!("llm_batch_requests_total", "outcome" => outcome.as_str())
                        .increment(1);
                }
            }
            let queued = collected.iter().filter(|c| c.status == JobStatus::Queued);
            let queued: Vec<(uuid::Uuid, Lane)> =
                queued.map(|c| (c.id, Lane::of(c.batch_id))).collect();
            // On the normal lane now: pushed as soon as their rows are committed.
            for lane in [Lane::Interactive, Lane::Batch] {
                let ids = lane.ids_in(&queued);
                if !ids.is_empty() {
                    self.life.push(lane, &ids, &no_progress).await;
                }
            }
            handed.extend(queued);
            let ids: Vec<uuid::Uuid> = collected.iter().map(|c| c.id).collect();
            self.life.changed(&ids).await;
        }

        let marked = {
            let mut conn = db::hold(self.life.pool(), "provider_batch_collected").await?;
            provider_batches::collected(&mut conn, batch.id, &self.owner, tally).await?
        };
        if marked {
            let outcome = batch.provider_status.clone().unwrap_or_default();
            metrics::counter!("llm_provider_batches_total", "outcome" => outcome.clone())
                .increment(1);
            tracing::info!(
                provider_batch = %batch.id,
                outcome,
                completed = tally.completed,
                failed = tally.failed,
                expired = tally.expired,
                cost_micros = tally.cost_micros,
                saved_micros = tally.saved_micros,
                to_normal_lane = handed.len(),
                "provider batch collected"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answered_line_wins_over_an_error_line_and_the_rest_expired() {
        let (a, b, c) = (
            uuid::Uuid::now_v7(),
            uuid::Uuid::now_v7(),
            uuid::Uuid::now_v7(),
        );
        let answered = serde_json::json!({
            "custom_id": format!("job-{a}"),
            "response": {"status_code": 200, "body": {"choices": [],
                         "usage": {"prompt_tokens": 1000, "completion_tokens": 2000}}}
        });
        let failed = serde_json::json!({
            "custom_id": format!("job-{b}"),
            "response": {"status_code": 500, "body": {"error": {"message": "x"}}}
        });
        let expired = serde_json::json!({
            "custom_id": format!("job-{a}"), "response": null,
            "error": {"code": "batch_expired", "message": "m"}
        });
        let output = format!("{answered}\n").into_bytes();
        let errors = format!("{failed}\n{expired}\n").into_bytes();
        let prices = Prices::default();
        let lines = read(&[output, errors], 4, "gpt-4o-mini", &prices);
        assert!(lines.by_job[&a].answer().is_some());
        assert!(lines.by_job[&b].answer().is_none());
        assert!(!lines.by_job.contains_key(&c));
        assert_eq!(
            (
                lines.tally.completed,
                lines.tally.failed,
                lines.tally.expired
            ),
            (1, 1, 2)
        );
        // gpt-4o-mini in a batch: $0.075 and $0.30 per million tokens.
        assert_eq!(lines.tally.cost_micros, 75 + 600);
        assert_eq!(lines.tally.saved_micros, 75 + 600);
    }
}
