//! The stand-in speaks the Chat Completions API as OpenAI does, over real HTTP: answers, errors,
//! authentication, models, token usage and limits, latency, rate limits and the request log.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{KEY, body, body_for, brief, client, day_of, header, post};
use domain::rules::check_day;
use secrecy::SecretString;
use serde_json::{Value, json};
use standin::{Config, Latency, RateLimits, spawn, tokens};

#[tokio::test]
async fn a_brief_gets_a_valid_day_in_openais_shape_with_its_usage() {
    let server = spawn(Config::default()).await.unwrap();
    let brief = brief();
    let response = post(&client(), &server.base_url(), &body_for(&brief)).await;

    assert_eq!(response.status(), 200);
    assert!(
        header(&response, "x-request-id")
            .unwrap()
            .starts_with("req_")
    );
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["object"], "chat.completion");
    assert!(answer["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(answer["model"], "gpt-4o-mini");
    assert!(answer["created"].as_i64().unwrap() > 1_700_000_000);
    assert!(answer["system_fingerprint"].is_string());
    let choice = &answer["choices"][0];
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["message"]["refusal"], Value::Null);
    assert_eq!(choice["finish_reason"], "stop");

    let day = day_of(&answer, &brief);
    assert_eq!(check_day(&brief, &day), vec![]);
    assert_eq!(day.meals.len(), 3);
    assert_eq!(day.snacks.len(), 2);

    let content = choice["message"]["content"].as_str().unwrap();
    let usage = &answer["usage"];
    let completion = usage["completion_tokens"].as_u64().unwrap();
    let prompt = usage["prompt_tokens"].as_u64().unwrap();
    assert_eq!(completion, tokens::count(content) as u64);
    assert_eq!(usage["total_tokens"].as_u64().unwrap(), prompt + completion);
    // The brief, the rules and the schema, plus a few tokens of framing per message (the
    // schema's key order differs a little once it went through a JSON value).
    let schema = serde_json::to_string(&schemars::schema_for!(domain::menu::Day)).unwrap();
    let texts = tokens::count(&brief.to_json())
        + tokens::count(domain::prompt::SYSTEM_PROMPT)
        + tokens::count(&schema);
    assert!(
        (texts..=texts + texts / 20).contains(&(prompt as u32)),
        "{prompt} vs {texts}"
    );
    assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 0);
    assert_eq!(usage["completion_tokens_details"]["reasoning_tokens"], 0);
}

#[tokio::test]
async fn the_content_has_exactly_the_fields_of_the_day_schema() {
    let server = spawn(Config::default()).await.unwrap();
    let answer: Value = post(&client(), &server.base_url(), &body())
        .await
        .json()
        .await
        .unwrap();
    let content: Value =
        serde_json::from_str(answer["choices"][0]["message"]["content"].as_str().unwrap()).unwrap();
    let schema = serde_json::to_value(schemars::schema_for!(domain::menu::Day)).unwrap();
    let keys = |v: &Value| {
        v.as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(keys(&content), keys(&schema["properties"]));
    let meal_schema = &schema["$defs"]["Meal"]["properties"];
    for dish in content["meals"]
        .as_array()
        .unwrap()
        .iter()
        .chain(content["snacks"].as_array().unwrap())
    {
        assert_eq!(keys(dish), keys(meal_schema));
    }
}

#[tokio::test]
async fn the_same_request_gets_the_same_day() {
    let server = spawn(Config::default()).await.unwrap();
    let client = client();
    let content = |v: Value| v["choices"][0]["message"]["content"].clone();
    let a: Value = post(&client, &server.base_url(), &body())
        .await
        .json()
        .await
        .unwrap();
    let b: Value = post(&client, &server.base_url(), &body())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(content(a), content(b));
}

#[tokio::test]
async fn benchmark_mode_reuses_the_answer_a_fresh_compose_gives_and_still_cuts_at_the_cap() {
    let fresh = spawn(Config::default()).await.unwrap();
    let reusing = spawn(Config {
        reuse_answers: true,
        ..Config::default()
    })
    .await
    .unwrap();
    let client = client();
    let answer = |v: &Value| {
        (
            v["choices"][0]["message"]["content"].clone(),
            v["usage"].clone(),
            v["choices"][0]["finish_reason"].clone(),
        )
    };
    let expected: Value = post(&client, &fresh.base_url(), &body())
        .await
        .json()
        .await
        .unwrap();
    for _ in 0..2 {
        let reused: Value = post(&client, &reusing.base_url(), &body())
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(answer(&reused), answer(&expected));
    }
    // Another brief is another answer, not the kept one.
    let mut other = brief();
    other.day = 2;
    let second: Value = post(&client, &reusing.base_url(), &body_for(&other))
        .await
        .json()
        .await
        .unwrap();
    assert_ne!(answer(&second).0, answer(&expected).0);
    // An answer kept for a body with a small completion cap is cut at the cap, the first time
    // and when reused.
    let mut capped = body();
    capped["max_completion_tokens"] = json!(50);
    for _ in 0..2 {
        let cut: Value = post(&client, &reusing.base_url(), &capped)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(cut["choices"][0]["finish_reason"], "length");
        assert_eq!(cut["usage"]["completion_tokens"], 50);
    }
}

#[tokio::test]
async fn a_missing_or_wrong_key_is_refused_with_invalid_api_key() {
    let config = Config {
        api_key: Some(SecretString::from(KEY)),
        ..Config::default()
    };
    let server = spawn(config).await.unwrap();
    let url = format!("{}/chat/completions", server.base_url());
    let client = client();

    for request in [
        client.post(&url).json(&body()),
        client.post(&url).bearer_auth("").json(&body()),
        client.post(&url).bearer_auth("sk-wrong").json(&body()),
    ] {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401);
        assert!(header(&response, "x-request-id").is_some());
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], "invalid_api_key");
        assert_eq!(error["error"]["type"], "invalid_request_error");
        assert!(
            !error["error"]["message"]
                .as_str()
                .unwrap()
                .contains("sk-wrong")
        );
    }
    let response = client
        .post(&url)
        .bearer_auth(KEY)
        .json(&body())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn models_are_listed_and_an_unknown_one_is_not_found() {
    let config = Config {
        models: vec!["menu-model".into()],
        ..Config::default()
    };
    let server = spawn(config).await.unwrap();
    let client = client();
    let list: Value = client
        .get(format!("{}/models", server.base_url()))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["object"], "list");
    assert_eq!(list["data"][0]["id"], "menu-model");
    assert_eq!(list["data"][0]["object"], "model");

    let response = post(&client, &server.base_url(), &body()).await;
    assert_eq!(response.status(), 404);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "model_not_found");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("gpt-4o-mini")
    );

    let mut ok = body();
    ok["model"] = json!("menu-model");
    assert_eq!(post(&client, &server.base_url(), &ok).await.status(), 200);
}

#[tokio::test]
async fn bad_requests_get_openais_400s() {
    let server = spawn(Config::default()).await.unwrap();
    let client = client();
    let url = format!("{}/chat/completions", server.base_url());

    let response = client
        .post(&url)
        .bearer_auth(KEY)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("could not parse the JSON")
    );

    let mut not_a_brief = body();
    not_a_brief["messages"][1]["content"] = json!("Plan me a week of dinners, please.");
    let response = post(&client, &server.base_url(), &not_a_brief).await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["type"], "invalid_request_error");
    assert_eq!(error["error"]["param"], "messages");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("day brief")
    );

    let mut zero = body();
    zero["max_completion_tokens"] = json!(0);
    let error: Value = post(&client, &server.base_url(), &zero)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(error["error"]["code"], "integer_below_min_value");

    let mut empty = body();
    empty["messages"] = json!([]);
    let error: Value = post(&client, &server.base_url(), &empty)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(error["error"]["code"], "empty_array");
}

#[tokio::test]
async fn a_small_completion_budget_cuts_the_answer_with_finish_reason_length() {
    let server = spawn(Config::default()).await.unwrap();
    for field in ["max_completion_tokens", "max_tokens"] {
        let mut small = body();
        small
            .as_object_mut()
            .unwrap()
            .remove("max_completion_tokens");
        small[field] = json!(50);
        let answer: Value = post(&client(), &server.base_url(), &small)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(answer["choices"][0]["finish_reason"], "length", "{field}");
        assert_eq!(answer["usage"]["completion_tokens"], 50);
        let content = answer["choices"][0]["message"]["content"].as_str().unwrap();
        assert!(content.starts_with("{\"meals\":["));
        assert!(serde_json::from_str::<Value>(content).is_err());
    }
}

#[tokio::test]
async fn latency_is_applied_before_answering() {
    let config = Config {
        latency: Latency::fixed(Duration::from_millis(300)),
        ..Config::default()
    };
    let server = spawn(config).await.unwrap();
    let client = client();
    let started = Instant::now();
    let response = post(&client, &server.base_url(), &body()).await;
    assert_eq!(response.status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn past_the_request_limit_429s_carry_the_headers_until_the_window_passes() {
    let window = Duration::from_millis(1500);
    let config = Config {
        limits: RateLimits {
            requests_per_minute: Some(2),
            tokens_per_minute: None,
            window,
        },
        ..Config::default()
    };
    let server = spawn(config).await.unwrap();
    let client = client();

    let first = post(&client, &server.base_url(), &body()).await;
    assert_eq!(first.status(), 200);
    assert_eq!(header(&first, "x-ratelimit-limit-requests"), Some("2"));
    assert_eq!(header(&first, "x-ratelimit-remaining-requests"), Some("1"));
    let second = post(&client, &server.base_url(), &body()).await;
    assert_eq!(header(&second, "x-ratelimit-remaining-requests"), Some("0"));

    let limited = post(&client, &server.base_url(), &body()).await;
    let limited_at = Instant::now();
    assert_eq!(limited.status(), 429);
    assert_eq!(
        header(&limited, "x-ratelimit-remaining-requests"),
        Some("0")
    );
    let reset = header(&limited, "x-ratelimit-reset-requests")
        .unwrap()
        .to_string();
    assert!(reset.ends_with("ms") || reset.ends_with('s'), "{reset}");
    let error: Value = limited.json().await.unwrap();
    assert_eq!(error["error"]["code"], "rate_limit_exceeded");
    assert_eq!(error["error"]["type"], "requests");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("Limit 2, Used 2, Requested 1"),
        "{message}"
    );
    assert!(message.contains("Please try again in"), "{message}");

    // Both admitted calls arrived before `limited` was answered: one window after that, the
    // budget is free again however slowly the calls above were served.
    tokio::time::sleep(window.saturating_sub(limited_at.elapsed()) + Duration::from_millis(100))
        .await;
    let recovered = post(&client, &server.base_url(), &body()).await;
    assert_eq!(recovered.status(), 200);
    let statuses: Vec<Option<u16>> = server.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [Some(200), Some(200), Some(429), Some(200)]);
}

#[tokio::test]
async fn tokens_are_reserved_by_prompt_and_completion_budget() {
    let config = Config {
        limits: RateLimits {
            requests_per_minute: None,
            tokens_per_minute: Some(12_000),
            window: Duration::from_secs(60),
        },
        ..Config::default()
    };
    let server = spawn(config).await.unwrap();
    let client = client();

    // Each call reserves its prompt plus 6000 completion tokens: the second does not fit.
    let first = post(&client, &server.base_url(), &body()).await;
    assert_eq!(first.status(), 200);
    let remaining: u32 = header(&first, "x-ratelimit-remaining-tokens")
        .unwrap()
        .parse()
        .unwrap();
    let prompt = server.requests()[0].prompt_tokens.unwrap();
    assert_eq!(remaining, 12_000 - prompt - 6000);
    let second = post(&client, &server.base_url(), &body()).await;
    assert_eq!(second.status(), 429);
    let error: Value = second.json().await.unwrap();
    assert_eq!(error["error"]["type"], "tokens");

    let mut huge = body();
    huge["max_completion_tokens"] = json!(20_000);
    let too_large = post(&client, &server.base_url(), &huge).await;
    assert_eq!(too_large.status(), 429);
    let error: Value = too_large.json().await.unwrap();
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Request too large")
    );
}

#[tokio::test]
async fn the_request_log_records_each_call_and_its_timing() {
    let server = spawn(Config::default()).await.unwrap();
    let client = client();
    let mut second_brief = brief();
    second_brief.problems = vec!["macros off".into(), "title repeated".into()];
    post(&client, &server.base_url(), &body()).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    post(&client, &server.base_url(), &body_for(&second_brief)).await;

    let log = server.requests();
    assert_eq!(log.len(), 2);
    assert_eq!((log[0].seq, log[1].seq), (1, 2));
    assert!(log[1].arrived_ms - log[0].arrived_ms >= 200.0);
    assert!(log[1].arrived_unix_ms >= log[0].arrived_unix_ms + 200);
    assert!(log.iter().all(|e| e.answered_ms.unwrap() >= e.arrived_ms));
    assert_eq!(log[0].model.as_deref(), Some("gpt-4o-mini"));
    assert_eq!(log[0].day, Some(1));
    assert_eq!((log[0].problems, log[1].problems), (Some(0), Some(2)));
    assert_eq!(log[0].max_completion_tokens, Some(6000));
    assert!(log[0].prompt_tokens.unwrap() > 100);
    assert_eq!(log[0].status, Some(200));
    assert_eq!(log[0].finish_reason.as_deref(), Some("stop"));
    assert_eq!(log[0].fault, None);

    let url = format!("http://{}/_standin/requests", server.addr());
    let listed: Value = client.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed["requests"].as_array().unwrap().len(), 2);
    assert_eq!(listed["requests"][1]["problems"], 2);
    assert_eq!(client.delete(&url).send().await.unwrap().status(), 204);
    assert!(server.requests().is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn the_request_log_keeps_the_clients_own_id_for_each_call() {
    let server = spawn(Config::default()).await.unwrap();
    let client = client();
    let named = client
        .post(format!("{}/chat/completions", server.base_url()))
        .bearer_auth(KEY)
        .header("X-Client-Request-Id", "job-abc.d1")
        .json(&body())
        .send()
        .await
        .unwrap();
    assert_eq!(named.status(), 200);
    post(&client, &server.base_url(), &body()).await;

    let log = server.requests();
    assert_eq!(log[0].client_request_id.as_deref(), Some("job-abc.d1"));
    assert_eq!(log[1].client_request_id, None);
    let url = format!("http://{}/_standin/requests", server.addr());
    let listed: Value = client.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed["requests"][0]["client_request_id"], "job-abc.d1");
    assert_eq!(listed["requests"][1]["client_request_id"], Value::Null);
}

#[tokio::test]
async fn unknown_routes_get_openais_404() {
    let server = spawn(Config::default()).await.unwrap();
    let response = client()
        .get(format!("{}/engines", server.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["message"], "Invalid URL (GET /v1/engines)");
}
