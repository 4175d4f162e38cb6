//! Submitting a prepared provider batch: upload its input file (unless an earlier try stored
//! one), then find the provider's batch carrying our id in its metadata (a worker that died
//! after creating it, before storing its id) or create it, and store its id at once. Each id is
//! stored under the lease, so a worker that lost its lease stores nothing.
//!
//! The provider refusing the file or the batch (a 400: over its limits, a malformed line) ends
//! the batch as `refused`: its jobs go to the normal lane when it is collected. Any other
//! failure (the provider away, a 5xx, a key refused) is tried again on the next pass.

use std::collections::BTreeMap;

use shared::db::provider_batches::{self, BatchStatus, ProviderBatch};
use shared::db::{self};
use shared::job::JobStatus;
use shared::llm::batches::METADATA_KEY;
use shared::llm::{ErrorClass, LlmError};

use super::gather::lines;
use super::{BatchLane, LaneError};

/// `provider_batches.provider_status` of a batch the provider turned down before it ran.
pub(super) const REFUSED: &str = "refused";

/// `provider_batches.provider_status` of a batch whose jobs were all cancelled before it was
/// submitted: nothing was sent.
pub(super) const EMPTY: &str = "empty";

/// Margin for the clocks of the provider and our database when the provider's batches are
/// searched back to our batch's creation (seconds).
const CLOCK_MARGIN_SECS: i64 = 600;

impl BatchLane {
    /// Takes a `preparing` batch to `submitted` (or to `finished` when there is nothing to
    /// submit or the provider refused it). `file`: its input file, when this pass wrote it.
    /// Returns the batch as it now is; `None` when another worker took it over.
    #[tracing::instrument(skip_all, fields(provider_batch = %batch.id), err(level = "warn"))]
    pub(super) async fn submit(
        &self,
        batch: &ProviderBatch,
        file: Option<Vec<u8>>,
    ) -> Result<Option<ProviderBatch>, LaneError> {
        let input_file_id = match &batch.input_file_id {
            Some(id) => id.clone(),
            None => match self.upload(batch, file).await? {
                Upload::Stored(id) => id,
                Upload::Lost => return Ok(None),
                Upload::Nothing => return self.end_unsent(batch, EMPTY).await,
                Upload::Refused(e) => {
                    tracing::warn!(provider_batch = %batch.id, error = %e, "the provider refused the batch's input file; its jobs go to the normal lane");
                    return self.end_unsent(batch, REFUSED).await;
                }
            },
        };
        // Never a second batch for the same work: a batch this id was sent with is taken up.
        let not_before = batch.created_at.timestamp() - CLOCK_MARGIN_SECS;
        let id = batch.id.to_string();
        let remote = match self.client.find(METADATA_KEY, &id, not_before).await? {
            Some(found) => {
                tracing::info!(provider_batch = %batch.id, remote = found.id, "provider batch found by its metadata; taking it up");
                found
            }
            None => {
                let metadata = BTreeMap::from([(METADATA_KEY.to_string(), id)]);
                match self.client.create(&input_file_id, &metadata).await {
                    Ok(created) => {
                        metrics::counter!("llm_provider_batches_created_total").increment(1);
                        created
                    }
                    Err(e) if refused(&e) => {
                        tracing::warn!(provider_batch = %batch.id, error = %e, "the provider refused the batch; its jobs go to the normal lane");
                        return self.end_unsent(batch, REFUSED).await;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        };
        let stored = {
            let mut conn = db::hold(self.life.pool(), "provider_batch_submitted").await?;
            provider_batches::submitted(
                &mut conn,
                batch.id,
                &self.owner,
                &remote.id,
                remote.status.as_str(),
            )
            .await?
        };
        if !stored {
            return Ok(None);
        }
        tracing::info!(provider_batch = %batch.id, remote = remote.id, requests = batch.requests, "provider batch submitted");
        Ok(Some(ProviderBatch {
            status: BatchStatus::Submitted.as_str().into(),
            provider_status: Some(remote.status.as_str().into()),
            input_file_id: Some(input_file_id),
            provider_batch_id: Some(remote.id),
            ..batch.clone()
        }))
    }

    /// Uploads the batch's input file (`file`, or its lines written again from its jobs still
    /// queued) and stores the file's id.
    async fn upload(
        &self,
        batch: &ProviderBatch,
        file: Option<Vec<u8>>,
    ) -> Result<Upload, LaneError> {
        let file = match file {
            Some(file) => file,
            None => {
                let jobs = {
                    let mut conn = db::hold(self.life.pool(), "provider_batch_jobs").await?;
                    provider_batches::jobs_of(&mut conn, batch.id).await?
                };
                let queued: Vec<_> = jobs
                    .into_iter()
                    .filter(|j| j.status == JobStatus::Queued)
                    .collect();
                if queued.is_empty() {
                    return Ok(Upload::Nothing);
                }
                let (client, model) = (self.endpoint.client.clone(), batch.model.clone());
                tokio::task::spawn_blocking(move || {
                    lines(&client, &model, &queued, u64::MAX)
                        .into_iter()
                        .flat_map(|l| l.text)
                        .collect()
                })
                .await?
            }
        };
        if !self.renew(batch).await? {
            return Ok(Upload::Lost);
        }
        let name = format!("menus-{}.jsonl", batch.id);
        let uploaded = match self.client.upload(&name, file).await {
            Ok(uploaded) => uploaded,
            Err(e) if refused(&e) => return Ok(Upload::Refused(e)),
            Err(e) => return Err(e.into()),
        };
        let mut conn = db::hold(self.life.pool(), "provider_batch_file").await?;
        Ok(
            match provider_batches::set_input_file(&mut conn, batch.id, &self.owner, &uploaded.id)
                .await?
            {
                true => Upload::Stored(uploaded.id),
                false => Upload::Lost,
            },
        )
    }

    /// Ends a batch that was never submitted as `finished` with `why` (no files): collecting it
    /// hands its jobs to the normal lane.
    async fn end_unsent(
        &self,
        batch: &ProviderBatch,
        why: &str,
    ) -> Result<Option<ProviderBatch>, LaneError> {
        let mut conn = db::hold(self.life.pool(), "provider_batch_refused").await?;
        if !provider_batches::finished(&mut conn, batch.id, &self.owner, why, None, None).await? {
            return Ok(None);
        }
        Ok(Some(ProviderBatch {
            status: BatchStatus::Finished.as_str().into(),
            provider_status: Some(why.into()),
            ..batch.clone()
        }))
    }
}

/// What uploading the input file came to.
enum Upload {
    /// Uploaded, its id stored.
    Stored(String),
    /// Another worker took the batch over.
    Lost,
    /// None of its jobs is queued any more (all cancelled): nothing to send.
    Nothing,
    /// The provider turned the file down (a 400).
    Refused(LlmError),
}

/// Whether the provider turned the request down for what it is (a 400 or 413: a file over its
/// limits, a malformed line), so that sending it again would be refused again. A refused key
/// or a missing model (the fleet's trouble) and passing failures are tried again instead.
fn refused(error: &LlmError) -> bool {
    error.class == ErrorClass::PermanentForJob
}
