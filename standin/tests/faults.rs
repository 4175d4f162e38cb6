//! Every injected fault answers with the status, headers and body the real provider (or a
//! compatible local server) would, over real HTTP; scripts run in order and random faults
//! follow their rate.

mod common;

use std::time::{Duration, Instant};

use common::{KEY, body, body_for, brief, client, day_of, header, post};
use domain::rules::check_day;
use serde_json::{Value, json};
use standin::{
    BodyStyle, BrokenRule, Config, Fault, LimitKind, RandomFaults, RateLimitFault, StandIn, Step,
    spawn,
};

async fn answer_to(server: &StandIn, fault: Fault) -> reqwest::Response {
    server.script([Step::once(fault)]);
    post(&client(), &server.base_url(), &body()).await
}

/// Status and parsed JSON error body of a faulted call.
async fn error_of(server: &StandIn, fault: Fault) -> (u16, Value) {
    let response = answer_to(server, fault).await;
    assert!(header(&response, "x-request-id").is_some());
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn a_rate_limit_429_carries_every_configured_header_and_the_hint() {
    let server = spawn(Config::default()).await.unwrap();
    let fault = Fault::RateLimited(RateLimitFault {
        limit_type: LimitKind::Requests,
        hint: true,
        try_again_ms: Some(1500),
        retry_after_s: Some(2.0),
        retry_after: None,
        retry_after_ms: Some(1500),
        should_retry: Some(true),
        ratelimit_headers: true,
        reset_ms: Some(360_000),
        limit: Some(60),
    });
    let response = answer_to(&server, fault).await;
    assert_eq!(response.status(), 429);
    assert_eq!(header(&response, "retry-after"), Some("2"));
    assert_eq!(header(&response, "retry-after-ms"), Some("1500"));
    assert_eq!(header(&response, "x-should-retry"), Some("true"));
    assert_eq!(header(&response, "x-ratelimit-limit-requests"), Some("60"));
    assert_eq!(
        header(&response, "x-ratelimit-remaining-requests"),
        Some("0")
    );
    assert_eq!(
        header(&response, "x-ratelimit-reset-requests"),
        Some("6m0s")
    );
    assert!(header(&response, "x-ratelimit-limit-tokens").is_some());
    assert!(header(&response, "x-ratelimit-reset-tokens").is_some());
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "rate_limit_exceeded");
    assert_eq!(error["error"]["type"], "requests");
    assert_eq!(error["error"]["param"], Value::Null);
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Please try again in 1.5s.")
    );
}

#[tokio::test]
async fn a_bare_tokens_429_has_no_retry_headers_and_no_hint() {
    let server = spawn(Config::default()).await.unwrap();
    let fault = Fault::RateLimited(RateLimitFault {
        limit_type: LimitKind::Tokens,
        hint: false,
        ratelimit_headers: false,
        ..RateLimitFault::default()
    });
    let response = answer_to(&server, fault).await;
    assert_eq!(response.status(), 429);
    for name in [
        "retry-after",
        "retry-after-ms",
        "x-should-retry",
        "x-ratelimit-reset-tokens",
    ] {
        assert_eq!(header(&response, name), None, "{name}");
    }
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["type"], "tokens");
    assert!(
        !error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("try again")
    );
}

#[tokio::test]
async fn a_429_with_only_retry_after_ms_names_that_wait_everywhere() {
    let server = spawn(Config::default()).await.unwrap();
    let fault = Fault::RateLimited(RateLimitFault {
        retry_after_ms: Some(250),
        ..RateLimitFault::default()
    });
    let response = answer_to(&server, fault).await;
    assert_eq!(header(&response, "retry-after-ms"), Some("250"));
    assert_eq!(
        header(&response, "x-ratelimit-reset-requests"),
        Some("250ms")
    );
    let error: Value = response.json().await.unwrap();
    let message = error["error"]["message"].as_str().unwrap();
    assert!(message.contains("Please try again in 250ms."), "{message}");
}

#[tokio::test]
async fn a_raw_retry_after_is_sent_exactly_as_scripted() {
    let server = spawn(Config::default()).await.unwrap();
    let date = "Wed, 21 Oct 2015 07:28:00 GMT";
    let fault = Fault::RateLimited(RateLimitFault {
        retry_after_s: Some(2.0),
        retry_after: Some(date.into()),
        ..RateLimitFault::default()
    });
    let response = answer_to(&server, fault).await;
    assert_eq!(response.status(), 429);
    let sent: Vec<_> = response.headers().get_all("retry-after").iter().collect();
    assert_eq!(sent, [date]);
}

#[tokio::test]
async fn quota_size_and_permission_errors_look_like_openais() {
    let server = spawn(Config::default()).await.unwrap();

    let (status, e) = error_of(&server, Fault::InsufficientQuota).await;
    assert_eq!(status, 429);
    assert_eq!(e["error"]["code"], "insufficient_quota");
    assert_eq!(e["error"]["type"], "insufficient_quota");

    let (status, e) = error_of(&server, Fault::RequestTooLarge { limit: 30_000 }).await;
    assert_eq!(status, 429);
    let message = e["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("Request too large"), "{message}");
    assert!(message.contains("Limit 30000, Requested "), "{message}");

    let (status, e) = error_of(&server, Fault::InvalidApiKey).await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (401, Some("invalid_api_key"))
    );

    let (status, e) = error_of(&server, Fault::PermissionDenied).await;
    assert_eq!(status, 403);
    assert_eq!(e["error"]["code"], "unsupported_country_region_territory");

    let (status, e) = error_of(&server, Fault::ModelNotFound).await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (404, Some("model_not_found"))
    );

    let (status, e) = error_of(&server, Fault::ContextLengthExceeded { max_context: 8192 }).await;
    assert_eq!(status, 400);
    assert_eq!(e["error"]["code"], "context_length_exceeded");
    assert_eq!(e["error"]["param"], "messages");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("maximum context length is 8192 tokens")
    );
}

#[tokio::test]
async fn server_errors_come_as_json_html_or_nothing() {
    let server = spawn(Config::default()).await.unwrap();

    let (status, e) = error_of(
        &server,
        Fault::ServerError {
            status: 500,
            body: BodyStyle::Json,
        },
    )
    .await;
    assert_eq!(status, 500);
    assert_eq!(e["error"]["type"], "server_error");
    assert_eq!(e["error"]["code"], Value::Null);

    let html = answer_to(
        &server,
        Fault::ServerError {
            status: 502,
            body: BodyStyle::Html,
        },
    )
    .await;
    assert_eq!(html.status(), 502);
    assert_eq!(header(&html, "content-type"), Some("text/html"));
    assert!(
        html.text()
            .await
            .unwrap()
            .contains("<h1>502 Bad Gateway</h1>")
    );

    let empty = answer_to(
        &server,
        Fault::ServerError {
            status: 503,
            body: BodyStyle::Empty,
        },
    )
    .await;
    assert_eq!(empty.status(), 503);
    assert!(empty.bytes().await.unwrap().is_empty());

    assert_eq!(
        answer_to(&server, Fault::RequestTimeout).await.status(),
        408
    );
    assert_eq!(answer_to(&server, Fault::Conflict).await.status(), 409);
}

#[tokio::test]
async fn error_bodies_of_compatible_servers_stress_a_lenient_parser() {
    let server = spawn(Config::default()).await.unwrap();

    let (status, e) = error_of(&server, Fault::IntegerCode { status: 500 }).await;
    assert_eq!(status, 500);
    assert_eq!(e["error"]["code"], 500);

    let (status, e) = error_of(&server, Fault::LegacyVllm { status: 400 }).await;
    assert_eq!(status, 400);
    assert_eq!(e["object"], "error");
    assert_eq!(e["code"], 400);
    assert!(e["message"].is_string());
    assert!(e.get("error").is_none());

    let (status, e) = error_of(&server, Fault::NullCode { status: 503 }).await;
    assert_eq!(status, 503);
    assert_eq!(e["error"]["code"], Value::Null);
    assert!(e["error"]["message"].is_string());
}

fn choice(answer: &Value) -> (&Value, &str) {
    let c = &answer["choices"][0];
    (&c["message"], c["finish_reason"].as_str().unwrap())
}

#[tokio::test]
async fn broken_answers_come_back_as_200s() {
    let server = spawn(Config::default()).await.unwrap();

    let answer: Value = answer_to(&server, Fault::MalformedJson)
        .await
        .json()
        .await
        .unwrap();
    let (message, finish) = choice(&answer);
    assert_eq!(finish, "stop");
    assert!(serde_json::from_str::<Value>(message["content"].as_str().unwrap()).is_err());

    let answer: Value = answer_to(&server, Fault::Truncated)
        .await
        .json()
        .await
        .unwrap();
    let (message, finish) = choice(&answer);
    assert_eq!(finish, "length");
    let cut = message["content"].as_str().unwrap();
    assert!(cut.starts_with("{\"meals\":[") && serde_json::from_str::<Value>(cut).is_err());
    assert_eq!(
        answer["usage"]["completion_tokens"].as_u64().unwrap(),
        standin::tokens::count(cut) as u64
    );

    let refusal = Fault::Refusal {
        message: "I can't help with that.".into(),
    };
    let answer: Value = answer_to(&server, refusal).await.json().await.unwrap();
    let (message, finish) = choice(&answer);
    assert_eq!(finish, "stop");
    assert_eq!(message["content"], Value::Null);
    assert_eq!(message["refusal"], "I can't help with that.");

    let answer: Value = answer_to(&server, Fault::ContentFilter)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(choice(&answer).1, "content_filter");
}

#[tokio::test]
async fn a_rule_breaking_day_is_valid_json_that_fails_the_named_rule() {
    let server = spawn(Config::default()).await.unwrap();
    let mut brief = brief();
    brief.avoid_foods = vec!["okra".into()];
    brief.used_titles = vec!["Yesterday's Lentil Soup".into()];
    for (rule, code) in [
        (BrokenRule::DislikedFood, "disliked_food"),
        (BrokenRule::RepeatedTitle, "repeated_title"),
        (BrokenRule::CaloriesOff, "calories"),
        (BrokenRule::MissingMeal, "meal_times"),
    ] {
        server.script([Step::once(Fault::BrokenRule { rule })]);
        let answer: Value = post(&client(), &server.base_url(), &body_for(&brief))
            .await
            .json()
            .await
            .unwrap();
        let day = day_of(&answer, &brief);
        let problems = check_day(&brief, &day);
        assert!(
            problems.iter().any(|p| p.code == code),
            "{rule:?}: {problems:?}"
        );
    }
}

#[tokio::test]
async fn extra_latency_and_a_short_hang_delay_the_answer() {
    let server = spawn(Config::default()).await.unwrap();
    for fault in [Fault::Latency { ms: 250 }, Fault::Hang { ms: 250 }] {
        let started = Instant::now();
        let response = answer_to(&server, fault).await;
        assert_eq!(response.status(), 200);
        assert!(started.elapsed() >= Duration::from_millis(250));
    }
}

#[tokio::test]
async fn a_hang_outlasts_the_client_timeout_without_blocking_other_calls() {
    let server = spawn(Config::default()).await.unwrap();
    server.script([Step::once(Fault::Hang { ms: 600_000 })]);
    let url = format!("{}/chat/completions", server.base_url());
    let hung = client()
        .post(&url)
        .timeout(Duration::from_millis(500))
        .bearer_auth(KEY)
        .json(&body())
        .send();
    let other = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        post(&client(), &server.base_url(), &body()).await
    };
    let (hung, other) = tokio::join!(hung, other);
    assert!(hung.unwrap_err().is_timeout());
    assert_eq!(other.status(), 200);

    let started = Instant::now();
    server.shutdown().await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "shutdown waited for the hang"
    );
}

#[tokio::test]
async fn a_reset_gives_the_client_a_connection_error_and_no_response() {
    let server = spawn(Config::default()).await.unwrap();
    server.script([Step::once(Fault::Reset)]);
    let url = format!("{}/chat/completions", server.base_url());
    let error = client()
        .post(&url)
        .bearer_auth(KEY)
        .json(&body())
        .send()
        .await
        .unwrap_err();
    assert!(error.status().is_none());
    assert!(!error.is_timeout());
    assert!(error.is_request() || error.is_connect(), "{error:?}");

    // The next call, on a new connection, is answered normally.
    assert_eq!(
        post(&client(), &server.base_url(), &body()).await.status(),
        200
    );
    let log = server.requests();
    assert_eq!(log[0].fault.as_deref(), Some("reset"));
    assert_eq!(log[0].status, None);
    assert!(log[0].answered_ms.is_some());
    assert_eq!(log[1].status, Some(200));
}

#[tokio::test]
async fn a_reset_is_a_tcp_rst_not_a_clean_close() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let server = spawn(Config::default()).await.unwrap();
    server.script([Step::once(Fault::Reset)]);
    let payload = body().to_string();
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {KEY}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{payload}",
        server.addr(),
        payload.len()
    );
    let mut stream = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut buffer = Vec::new();
    let read = stream.read_to_end(&mut buffer).await;
    assert_eq!(
        read.map_err(|e| e.kind()),
        Err(std::io::ErrorKind::ConnectionReset),
        "read {} bytes",
        buffer.len()
    );
}

#[tokio::test]
async fn a_script_set_over_http_runs_in_order_until_cleared() {
    let server = spawn(Config::default()).await.unwrap();
    let client = client();
    let admin = format!("http://{}/_standin/script", server.addr());
    let script = json!([
        {"fault": {"kind": "server_error", "status": 503}, "times": 2},
        {"times": 1},
        {"fault": {"kind": "conflict"}, "times": null},
    ]);
    let pushed = client.post(&admin).json(&script).send().await.unwrap();
    assert_eq!(pushed.status(), 200);

    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(
            post(&client, &server.base_url(), &body())
                .await
                .status()
                .as_u16(),
        );
    }
    assert_eq!(statuses, [503, 503, 200, 409, 409, 409]);

    assert_eq!(client.delete(&admin).send().await.unwrap().status(), 204);
    assert_eq!(
        post(&client, &server.base_url(), &body()).await.status(),
        200
    );

    let invalid = client
        .post(&admin)
        .json(&json!({"fault": {"kind": "nope"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(invalid.status(), 400);
}

#[tokio::test]
async fn random_faults_follow_the_configured_rate_and_kinds() {
    let config = Config {
        faults: RandomFaults {
            rate: 1.0,
            kinds: vec![Fault::Conflict, Fault::RequestTimeout],
        },
        ..Config::default()
    };
    let server = spawn(config).await.unwrap();
    let client = client();
    for _ in 0..6 {
        let status = post(&client, &server.base_url(), &body())
            .await
            .status()
            .as_u16();
        assert!(status == 409 || status == 408, "{status}");
    }
    // A scripted step wins over the run's random faults.
    server.script([Step::pass(1)]);
    assert_eq!(
        post(&client, &server.base_url(), &body()).await.status(),
        200
    );
    let kinds: Vec<Option<String>> = server.requests().into_iter().map(|r| r.fault).collect();
    assert!(kinds[..6].iter().all(|k| k.is_some()));
    assert_eq!(kinds[6], None);
}
