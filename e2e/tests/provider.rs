//! How the system reacts to each way the provider can fail, class by class (DESIGN.md §4):
//! the calls made, the waits honoured, the attempts used, the final status and error code.
//! The provider is the stand-in over HTTP, told what to do call by call.

use std::time::Duration;

use domain::tokens::{CAP_FRAME, CAP_PER_MEAL};
use reqwest::StatusCode;
use serde_json::{Value, json};
use shared::config::JsonMode;
use shared::llm::CallId;
use standin::{BodyStyle, BrokenRule, Fault, LoggedRequest, RateLimitFault, Step};
use testkit::{Account, SystemOptions, TestSystem, spawn_system};
use uuid::Uuid;

async fn job_row(system: &TestSystem, job: Uuid) -> (String, i32, i32) {
    sqlx::query_as("SELECT status::text, attempts, snoozes FROM generation_jobs WHERE id = $1")
        .bind(job)
        .fetch_one(&system.pool)
        .await
        .unwrap()
}

/// Milliseconds between one call's answer and the next call's arrival.
fn gap_ms(earlier: &LoggedRequest, later: &LoggedRequest) -> f64 {
    later.arrived_ms - earlier.answered_ms.expect("answered")
}

fn rate_limited(fault: RateLimitFault) -> Step {
    Step::once(Fault::RateLimited(fault))
}

/// A 429 telling its wait in one way only.
fn quiet_429() -> RateLimitFault {
    RateLimitFault {
        hint: false,
        ratelimit_headers: false,
        ..RateLimitFault::default()
    }
}

async fn one_day_job(system: &TestSystem) -> (Account, Uuid) {
    let cook = system.api.user().await;
    let job = system.submit_job(&cook, json!({"days": 1})).await;
    (cook, job)
}

async fn finished(system: &TestSystem, who: &Account, job: Uuid) -> Value {
    system
        .wait_until_finished(who, job, Duration::from_secs(30))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rate_limit_is_waited_out_as_the_server_says_without_using_an_attempt() {
    let forms = [
        (
            "retry-after-ms",
            RateLimitFault {
                retry_after_ms: Some(700),
                ..quiet_429()
            },
            700.0,
        ),
        (
            "retry-after",
            RateLimitFault {
                retry_after_s: Some(1.0),
                ..quiet_429()
            },
            1000.0,
        ),
        (
            "x-ratelimit-reset-requests",
            RateLimitFault {
                ratelimit_headers: true,
                reset_ms: Some(800),
                ..quiet_429()
            },
            800.0,
        ),
        (
            "message hint",
            RateLimitFault {
                hint: true,
                try_again_ms: Some(600),
                ..quiet_429()
            },
            600.0,
        ),
    ];
    for (form, fault, wait_ms) in forms {
        let system = spawn_system(SystemOptions::default()).await;
        system.standin.script(vec![rate_limited(fault)]);
        let (cook, job) = one_day_job(&system).await;
        let view = finished(&system, &cook, job).await;
        assert_eq!(view["status"], "succeeded", "{form}: {view}");
        let calls = system.standin.requests();
        assert_eq!(calls.len(), 2, "{form}: one 429, one success");
        assert_eq!(calls[0].status, Some(429));
        let gap = gap_ms(&calls[0], &calls[1]);
        assert!(
            gap >= wait_ms - 5.0,
            "{form}: called again after {gap} ms, told {wait_ms} ms"
        );
        assert!(
            gap < wait_ms + 1_000.0,
            "{form}: waited {gap} ms for {wait_ms} ms"
        );
        let (_, attempts, snoozes) = job_row(&system, job).await;
        assert_eq!(
            (attempts, snoozes),
            (1, 1),
            "{form}: a snooze, not an attempt"
        );
        system.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_429_pauses_every_worker_not_just_the_one_that_got_it() {
    let system = spawn_system(SystemOptions {
        workers: 2,
        ..SystemOptions::default()
    })
    .await;
    system.standin.script(vec![rate_limited(RateLimitFault {
        retry_after_ms: Some(1_200),
        ..quiet_429()
    })]);
    let cook = system.api.user().await;
    let first = system.submit_job(&cook, json!({"days": 1})).await;
    // Let the first call come back with its 429 before the other jobs start.
    while system
        .standin
        .requests()
        .first()
        .and_then(|c| c.status)
        .is_none()
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut jobs = vec![first];
    for _ in 0..4 {
        jobs.push(system.submit_job(&cook, json!({"days": 1})).await);
    }
    for job in &jobs {
        assert_eq!(finished(&system, &cook, *job).await["status"], "succeeded");
    }
    let calls = system.standin.requests();
    let limited = &calls[0];
    assert_eq!(limited.status, Some(429));
    for call in &calls[1..] {
        let gap = gap_ms(limited, call);
        assert!(
            gap >= 1_195.0,
            "a call came {gap} ms after the 429 that paused the fleet for 1.2 s"
        );
    }
    system.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_server_wait_beyond_the_cap_puts_the_job_back_in_the_queue_until_then() {
    let mut options = SystemOptions::default();
    options.jobs.max_server_wait = Duration::from_millis(300);
    let system = spawn_system(options).await;
    system.standin.script(vec![rate_limited(RateLimitFault {
        retry_after_ms: Some(1_500),
        ..quiet_429()
    })]);
    let (cook, job) = one_day_job(&system).await;
    while system.standin.requests().is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, attempts, snoozes) = job_row(&system, job).await;
    assert_eq!(
        (status.as_str(), attempts, snoozes),
        ("queued", 0, 1),
        "back in the queue, not in a slot"
    );
    let view = finished(&system, &cook, job).await;
    assert_eq!(view["status"], "succeeded");
    let calls = system.standin.requests();
    assert_eq!(calls.len(), 2);
    assert!(gap_ms(&calls[0], &calls[1]) >= 1_495.0);
    system.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rate_limit_waits_are_capped_per_job() {
    let mut options = SystemOptions::default();
    options.jobs.max_snoozes = 2;
    let system = spawn_system(options).await;
    system
        .standin
        .script(vec![Step::always(Fault::RateLimited(RateLimitFault {
            retry_after_ms: Some(100),
            ..quiet_429()
        }))]);
    let (cook, job) = one_day_job(&system).await;
    let view = finished(&system, &cook, job).await;
    assert_eq!(view["status"], "failed");
    assert_eq!(view["error"]["code"], "llm_rate_limited");
    assert_eq!(
        system.standin.requests().len(),
        3,
        "the first call and two waits"
    );
    assert_eq!(job_row(&system, job).await.1, 1, "still the first attempt");
    system.stop().await;
}

/// The calls' `X-Client-Request-Id`s, read back.
fn call_ids(calls: &[LoggedRequest]) -> Vec<CallId> {
    calls
        .iter()
        .map(|c| {
            c.client_request_id
                .as_deref()
                .expect("every call names itself")
                .parse()
                .expect("a call id")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn transient_failures_are_retried_within_the_attempt() {
    let transient = [
        (
            "500",
            Fault::ServerError {
                status: 500,
                body: BodyStyle::Json,
            },
        ),
        (
            "502 html",
            Fault::ServerError {
                status: 502,
                body: BodyStyle::Html,
            },
        ),
        (
            "503 empty",
            Fault::ServerError {
                status: 503,
                body: BodyStyle::Empty,
            },
        ),
        ("408", Fault::RequestTimeout),
        ("409", Fault::Conflict),
        ("reset", Fault::Reset),
        ("malformed json", Fault::MalformedJson),
        ("truncated", Fault::Truncated),
        ("integer code", Fault::IntegerCode { status: 500 }),
        ("null code", Fault::NullCode { status: 503 }),
    ];
    for (what, fault) in transient {
        let system = spawn_system(SystemOptions::default()).await;
        system.standin.script(vec![Step::once(fault)]);
        let (cook, job) = one_day_job(&system).await;
        let view = finished(&system, &cook, job).await;
        assert_eq!(view["status"], "succeeded", "{what}: {view}");
        assert_eq!(view["attempts"], 1, "{what}: the call absorbed the fault");
        assert!(view["error"].is_null(), "{what}");
        let calls = system.standin.requests();
        assert_eq!(calls.len(), 2, "{what}");
        let ids = call_ids(&calls);
        assert_eq!(
            (ids[0].job, ids[0].day, ids[0].ask, ids[0].retry),
            (job, 1, 1, 0),
            "{what}"
        );
        assert_eq!(
            (ids[1].fence, ids[1].retry),
            (ids[0].fence, 1),
            "{what}: the same attempt's retry"
        );
        system.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_answer_cut_at_its_cap_is_asked_again_with_the_ceiling_never_the_same_cap() {
    let system = spawn_system(SystemOptions::default()).await;
    let ceiling = i64::from(
        testkit::llm_config(String::new(), JsonMode::JsonSchema, Duration::ZERO)
            .max_completion_tokens,
    );
    // Default options: three meals, no snack.
    let derived = i64::from(CAP_FRAME + 3 * CAP_PER_MEAL);
    system
        .standin
        .script(vec![Step::times(2, Fault::Truncated)]);
    let (cook, job) = one_day_job(&system).await;
    let view = finished(&system, &cook, job).await;
    assert_eq!(view["status"], "succeeded", "{view}");
    assert_eq!(view["attempts"], 1, "{view}");
    let caps: Vec<Option<i64>> = system
        .standin
        .requests()
        .iter()
        .map(|c| c.max_completion_tokens)
        .collect();
    // Cut at the derived cap: asked again with the ceiling; cut there too (a transient fault
    // of the provider's): retried, still at the ceiling.
    assert_eq!(caps, vec![Some(derived), Some(ceiling), Some(ceiling)]);
    system.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_week_reserves_at_most_15k_tokens_and_no_answer_is_cut() {
    let system = spawn_system(SystemOptions::default()).await;
    let cook = system.api.user().await;
    let job = system.submit_job(&cook, json!({"days": 7})).await;
    let view = finished(&system, &cook, job).await;
    assert_eq!(view["status"], "succeeded", "{view}");
    let calls = system.standin.requests();
    assert_eq!(calls.len(), 7, "one call a day: {calls:?}");
    // What the fleet budget reserves for each call: its prompt plus its completion cap.
    let reserved: i64 = calls
        .iter()
        .map(|c| i64::from(c.prompt_tokens.unwrap()) + c.max_completion_tokens.unwrap())
        .sum();
    println!("a week reserved {reserved} tokens");
    assert!(reserved <= 15_000, "a week reserved {reserved} tokens");
    assert!(
        calls
            .iter()
            .all(|c| c.finish_reason.as_deref() == Some("stop")),
        "{calls:?}"
    );
    system.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn transient_failures_past_the_retries_fail_the_attempt_and_the_next_succeeds() {
    let system = spawn_system(SystemOptions::default()).await;
    let retries = SystemOptions::default().jobs.llm_max_retries;
    system.standin.script(vec![Step::times(
        1 + retries,
        Fault::ServerError {
            status: 503,
            body: BodyStyle::Json,
        },
    )]);
    let (cook, job) = one_day_job(&system).await;
    let view = finished(&system, &cook, job).await;
    assert_eq!(view["status"], "succeeded", "{view}");
    assert_eq!(
        view["attempts"], 2,
        "the first attempt failed, the second ran"
    );
    let calls = system.standin.requests();
    assert_eq!(calls.len() as u32, retries + 2);
    let ids = call_ids(&calls);
    assert_ne!(
        ids[0].fence,
        ids.last().unwrap().fence,
        "a new attempt, a new fence"
    );
    let row: (String,) = sqlx::query_as(
        "SELECT error_code FROM job_attempts WHERE job_id = $1 AND outcome = 'retrying'",
    )
    .bind(job)
    .fetch_one(&system.pool)
    .await
    .unwrap();
    assert_eq!(row.0, "llm_server_error");
    system.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_call_that_hangs_times_out_and_is_retried_within_the_attempt() {
    let system = spawn_system(SystemOptions {
        call_timeout: Duration::from_millis(800),
        ..SystemOptions::default()
    })
    .await;
    system
        .standin
        .script(vec![Step::once(Fault::Hang { ms: 60_000 })]);
    let (cook, job) = one_day_job(&system).await;
    let view = finished(&system, &cook, job).await;
    assert_eq!(view["status"], "succeeded");
    assert_eq!(view["attempts"], 1);
    let calls = system.standin.requests();
    assert_eq!(calls.len(), 2);
    assert!(
        calls[1].arrived_ms - calls[0].arrived_ms >= 800.0,
        "no retry before the timeout"
    );
    system.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_server_wait_of_zero_or_in_the_past_or_unreadable_waits_the_backoff_instead() {
    let mut options = SystemOptions::default();
    // The production default: no retry sooner than a second, whatever the server says.
    options.jobs.llm_retry_base = Duration::from_secs(1);
    options.jobs.llm_retry_max = Duration::from_secs(8);
    let system = spawn_system(options).await;
    let says = |value: &str| {
        rate_limited(RateLimitFault {
            retry_after: Some(value.to_string()),
            ..quiet_429()
        })
    };
    system.standin.script(vec![
        says("0"),
        says("Wed, 21 Oct 2015 07:28:00 GMT"),
        says("-3"),
        says("soon"),
        Step::once(Fault::ServerError {
            status: 503,
            body: BodyStyle::Json,
        }),
    ]);
    let (cook, job) = one_day_job(&system).await;
    let view = system
        .wait_until_finished(&cook, job, Duration::from_secs(90))
        .await;
    assert_eq!(view["status"], "succeeded", "{view}");
    let calls = system.standin.requests();
    assert_eq!(calls.len(), 6, "four waits, a retry, a success");
    for pair in calls.windows(2) {
        let gap = gap_ms(&pair[0], &pair[1]);
        assert!(
            gap >= 995.0,
            "called again {gap} ms after {:?}",
            pair[0].status
        );
    }
    let (_, attempts, snoozes) = job_row(&system, job).await;
    assert_eq!((attempts, snoozes), (1, 4), "rate limits used no attempt");
    system.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_very_long_server_wait_is_capped_for_the_job_and_the_fleet_pause() {
    let mut options = SystemOptions::default();
    options.jobs.max_server_wait = Duration::from_millis(300);
    options.jobs.server_wait_cap = Duration::from_secs(2);
    let system = spawn_system(options).await;
    system.standin.script(vec![rate_limited(RateLimitFault {
        // A day: a misconfigured proxy, say.
        retry_after_s: Some(86_400.0),
        ..quiet_429()
    })]);
    let (cook, job) = one_day_job(&system).await;
    while system.standin.requests().is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let pause: i64 = redis::cmd("PTTL")
        .arg(system.api.queue.redis().keys().llm_pause("gpt-4o-mini"))
        .query_async(&mut system.api.queue.redis().connection())
        .await
        .unwrap();
    assert!(pause <= 2_000, "the fleet is paused for {pause} ms");
    let view = system
        .wait_until_finished(&cook, job, Duration::from_secs(30))
        .await;
    assert_eq!(view["status"], "succeeded");
    let calls = system.standin.requests();
    let gap = gap_ms(&calls[0], &calls[1]);
    assert!(
        (1_995.0..10_000.0).contains(&gap),
        "back after {gap} ms, the cap being 2 s"
    );
    system.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn errors_that_are_the_jobs_fail_it_at_once() {
    let permanent = [
        ("content filter", Fault::ContentFilter, "llm_content_filter"),
        (
            "context too long",
            Fault::ContextLengthExceeded { max_context: 1_000 },
            "llm_context_length_exceeded",
        ),
        (
            "legacy 400",
            Fault::LegacyVllm { status: 400 },
            "llm_bad_request",
        ),
    ];
    for (what, fault, code) in permanent {
        let system = spawn_system(SystemOptions::default()).await;
        system.standin.script(vec![Step::always(fault)]);
        let (cook, job) = one_day_job(&system).await;
        let view = finished(&system, &cook, job).await;
        assert_eq!(view["status"], "failed", "{what}");
        assert_eq!(view["error"]["code"], code, "{what}");
        assert_eq!(view["attempts"], 1, "{what}: not retried");
        assert_eq!(system.standin.requests().len(), 1, "{what}: one call");
        system.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn answers_that_keep_breaking_the_rules_use_up_the_asks_then_the_attempts() {
    let mut options = SystemOptions::default();
    options.jobs.day_max_asks = 2;
    options.max_attempts = 2;
    let system = spawn_system(options).await;
    system.standin.script(vec![Step::always(Fault::BrokenRule {
        rule: BrokenRule::CaloriesOff,
    })]);
    let (cook, job) = one_day_job(&system).await;
    let view = finished(&system, &cook, job).await;
    assert_eq!(view["status"], "failed");
    assert_eq!(view["error"]["code"], "invalid_output");
    assert!(view["error"]["message"].as_str().unwrap().contains("kcal"));
    assert_eq!(view["attempts"], 2);
    let calls = system.standin.requests();
    assert_eq!(calls.len(), 4, "two asks in each of two attempts");
    assert_eq!(
        calls[1].problems,
        Some(1),
        "the second ask lists the problem"
    );
    system.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_past_its_deadline_fails() {
    let mut options = SystemOptions {
        standin: standin::Config {
            latency: standin::Latency::fixed(Duration::from_millis(700)),
            ..Default::default()
        },
        ..SystemOptions::default()
    };
    options.jobs.deadline_secs = 1;
    let system = spawn_system(options).await;
    let cook = system.api.user().await;
    let job = system.submit_job(&cook, json!({"days": 4})).await;
    let view = finished(&system, &cook, job).await;
    assert_eq!(view["status"], "failed");
    assert_eq!(view["error"]["code"], "deadline_exceeded");
    assert!(
        system.standin.requests().len() <= 3,
        "no call after the deadline"
    );
    system.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_calls_tokens_are_counted_for_the_job_and_its_requester() {
    let system = spawn_system(SystemOptions::default()).await;
    system.standin.script(vec![Step::once(Fault::BrokenRule {
        rule: BrokenRule::MissingMeal,
    })]);
    let cook = system.api.user().await;
    let job = system.submit_job(&cook, json!({"days": 2})).await;
    let view = finished(&system, &cook, job).await;
    assert_eq!(view["status"], "succeeded");
    let calls = system.standin.requests();
    assert_eq!(calls.len(), 3, "the rejected answer counts too");
    let prompt: i64 = calls
        .iter()
        .map(|c| i64::from(c.prompt_tokens.unwrap()))
        .sum();
    let completion: i64 = calls
        .iter()
        .map(|c| i64::from(c.completion_tokens.unwrap()))
        .sum();
    assert_eq!(view["usage"]["llm_calls"], 3);
    assert_eq!(view["usage"]["prompt_tokens"], prompt);
    assert_eq!(view["usage"]["completion_tokens"], completion);
    let (status, usage) = system.get_json(&cook, "/v1/me/usage").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(usage["jobs"], 1);
    assert_eq!(usage["total_tokens"], prompt + completion);
    system.stop().await;
}
