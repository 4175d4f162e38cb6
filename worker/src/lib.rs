//! The worker: apalis drives the job pipeline over our Redis queue backend; beside it run the
//! queue's upkeep (promoting delayed jobs, reaping dead workers), the lease keeper and the
//! cancellation listener of the running attempts, the reconciler, the weekly batch's
//! scheduler, and the batch lane (provider-lane runs through the provider's Batch API).

pub mod batch_lane;
pub mod call;
pub mod config;
pub mod generate;
pub mod metrics;
pub mod pipeline;

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use apalis::prelude::{Data, Monitor, WorkerBuilder, WorkerBuilderExt};
use apalis_core::worker::ext::parallelize::ParallelizeExt;
use shared::batch::schedule;
use shared::lifecycle::lease::{RENEWAL_GRACE, Stop};
use shared::lifecycle::reconcile;
use shared::queue::ack::Settle;
use shared::queue::backend::RedisBackend;
use shared::queue::{Queue, QueueConfig, maintenance};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub use batch_lane::BatchLane;
pub use call::{CallPolicy, Caller};
pub use config::{BatchConfig, BatchLaneConfig, JobConfig, WorkerConfig};
pub use pipeline::{Pipeline, PipelineError};

/// Connects to everything and runs until `shutdown` completes, then drains.
pub async fn run(
    config: WorkerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    config.jobs.check().map_err(anyhow::Error::msg)?;
    config.batch.schedule.check().map_err(anyhow::Error::msg)?;
    config.budget.check().map_err(anyhow::Error::msg)?;
    let pool = shared::db::connect(&config.database)
        .await
        .context("connecting to PostgreSQL")?;
    let queue = Queue::connect(&config.redis)
        .await
        .context("connecting to Redis")?;
    match queue.upgrade().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(jobs = n, "queue upgraded: waiting ids now carry their lane"),
        Err(e) => tracing::warn!(error = %e, "could not upgrade the queue's members set"),
    }
    telemetry::metrics();
    let metrics_stop = CancellationToken::new();
    if let Some(bind) = config.metrics_bind.0 {
        let listener = tokio::net::TcpListener::bind(bind).await.with_context(|| {
            format!("listen on {bind} for /metrics (METRICS_BIND=off disables it)")
        })?;
        tokio::spawn(metrics::serve(
            listener,
            pool.clone(),
            queue.clone(),
            metrics_stop.clone(),
        ));
    }
    let _stop_metrics = metrics_stop.drop_guard();
    let caller = Caller::new(queue.redis(), &config).context("building the LLM clients")?;
    for endpoint in &caller.endpoints {
        for model in [&endpoint.settings.llm.model]
            .into_iter()
            .chain(&endpoint.settings.llm.model_premium)
        {
            if !caller.prices.knows(model) {
                tracing::warn!(llm.endpoint = endpoint.name(), llm.model = %model, "no price for this model (LLM_PRICES): its calls count as costing nothing");
            }
        }
    }
    caller.publish_limits().await;
    let pipeline = Pipeline::new(pool, queue, caller, config.jobs.clone());
    run_pipeline(pipeline, config.queue, config.batch, shutdown).await
}

async fn handle(job_id: Uuid, pipeline: Data<Arc<Pipeline>>) -> Result<Settle, PipelineError> {
    pipeline.process(job_id).await
}

/// Runs the pipeline under apalis until `shutdown`, with what keeps jobs alive beside it: the
/// queue's upkeep (delayed jobs, dead workers), the lease keeper, the cancellation listener and
/// the reconciler; and the weekly batch's scheduler and the batch lane (`batch`). On `shutdown` no new job is taken, running jobs get the grace period to
/// finish, and whatever is still running is then handed back to the queue.
pub async fn run_pipeline(
    pipeline: Arc<Pipeline>,
    queue_config: QueueConfig,
    batch: BatchConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let life = pipeline.lifecycle().clone();
    let queue = life.queue().clone();
    let jobs = pipeline.config().clone();
    let batch_lane = BatchLane::new(
        life.clone(),
        pipeline.caller(),
        batch.lane,
        pipeline.worker_id().to_string(),
    )
    .map_err(anyhow::Error::msg)?;
    let background = CancellationToken::new();
    let tasks = [
        tokio::spawn(maintenance::run(
            queue.clone(),
            queue_config.clone(),
            background.clone(),
        )),
        tokio::spawn(
            pipeline
                .leases()
                .clone()
                .keep(jobs.lease_renew(), background.clone()),
        ),
        tokio::spawn(pipeline.leases().clone().listen(background.clone())),
        tokio::spawn(reconcile::run(
            life.clone(),
            jobs.reconcile_interval,
            RENEWAL_GRACE,
            background.clone(),
        )),
        tokio::spawn(schedule::run(
            life,
            batch.schedule,
            batch.enqueue,
            background.clone(),
        )),
        tokio::spawn(batch_lane.run(background.clone())),
    ];

    let leases = pipeline.leases().clone();
    let grace = jobs.shutdown_grace();
    let signal = async move {
        shutdown.await;
        tracing::info!(grace_secs = grace.as_secs(), "shutting down: no new jobs");
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            leases.stop_all(Stop::Shutdown);
        });
        Ok(())
    };

    let concurrency = jobs.concurrency;
    let batch_slots = jobs.batch_slots();
    let monitor = Monitor::new()
        .register(move |_restarts| {
            // The pipeline's worker id: its attempts and its in-flight list carry the same one.
            let backend = RedisBackend::new(
                queue.clone(),
                queue_config.clone(),
                pipeline.worker_id().to_string(),
            )
            .with_batch_slots(batch_slots);
            WorkerBuilder::new(pipeline.worker_id())
                .backend(backend)
                .data(pipeline.clone())
                .concurrency(concurrency)
                .catch_panic()
                // apalis polls every job of a worker in one task: give each its own, so jobs
                // use every core and one job's parsing never delays another's database write.
                .parallelize(tokio::spawn)
                .build(handle)
        })
        // Handing back takes a moment after the grace period; then stop regardless.
        .shutdown_timeout(grace + std::time::Duration::from_secs(5));
    let result = monitor.run_with_signal(signal).await;
    background.cancel();
    for task in tasks {
        let _ = task.await;
    }
    result.context("worker stopped with an error")
}
