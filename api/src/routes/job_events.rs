//! A job as a stream of Server-Sent Events (the push form browsers' `EventSource` and mobile
//! clients prefer to polling): its view now, then again at every change, until it finishes.
//! Resumable with `Last-Event-ID`, per the HTML Standard's "Server-sent events" section.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use shared::db::jobs::JobRow;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::CurrentUser;
use crate::error::ApiError;
use crate::events::Listener;
use crate::extract::Id;
use crate::openapi::ItemRefusals;
use crate::state::AppState;
use crate::views::{JobView, visible_job};

/// A comment line this often keeps proxies from closing a quiet stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(stream))
}

/// A job's changes, pushed as Server-Sent Events.
///
/// Each event is `event: job`, `id:` the job's version (when it last changed, in microseconds
/// since 1970) and `data:` the job as `GET /v1/jobs/{id}` answers it. The first event is the job
/// now, then one per change; the stream ends after the job finishes (succeeded, failed or
/// cancelled), and when the server shuts down. A client that reconnects with `Last-Event-ID`
/// gets no event for a version it has seen already. Comment lines every 15 s keep the
/// connection open.
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}/events",
    operation_id = "stream_job",
    tag = "jobs",
    security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "The job's id"),
        (
            "Last-Event-ID" = Option<String>,
            Header,
            description = "The `id` of the last event received, to resume after a reconnect",
        ),
    ),
    responses(
        (status = 200, description = "The job's events", content_type = "text/event-stream", body = JobEvent),
        ItemRefusals,
    )
)]
async fn stream(
    State(state): State<AppState>,
    caller: CurrentUser,
    Id(id): Id,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let seen = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_string());
    // Listen first, so a change between the read and the wait is not missed.
    let changes = state.events.listen(id);
    // A job the caller may not see is a 404 before the stream starts.
    let job = visible_job(&state, id, caller.id).await?;
    let watch = Watch {
        state,
        viewer: caller.id,
        changes,
        seen,
        next: Some(job),
        finished: false,
    };
    let events = futures::stream::unfold(watch, |mut watch| async move {
        let event = watch.next_event().await?;
        Some((Ok(event), watch))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

/// One event of the stream, by its fields (`event:`, `id:`, `data:` lines); comment lines
/// between events keep the connection open.
#[derive(ToSchema)]
struct JobEvent {
    /// Always `job`.
    #[schema(pattern = "^job$")]
    event: &'static str,
    /// The job's version: when it last changed, in microseconds since 1970.
    #[schema(pattern = "^[0-9]+$")]
    id: String,
    /// The job as `GET /v1/jobs/{id}` answers it (a `Job`), as JSON on one line.
    #[schema(content_media_type = "application/json")]
    data: String,
}

impl JobEvent {
    fn of(job: JobRow) -> Option<JobEvent> {
        Some(JobEvent {
            event: "job",
            id: job.updated_at.timestamp_micros().to_string(),
            data: serde_json::to_string(&JobView::from(job)).ok()?,
        })
    }

    fn into_event(self) -> Event {
        Event::default()
            .event(self.event)
            .id(self.id)
            .data(self.data)
    }
}

/// One stream's state: the job to send next, and the last version sent or seen.
struct Watch {
    state: AppState,
    viewer: Uuid,
    changes: Listener,
    seen: Option<String>,
    next: Option<JobRow>,
    finished: bool,
}

impl Watch {
    /// The next event to send; `None` ends the stream (the job finished, the server is
    /// stopping, the job cannot be read any more: a client reconnects and resumes).
    async fn next_event(&mut self) -> Option<Event> {
        loop {
            if self.finished {
                return None;
            }
            let job = match self.next.take() {
                Some(job) => job,
                None => {
                    tokio::select! {
                        _ = self.changes.changed() => {}
                        _ = self.state.stopping.cancelled() => return None,
                    }
                    visible_job(&self.state, self.changes.job(), self.viewer)
                        .await
                        .ok()?
                }
            };
            self.finished = job.status.is_terminal();
            let event = JobEvent::of(job)?;
            if self.seen.as_deref() == Some(event.id.as_str()) {
                continue;
            }
            self.seen = Some(event.id.clone());
            return Some(event.into_event());
        }
    }
}
