//! `GET /v1/jobs/{id}/events`: a job's changes as Server-Sent Events, from the job now to its
//! end, resumable with `Last-Event-ID`, for the job's viewers only.

use std::time::Duration;

use reqwest::{Method, Response, StatusCode};
use serde_json::Value;
use testkit::{Account, TestApi, error_of, spawn_api};
use uuid::Uuid;

/// Reads a stream's events (`id` and the job in `data`) as they come, until `want` of them or
/// the stream's end; fails after `within`.
struct Events {
    body: Response,
    buffer: String,
    ended: bool,
}

impl Events {
    fn of(response: Response) -> Events {
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        Events {
            body: response,
            buffer: String::new(),
            ended: false,
        }
    }

    /// The next event, or `None` once the stream has ended.
    async fn next(&mut self) -> Option<(String, Value)> {
        // Generous: a change reaches the stream in milliseconds, but the machine may be loaded.
        tokio::time::timeout(Duration::from_secs(10), self.read())
            .await
            .expect("an event or the end of the stream")
    }

    async fn read(&mut self) -> Option<(String, Value)> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let field = |name: &str| {
                    block
                        .lines()
                        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
                        .map(str::to_string)
                };
                // Comment lines (keep-alives) carry no event.
                let (Some(id), Some(data)) = (field("id"), field("data")) else {
                    continue;
                };
                assert_eq!(field("event").as_deref(), Some("job"));
                return Some((id, serde_json::from_str(&data).unwrap()));
            }
            if self.ended {
                return None;
            }
            match self.body.chunk().await.unwrap() {
                Some(chunk) => self.buffer.push_str(std::str::from_utf8(&chunk).unwrap()),
                None => self.ended = true,
            }
        }
    }
}

/// An API, an account, a queued job of theirs (in the database only), and the path of the
/// job's event stream.
async fn a_queued_job_and_its_stream() -> (TestApi, Account, Uuid, String) {
    let app = spawn_api(|_| {}).await;
    let owner = app.user().await;
    let job = app.queued_job(owner.id).await;
    let path = format!("/v1/jobs/{job}/events");
    (app, owner, job, path)
}

/// Reconnects to the stream at `path` as `owner`, having seen up to the event `last`.
async fn resume(app: &TestApi, path: &str, owner: &Account, last: &str) -> Response {
    app.request(Method::GET, path, Some(&owner.token))
        .header("last-event-id", last)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_job_streams_each_change_and_the_stream_ends_when_it_finishes() {
    let (app, owner, job, path) = a_queued_job_and_its_stream().await;
    let mut events = Events::of(app.get(&path, &owner.token).await);

    let (first, view) = events.next().await.unwrap();
    assert_eq!(view["status"], "queued");
    assert_eq!(view["id"], job.to_string());

    app.claim(job).await;
    app.announce(job).await;
    let (second, view) = events.next().await.unwrap();
    assert_eq!(view["status"], "running");
    assert!(second.parse::<i64>().unwrap() > first.parse::<i64>().unwrap());

    let cancelled = app.cancel(job, &owner).await;
    assert_eq!(cancelled.status(), StatusCode::OK);
    let (_, view) = events.next().await.unwrap();
    assert_eq!(view["status"], "cancelled");
    assert!(
        events.next().await.is_none(),
        "the stream ends with the job"
    );
}

#[tokio::test]
async fn a_reconnect_with_the_last_event_id_gets_only_what_it_has_not_seen() {
    let (app, owner, job, path) = a_queued_job_and_its_stream().await;
    let mut events = Events::of(app.get(&path, &owner.token).await);
    let (seen, _) = events.next().await.unwrap();
    drop(events);

    // Nothing changed: resuming sends nothing until the job changes.
    let resumed = resume(&app, &path, &owner, &seen).await;
    let mut events = Events::of(resumed);
    app.claim(job).await;
    app.announce(job).await;
    let (next, view) = events.next().await.unwrap();
    assert_eq!(view["status"], "running", "the first event is the change");
    assert_ne!(next, seen);
    drop(events);

    // A finished job seen in its final version: the stream ends at once, with no event.
    app.cancel(job, &owner).await;
    let mut events = Events::of(app.get(&path, &owner.token).await);
    let (last, view) = events.next().await.unwrap();
    assert_eq!(view["status"], "cancelled");
    assert!(events.next().await.is_none());
    let again = resume(&app, &path, &owner, &last).await;
    assert!(Events::of(again).next().await.is_none());
}

#[tokio::test]
async fn only_the_jobs_viewers_get_its_stream() {
    let (app, owner, _, path) = a_queued_job_and_its_stream().await;
    let stranger = app.user().await;
    let (status, error) = error_of(app.get(&path, &stranger.token).await).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let anonymous = app.get_anonymous(&path).await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let unknown = format!("/v1/jobs/{}/events", uuid::Uuid::now_v7());
    let (status, _) = error_of(app.get(&unknown, &owner.token).await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
