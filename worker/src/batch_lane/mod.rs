//! The batch lane: a weekly batch run on the provider lane (`BATCH_LANE=provider`) asks for
//! each person's whole menu in one request of a provider batch (the Batch API: half the price,
//! answered within 24 hours, https://platform.openai.com/docs/guides/batch) before the normal
//! lane finishes what it leaves. Every worker runs this task; each pass:
//!
//! 1. `gather`: waiting provider-lane jobs of enqueued runs are cut into provider batches at the
//!    limits (requests, file bytes, the tokens the provider may hold), each recorded with its
//!    jobs in one short transaction before anything is sent;
//! 2. `submit`: its input file is uploaded, then the provider's batch is found by our metadata
//!    (after a crash) or created, and its id stored at once: nothing is submitted twice;
//! 3. the provider's batch is polled until it is final (and cancelled when every one of its
//!    jobs was cancelled);
//! 4. `collect`: its output and error files are read, each answer's days checked against the
//!    rules as a day's answer is, the valid days saved as the job's (with the cost at the batch
//!    price), the refused days' problems kept, and every job handed to the normal lane, which
//!    asks only for the days still missing.
//!
//! One worker drives a provider batch at a time, under a lease; a dead worker's batches are
//! taken over when its lease lapses. No connection is held across a call to the provider.

mod collect;
mod gather;
mod submit;

use chrono::Utc;
use domain::vocabulary::ModelTier;
use shared::db::provider_batches::{self, BatchStatus, ProviderBatch, Seen};
use shared::db::{self};
use shared::lifecycle::Lifecycle;
use shared::llm::LlmError;
use shared::llm::batches::{BatchClient, ProviderStatus};
use shared::llm::price::Prices;
use tokio_util::sync::CancellationToken;

use crate::call::{Caller, Endpoint};
use crate::config::BatchLaneConfig;

/// Provider batches one pass drives at most (the others wait for the next pass).
const DRIVEN_PER_PASS: i64 = 50;

/// How long after its submission a provider batch may stay unreadable before it is given up:
/// the Batch API's 24-hour completion window (`shared::llm::batches::COMPLETION_WINDOW`) and
/// six hours more for its files to be written and read.
pub const GIVE_UP_AFTER: chrono::TimeDelta = chrono::TimeDelta::hours(30);

/// How long a stopping worker tries to let go of its leases.
const RELEASE_WITHIN: std::time::Duration = std::time::Duration::from_secs(2);

/// Why a step of the lane stopped; the batch's state is in PostgreSQL, and the next pass goes
/// on from it.
#[derive(Debug, thiserror::Error)]
pub enum LaneError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("provider: {0}")]
    Provider(#[from] LlmError),
    /// Writing or reading the lines on a blocking thread failed (a panic).
    #[error("{0}")]
    Task(#[from] tokio::task::JoinError),
}

/// The models of the lane's endpoint and the request tiers each serves (`standard`,
/// `premium`, as requests write them): one provider batch asks one model.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Route {
    model: String,
    tiers: Vec<String>,
}

/// The batch lane of one worker process.
pub struct BatchLane {
    life: Lifecycle,
    endpoint: Endpoint,
    client: BatchClient,
    prices: Prices,
    routes: Vec<Route>,
    config: BatchLaneConfig,
    /// This process's worker id: the owner of the leases it takes.
    owner: String,
}

impl BatchLane {
    /// The lane of a worker whose calls `caller` makes, on the endpoint `config.endpoint`
    /// names (the first when unset), its leases held as `owner`. Errors: the named endpoint is
    /// not in the list, the settings contradict each other, or the HTTP client cannot be built.
    pub fn new(
        life: Lifecycle,
        caller: &Caller,
        config: BatchLaneConfig,
        owner: String,
    ) -> Result<BatchLane, String> {
        config.check()?;
        let endpoint = match &config.endpoint {
            None => caller.primary().clone(),
            Some(name) => caller
                .endpoints
                .iter()
                .find(|e| e.name() == name)
                .cloned()
                .ok_or_else(|| {
                    format!("BATCH_LANE_ENDPOINT {name:?} is not an endpoint of LLM_ENDPOINTS")
                })?,
        };
        let client = BatchClient::new(&endpoint.settings.llm, config.transfer_timeout)
            .map_err(|e| format!("building the Batch API client: {e}"))?;
        let mut routes: Vec<Route> = Vec::new();
        for tier in [ModelTier::Standard, ModelTier::Premium] {
            let model = endpoint.settings.llm.model_for(tier).to_string();
            let tier = serde_json::to_value(tier)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            match routes.iter_mut().find(|r| r.model == model) {
                Some(route) => route.tiers.push(tier),
                None => routes.push(Route {
                    model,
                    tiers: vec![tier],
                }),
            }
        }
        Ok(BatchLane {
            life,
            client,
            prices: caller.prices.clone(),
            endpoint,
            routes,
            config,
            owner,
        })
    }

    /// Runs a pass every `BATCH_LANE_POLL_MS` until `stop`, then lets go of this worker's
    /// leases. A pass cut short (stop, an error) leaves every batch where its last write put
    /// it.
    pub async fn run(self, stop: CancellationToken) {
        tracing::info!(
            endpoint = self.endpoint.name(),
            poll_ms = self.config.poll.as_millis() as u64,
            "batch lane started"
        );
        let mut tick = tokio::time::interval(self.config.poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            let result = tokio::select! {
                _ = stop.cancelled() => break,
                result = self.pass() => result,
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, "batch lane pass failed; the next one goes on");
            }
        }
        self.release().await;
    }

    /// Lets go of this worker's leases, so that another takes its batches over at once (a
    /// failure only delays that until they lapse).
    async fn release(&self) {
        let released = async {
            let mut conn = db::hold(self.life.pool(), "provider_batch_release").await?;
            provider_batches::release(&mut conn, &self.owner).await
        };
        match tokio::time::timeout(RELEASE_WITHIN, released).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!(batches = n, "provider batches let go for another worker"),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "could not let go of the provider batches; their leases lapse instead")
            }
            Err(_) => tracing::warn!(
                "letting go of the provider batches took too long; their leases lapse instead"
            ),
        }
    }

    /// One pass: gather what waits into new provider batches (submitting each at once), then
    /// drive the batches this worker holds or may take over.
    #[tracing::instrument(skip_all, err(level = "warn"))]
    pub async fn pass(&self) -> Result<(), LaneError> {
        for route in &self.routes {
            while let Some(gathered) = self.gather(route).await? {
                self.drive(gathered.batch, Some(gathered.file)).await?;
            }
        }
        let taken = {
            let mut conn = db::hold(self.life.pool(), "provider_batch_take").await?;
            provider_batches::take(&mut conn, &self.owner, self.config.lease(), DRIVEN_PER_PASS)
                .await?
        };
        for batch in taken {
            let id = batch.id;
            // One batch's trouble (its provider answering 5xx) does not hold the others up.
            if let Err(e) = self.drive(batch, None).await {
                tracing::warn!(provider_batch = %id, error = %e, "provider batch step failed; trying again next pass");
            }
        }
        self.record_gauges().await?;
        Ok(())
    }

    /// Moves one provider batch on as far as it goes now: submitted if it is being prepared
    /// (`file`: its input file, when this pass just wrote it), polled while it runs, collected
    /// once final.
    ///
    /// A batch the provider still cannot tell about (its batch or its files unreadable)
    /// [`GIVE_UP_AFTER`] after it was submitted is given up: its jobs go to the normal lane, so a
    /// provider that lost it never keeps people's menus waiting.
    #[tracing::instrument(skip_all, fields(provider_batch = %batch.id), err(level = "warn"))]
    async fn drive(&self, batch: ProviderBatch, file: Option<Vec<u8>>) -> Result<(), LaneError> {
        let submitted_at = batch.submitted_at;
        let status = batch.status();
        match self.step(batch.clone(), file).await {
            Err(e)
                if matches!(status, BatchStatus::Submitted | BatchStatus::Finished)
                    && submitted_at.is_some_and(|at| Utc::now() - at > GIVE_UP_AFTER) =>
            {
                tracing::warn!(provider_batch = %batch.id, error = %e, "provider batch unreadable past its completion window; its jobs go to the normal lane");
                self.give_up(&batch).await
            }
            result => result,
        }
    }

    /// Ends a batch the provider cannot account for: finished without files (if it was not
    /// already), then collected, which sends every job still waiting on it to the normal lane.
    async fn give_up(&self, batch: &ProviderBatch) -> Result<(), LaneError> {
        if batch.status() == BatchStatus::Submitted {
            let mut conn = db::hold(self.life.pool(), "provider_batch_give_up").await?;
            let finished =
                provider_batches::finished(&mut conn, batch.id, &self.owner, "lost", None, None)
                    .await?;
            if !finished {
                return Ok(());
            }
        }
        metrics::counter!("llm_provider_batches_total", "outcome" => "lost").increment(1);
        let lost = ProviderBatch {
            status: BatchStatus::Finished.as_str().into(),
            provider_status: Some("lost".into()),
            output_file_id: None,
            error_file_id: None,
            ..batch.clone()
        };
        self.collect(&lost).await
    }

    /// [`drive`](BatchLane::drive)'s steps.
    async fn step(&self, mut batch: ProviderBatch, file: Option<Vec<u8>>) -> Result<(), LaneError> {
        if batch.status() == BatchStatus::Preparing {
            match self.submit(&batch, file).await? {
                Some(updated) => batch = updated,
                None => return Ok(()),
            }
        }
        if batch.status() == BatchStatus::Submitted {
            match self.poll(&batch).await? {
                Some(updated) => batch = updated,
                None => return Ok(()),
            }
        }
        if batch.status() == BatchStatus::Finished {
            self.collect(&batch).await?;
        }
        Ok(())
    }

    /// Asks the provider how a submitted batch does. Returns the batch as `finished` once the
    /// provider's batch is final; `None` while it runs (or when another worker took it over).
    /// A batch whose jobs were all cancelled is cancelled at the provider: what ran by then is
    /// still paid for, the rest is not.
    async fn poll(&self, batch: &ProviderBatch) -> Result<Option<ProviderBatch>, LaneError> {
        let Some(provider_id) = batch.provider_batch_id.as_deref() else {
            return Ok(None);
        };
        let remote = self.client.get(provider_id).await?;
        let counts = remote.request_counts.unwrap_or_default();
        let status = remote.status;
        let mut conn = db::hold(self.life.pool(), "provider_batch_poll").await?;
        if !status.is_final() {
            let seen = Seen {
                provider_status: status.as_str(),
                completed: counts.completed,
                failed: counts.failed,
            };
            if !provider_batches::seen(&mut conn, batch.id, &self.owner, seen).await? {
                return Ok(None);
            }
            let cancelling = matches!(status, ProviderStatus::Cancelling);
            if !cancelling && provider_batches::still_waiting(&mut conn, batch.id).await? == 0 {
                drop(conn);
                tracing::info!(provider_batch = %batch.id, "every job of the provider batch was cancelled; cancelling it");
                self.client.cancel(provider_id).await?;
            }
            return Ok(None);
        }
        let finished = provider_batches::finished(
            &mut conn,
            batch.id,
            &self.owner,
            status.as_str(),
            remote.output_file_id.as_deref(),
            remote.error_file_id.as_deref(),
        )
        .await?;
        if !finished {
            return Ok(None);
        }
        tracing::info!(
            provider_batch = %batch.id,
            status = status.as_str(),
            completed = counts.completed,
            failed = counts.failed,
            "provider batch finished"
        );
        Ok(Some(ProviderBatch {
            status: BatchStatus::Finished.as_str().into(),
            provider_status: Some(status.as_str().into()),
            output_file_id: remote.output_file_id,
            error_file_id: remote.error_file_id,
            ..batch.clone()
        }))
    }

    /// Extends this worker's lease on the batch before a long step; `false`: taken over.
    async fn renew(&self, batch: &ProviderBatch) -> Result<bool, LaneError> {
        let mut conn = db::hold(self.life.pool(), "provider_batch_renew").await?;
        Ok(provider_batches::renew(&mut conn, batch.id, &self.owner, self.config.lease()).await?)
    }

    /// Sets `llm_provider_batches_in_flight{status}`: the batches not collected yet, by status.
    async fn record_gauges(&self) -> Result<(), LaneError> {
        let open = {
            let mut conn = db::hold(self.life.pool(), "provider_batch_gauges").await?;
            provider_batches::open_by_status(&mut conn).await?
        };
        for status in [
            BatchStatus::Preparing,
            BatchStatus::Submitted,
            BatchStatus::Finished,
        ] {
            let n = open
                .iter()
                .find(|(s, _)| s == status.as_str())
                .map_or(0, |(_, n)| *n);
            metrics::gauge!("llm_provider_batches_in_flight", "status" => status.as_str())
                .set(n as f64);
        }
        Ok(())
    }
}

/// The custom id of a job's line: `job-{uuid}`.
fn custom_id(job: uuid::Uuid) -> String {
    format!("job-{job}")
}

/// The job a custom id names, if it is one of ours.
fn job_of(custom_id: &str) -> Option<uuid::Uuid> {
    custom_id.strip_prefix("job-")?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_custom_id_names_its_job_and_reads_back() {
        let job = uuid::Uuid::now_v7();
        assert_eq!(job_of(&custom_id(job)), Some(job));
        assert_eq!(job_of("job-nope"), None);
        assert_eq!(job_of(&job.to_string()), None);
    }
}
