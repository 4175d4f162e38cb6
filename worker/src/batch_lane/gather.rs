//! Gathering: waiting provider-lane jobs become one provider batch, cut at the limits. Their
//! lines are written first, with no transaction open (a line is a whole-menu Chat Completions
//! request, and 50,000 of them take a while); then one short transaction locks the jobs still
//! waiting, counts the tokens the provider already holds for the model, records the batch and
//! assigns the jobs to it. Only after it commits does anything go to the provider.

use std::collections::HashSet;

use domain::prompt::MenuBrief;
use domain::tokens;
use shared::db::provider_batches::{self, LaneJob, NewBatch, ProviderBatch};
use shared::db::{self};
use shared::llm::LlmClient;
use shared::llm::batches::InputLine;
use sqlx::Connection;
use uuid::Uuid;

use super::{BatchLane, LaneError, Route, custom_id};

/// A provider batch just recorded, and its input file.
pub(super) struct Gathered {
    pub batch: ProviderBatch,
    /// JSONL: one [`InputLine`] per job, in the jobs' order.
    pub file: Vec<u8>,
}

/// One job's line of an input file.
pub(super) struct Line {
    pub job: Uuid,
    /// The JSON line and its newline.
    pub text: Vec<u8>,
    /// Prompt tokens the provider will bill for it.
    pub tokens: u32,
}

/// The lines of `jobs` asking `model` (custom id `job-{uuid}`, body from
/// [`LlmClient::menu_request`]), in order, stopping after the line that takes them past
/// `max_bytes` in all (no batch could take the rest). CPU work: run it on a blocking thread.
pub(super) fn lines(
    client: &LlmClient,
    model: &str,
    jobs: &[LaneJob],
    max_bytes: u64,
) -> Vec<Line> {
    // The system message and the schema are the same on every line: counted once.
    let mut fixed: Option<u32> = None;
    let (mut lines, mut bytes) = (Vec::new(), 0u64);
    for job in jobs {
        if bytes > max_bytes {
            break;
        }
        let brief = MenuBrief::new(&job.request.0);
        let user = tokens::message("user", &brief.to_json());
        let fixed = *fixed.get_or_insert_with(|| client.menu_prompt_tokens(&brief) - user);
        let body = client.menu_request(model, &brief);
        let id = custom_id(job.id);
        let mut text =
            serde_json::to_vec(&InputLine::chat(&id, &body)).expect("JSON values serialise");
        text.push(b'\n');
        bytes += text.len() as u64;
        lines.push(Line {
            job: job.id,
            text,
            tokens: fixed + user,
        });
    }
    lines
}

/// The limits a provider batch is cut at.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    pub requests: usize,
    pub bytes: u64,
    /// Prompt tokens the provider may still take for the model (its limit less what the open
    /// batches hold).
    pub room: i64,
    /// Whether the provider holds nothing for the model: then a first line larger than the room
    /// still goes (alone), or it would wait forever.
    pub idle: bool,
}

/// How many of `lines` (those `available`, in order) one batch takes within `limits`: the
/// first always fits unless tokens are short while other batches are open.
pub(super) fn cut<'a>(
    lines: &'a [Line],
    available: &HashSet<Uuid>,
    limits: Limits,
) -> Vec<&'a Line> {
    let mut kept: Vec<&Line> = Vec::new();
    let (mut bytes, mut tokens) = (0u64, 0i64);
    for line in lines.iter().filter(|l| available.contains(&l.job)) {
        let after_bytes = bytes + line.text.len() as u64;
        let after_tokens = tokens + i64::from(line.tokens);
        let first = kept.is_empty();
        let fits_bytes = after_bytes <= limits.bytes || first;
        let fits_tokens = after_tokens <= limits.room || (first && limits.idle);
        if kept.len() == limits.requests || !fits_bytes || !fits_tokens {
            break;
        }
        kept.push(line);
        (bytes, tokens) = (after_bytes, after_tokens);
    }
    kept
}

impl BatchLane {
    /// Records one provider batch of the jobs waiting for `route`'s model, within the limits
    /// (see the module's comment). `None`: nothing waits, or the provider holds as many tokens
    /// as it may for the model.
    #[tracing::instrument(skip_all, fields(llm.model = route.model), err(level = "warn"))]
    pub(super) async fn gather(&self, route: &Route) -> Result<Option<Gathered>, LaneError> {
        let tiers: Vec<&str> = route.tiers.iter().map(String::as_str).collect();
        let waiting = {
            let mut conn = db::hold(self.life.pool(), "provider_batch_waiting").await?;
            provider_batches::waiting(&mut conn, &tiers, i64::from(self.config.max_requests))
                .await?
        };
        if waiting.is_empty() {
            return Ok(None);
        }
        let (client, model) = (self.endpoint.client.clone(), route.model.clone());
        let max_bytes = self.config.max_file_bytes;
        let lines =
            tokio::task::spawn_blocking(move || lines(&client, &model, &waiting, max_bytes))
                .await?;

        let endpoint = self.endpoint.name();
        let mut conn = db::hold(self.life.pool(), "provider_batch_gather").await?;
        let mut tx = conn.begin().await?;
        provider_batches::lock_gathering(&mut tx, endpoint, &route.model).await?;
        let enqueued = provider_batches::enqueued_tokens(&mut tx, endpoint, &route.model).await?;
        let ids: Vec<Uuid> = lines.iter().map(|l| l.job).collect();
        let available: HashSet<Uuid> = provider_batches::lock_waiting(&mut tx, &ids)
            .await?
            .into_iter()
            .collect();
        let limits = Limits {
            requests: self.config.max_requests as usize,
            bytes: self.config.max_file_bytes,
            room: i64::try_from(self.config.max_enqueued_tokens).unwrap_or(i64::MAX) - enqueued,
            idle: enqueued == 0,
        };
        let kept = cut(&lines, &available, limits);
        if kept.is_empty() {
            if !available.is_empty() {
                tracing::debug!(
                    llm.model = route.model,
                    enqueued,
                    "jobs wait for the provider to hold fewer tokens"
                );
            }
            return Ok(None);
        }
        let file: Vec<u8> = kept.iter().flat_map(|l| l.text.iter().copied()).collect();
        let new = NewBatch {
            endpoint,
            model: &route.model,
            requests: kept.len() as i32,
            bytes: file.len() as i64,
            prompt_tokens: kept.iter().map(|l| i64::from(l.tokens)).sum(),
            owner: &self.owner,
            lease: self.config.lease(),
        };
        let jobs: Vec<Uuid> = kept.iter().map(|l| l.job).collect();
        let batch = provider_batches::create(&mut tx, &new, &jobs).await?;
        tx.commit().await?;
        drop(conn);
        tracing::info!(
            provider_batch = %batch.id,
            endpoint,
            llm.model = route.model,
            requests = batch.requests,
            bytes = batch.bytes,
            prompt_tokens = batch.prompt_tokens,
            "provider batch gathered"
        );
        metrics::counter!("llm_batch_requests_total", "outcome" => "gathered")
            .increment(jobs.len() as u64);
        Ok(Some(Gathered { batch, file }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(bytes: usize, tokens: u32) -> Line {
        Line {
            job: Uuid::now_v7(),
            text: vec![b'x'; bytes],
            tokens,
        }
    }

    fn limits(requests: usize, bytes: u64, room: i64, idle: bool) -> Limits {
        Limits {
            requests,
            bytes,
            room,
            idle,
        }
    }

    #[test]
    fn a_batch_is_cut_at_the_first_limit_reached() {
        let lines: Vec<Line> = (0..10).map(|_| line(100, 1_000)).collect();
        let all: HashSet<Uuid> = lines.iter().map(|l| l.job).collect();
        let taken = |l: Limits| cut(&lines, &all, l).len();
        assert_eq!(taken(limits(4, 10_000, 100_000, true)), 4, "requests");
        assert_eq!(taken(limits(50, 350, 100_000, true)), 3, "bytes");
        assert_eq!(taken(limits(50, 10_000, 5_500, false)), 5, "tokens");
        assert_eq!(taken(limits(50, 10_000, 100_000, true)), 10);
    }

    #[test]
    fn the_first_line_goes_alone_when_too_big_unless_others_hold_the_tokens() {
        let lines = vec![line(500, 9_000), line(10, 10)];
        let all: HashSet<Uuid> = lines.iter().map(|l| l.job).collect();
        assert_eq!(cut(&lines, &all, limits(50, 100, 1_000, true)).len(), 1);
        assert!(cut(&lines, &all, limits(50, 100_000, 1_000, false)).is_empty());
        assert!(cut(&lines, &all, limits(50, 100_000, 0, false)).is_empty());
    }

    #[test]
    fn jobs_another_gathering_took_are_left_out() {
        let lines: Vec<Line> = (0..3).map(|_| line(10, 10)).collect();
        let available: HashSet<Uuid> = [lines[0].job, lines[2].job].into();
        let kept: Vec<Uuid> = cut(&lines, &available, limits(50, 1_000, 1_000, true))
            .iter()
            .map(|l| l.job)
            .collect();
        assert_eq!(kept, [lines[0].job, lines[2].job]);
    }
}
