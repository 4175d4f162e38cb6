//! The stand-in's Batch API over real HTTP, as the worker's batch lane uses it: upload a JSONL
//! file, create a batch, poll it to its end and read the output and error files; whole-menu
//! answers; the behaviour knobs (failing requests, partial expiry, broken days, limits);
//! cancel; the refusals; the key; listing by metadata; and two stand-ins as two providers.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use common::{KEY, body, body_for, brief, client, day_of, header, post};
use domain::menu::Day;
use domain::prompt::{MENU_SYSTEM_PROMPT, MenuBrief};
use domain::request::{GenerationRequest, MenuOptions};
use domain::rules::check_day;
use reqwest::Client;
use reqwest::multipart::{Form, Part};
use secrecy::SecretString;
use serde_json::{Value, json};
use standin::batches::wire::{BatchList, BatchObject, BatchStatus, FileObject};
use standin::{BatchBehaviour, Config, RequestOutcome, StandIn, spawn};

/// How long a test waits for a batch to end: far beyond any delay the tests set.
const PATIENCE: Duration = Duration::from_secs(120);

/// A stand-in that wants [`KEY`] and ends batches after `delay_ms`.
async fn standin(delay_ms: u64) -> StandIn {
    spawn(Config {
        api_key: Some(SecretString::from(KEY)),
        batches: BatchBehaviour {
            completion_delay_ms: delay_ms,
            ..BatchBehaviour::default()
        },
        ..Config::default()
    })
    .await
    .unwrap()
}

/// The whole-menu brief of a `days`-day menu with one snack a day, for two.
fn menu(days: i64) -> MenuBrief {
    let options = MenuOptions {
        days: Some(days),
        snacks_per_day: Some(1),
        servings: Some(2),
        ..MenuOptions::default()
    };
    let start = NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
    MenuBrief::new(&GenerationRequest::from_options(&options, start).unwrap())
}

/// A whole-menu request body as the batch lane sends it.
fn menu_body(menu: &MenuBrief, seed: i64) -> Value {
    json!({
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": MENU_SYSTEM_PROMPT},
            {"role": "user", "content": menu.to_json()},
        ],
        "response_format": {"type": "json_object"},
        "max_completion_tokens": 30000,
        "seed": seed,
    })
}

fn line(custom_id: &str, body: &Value) -> String {
    json!({
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": body,
    })
    .to_string()
}

/// A file of `n` three-day menu requests, `job-0` … `job-{n-1}`.
fn menus_file(n: usize) -> String {
    let menu = menu(3);
    (0..n)
        .map(|i| line(&format!("job-{i}"), &menu_body(&menu, i as i64)) + "\n")
        .collect()
}

async fn upload_as(client: &Client, server: &StandIn, key: &str, jsonl: String) -> Value {
    let form = Form::new().text("purpose", "batch").part(
        "file",
        Part::bytes(jsonl.into_bytes()).file_name("menus.jsonl"),
    );
    let response = client
        .post(format!("{}/files", server.base_url()))
        .bearer_auth(key)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let mut answer: Value = response.json().await.unwrap();
    answer["http_status"] = json!(status);
    answer
}

/// Uploads `jsonl` and returns its File object.
async fn upload(client: &Client, server: &StandIn, jsonl: String) -> FileObject {
    let answer = upload_as(client, server, KEY, jsonl).await;
    assert_eq!(answer["http_status"], 200, "{answer}");
    serde_json::from_value(answer).unwrap()
}

async fn send(client: &Client, server: &StandIn, method: &str, path: &str, body: Value) -> Value {
    let url = format!("{}{path}", server.base_url());
    let request = match method {
        "GET" => client.get(url),
        _ => client.post(url).json(&body),
    };
    let response = request.bearer_auth(KEY).send().await.unwrap();
    let status = response.status().as_u16();
    let mut answer: Value = response.json().await.unwrap();
    answer["http_status"] = json!(status);
    answer
}

/// Creates a batch of `file_id` and returns its Batch object.
async fn create(client: &Client, server: &StandIn, file_id: &str, metadata: Value) -> BatchObject {
    let answer = send(
        client,
        server,
        "POST",
        "/batches",
        json!({
            "input_file_id": file_id,
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
            "metadata": metadata,
        }),
    )
    .await;
    assert_eq!(answer["http_status"], 200, "{answer}");
    serde_json::from_value(answer).unwrap()
}

async fn retrieve(client: &Client, server: &StandIn, id: &str) -> BatchObject {
    let answer = send(
        client,
        server,
        "GET",
        &format!("/batches/{id}"),
        json!(null),
    )
    .await;
    assert_eq!(answer["http_status"], 200, "{answer}");
    serde_json::from_value(answer).unwrap()
}

/// Polls the batch until it ends.
async fn ended(client: &Client, server: &StandIn, id: &str) -> BatchObject {
    let start = Instant::now();
    loop {
        let batch = retrieve(client, server, id).await;
        if batch.status.is_final() {
            return batch;
        }
        assert!(start.elapsed() < PATIENCE, "still {:?}", batch.status);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The lines of a file, parsed.
async fn lines(client: &Client, server: &StandIn, file_id: &str) -> Vec<Value> {
    let response = client
        .get(format!("{}/files/{file_id}/content", server.base_url()))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The days of a whole-menu completion, each finished as the worker finishes it.
fn days_of(completion: &Value, menu: &MenuBrief) -> Vec<Day> {
    let content = completion["choices"][0]["message"]["content"]
        .as_str()
        .unwrap();
    let answer: Value = serde_json::from_str(content).unwrap();
    let object = answer.as_object().unwrap();
    assert_eq!(object.keys().collect::<Vec<_>>(), vec!["days"]);
    answer["days"]
        .as_array()
        .unwrap()
        .iter()
        .zip(1..)
        .map(|(day, k)| {
            let mut day: Day = serde_json::from_value(day.clone()).unwrap();
            day.finish(k, None, menu.servings);
            day
        })
        .collect()
}

/// How many days of a menu break a rule, each checked against its brief given the days
/// before it, as the batch lane checks them.
fn broken_days(days: &[Day], menu: &MenuBrief) -> usize {
    days.iter()
        .enumerate()
        .filter(|(i, day)| {
            let brief = menu.day_brief(day.day_number, &days[..*i]);
            !check_day(&brief, day).is_empty()
        })
        .count()
}

#[tokio::test]
async fn a_batch_of_menus_completes_after_its_delay_with_a_valid_menu_per_request() {
    let server = standin(300).await;
    let client = client();
    let menu = menu(3);
    let mut jsonl = menus_file(3);
    jsonl.push_str(&(line("day-1", &body()) + "\n"));
    let file = upload(&client, &server, jsonl.clone()).await;
    assert!(file.id.starts_with("file-"));
    assert_eq!(
        (file.object.as_str(), file.purpose.as_str(), file.bytes),
        ("file", "batch", jsonl.len() as u64)
    );
    assert_eq!(file.filename, "menus.jsonl");

    let start = Instant::now();
    let created = create(&client, &server, &file.id, json!({"menus_batch": "b-1"})).await;
    assert!(created.id.starts_with("batch_"));
    assert_eq!(created.object, "batch");
    assert_eq!(created.status, BatchStatus::Validating);
    assert_eq!(created.request_counts.total, 4);
    assert_eq!(created.output_file_id, None);
    assert_eq!(created.expires_at, Some(created.created_at + 24 * 60 * 60));

    let batch = ended(&client, &server, &created.id).await;
    assert!(start.elapsed() >= Duration::from_millis(300));
    assert_eq!(batch.status, BatchStatus::Completed);
    assert_eq!(
        (batch.request_counts.completed, batch.request_counts.failed),
        (4, 0)
    );
    assert_eq!(batch.error_file_id, None);
    let stamps = [
        batch.in_progress_at,
        batch.finalizing_at,
        batch.completed_at,
    ];
    assert!(stamps.iter().all(Option::is_some), "{batch:?}");
    assert!(stamps.windows(2).all(|w| w[0] <= w[1]));

    let output = lines(&client, &server, batch.output_file_id.as_deref().unwrap()).await;
    let ids: Vec<&str> = output
        .iter()
        .map(|l| l["custom_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["job-0", "job-1", "job-2", "day-1"]);
    for result in &output[..3] {
        assert!(result["id"].as_str().unwrap().starts_with("batch_req_"));
        assert_eq!(result["error"], Value::Null);
        assert_eq!(result["response"]["status_code"], 200);
        assert!(
            result["response"]["request_id"]
                .as_str()
                .unwrap()
                .starts_with("req_")
        );
        let completion = &result["response"]["body"];
        assert_eq!(completion["object"], "chat.completion");
        assert!(completion["usage"]["prompt_tokens"].as_u64().unwrap() > 100);
        let days = days_of(completion, &menu);
        assert_eq!(days.len(), 3);
        assert_eq!(broken_days(&days, &menu), 0);
    }
    let day = day_of(&output[3]["response"]["body"], &brief());
    assert_eq!(check_day(&brief(), &day), vec![]);

    let journal = server.batches();
    assert_eq!(journal.len(), 1);
    assert_eq!(journal[0].id, batch.id);
    assert_eq!(journal[0].input_file_id, file.id);
    assert_eq!(journal[0].status, BatchStatus::Completed);
    assert_eq!(journal[0].custom_ids(), ids);
    assert_eq!(
        journal[0].metadata,
        Some(BTreeMap::from([("menus_batch".into(), "b-1".into())]))
    );
    let menu_days: Vec<Option<u8>> = journal[0].requests.iter().map(|r| r.menu_days).collect();
    assert_eq!(menu_days, vec![Some(3), Some(3), Some(3), None]);
    assert!(
        journal[0]
            .requests
            .iter()
            .all(|r| { r.outcome == RequestOutcome::Completed && r.status_code == Some(200) })
    );
    assert!(
        server.requests().is_empty(),
        "a batch's requests are not calls to /v1/chat/completions"
    );
}

#[tokio::test]
async fn a_whole_menu_brief_gets_the_whole_menu_from_the_chat_endpoint_too() {
    let server = standin(0).await;
    let menu = menu(4);
    let response = post(&client(), &server.base_url(), &menu_body(&menu, 7)).await;
    assert_eq!(response.status(), 200);
    assert!(header(&response, "x-request-id").is_some());
    let completion: Value = response.json().await.unwrap();
    let days = days_of(&completion, &menu);
    assert_eq!(days.len(), 4);
    assert_eq!(broken_days(&days, &menu), 0);
    let titles: std::collections::HashSet<&str> = days
        .iter()
        .flat_map(|d| d.dishes().map(|m| m.title.as_str()))
        .collect();
    assert_eq!(
        titles.len(),
        days.iter().map(|d| d.dishes().count()).sum::<usize>()
    );
    let logged = server.requests();
    assert_eq!(logged.len(), 1);
    assert_eq!((logged[0].menu_days, logged[0].day), (Some(4), None));
}

#[tokio::test]
async fn every_nth_request_fails_into_the_error_file_and_a_bad_request_fails_there_too() {
    let server = spawn(Config {
        api_key: Some(SecretString::from(KEY)),
        models: vec!["gpt-4o-mini".into()],
        batches: BatchBehaviour {
            completion_delay_ms: 100,
            error_every: Some(2),
            ..BatchBehaviour::default()
        },
        ..Config::default()
    })
    .await
    .unwrap();
    let client = client();
    let mut other_model = body_for(&brief());
    other_model["model"] = json!("gpt-9");
    let jsonl = menus_file(4) + &line("other-model", &other_model);
    let file = upload(&client, &server, jsonl).await;
    let batch = create(&client, &server, &file.id, json!(null)).await;
    let batch = ended(&client, &server, &batch.id).await;

    assert_eq!(batch.status, BatchStatus::Completed);
    assert_eq!(batch.metadata, None);
    assert_eq!(
        (batch.request_counts.completed, batch.request_counts.failed),
        (2, 3)
    );
    let output = lines(&client, &server, batch.output_file_id.as_deref().unwrap()).await;
    let ok: Vec<&str> = output
        .iter()
        .map(|l| l["custom_id"].as_str().unwrap())
        .collect();
    assert_eq!(ok, vec!["job-0", "job-2"]);
    let errors = lines(&client, &server, batch.error_file_id.as_deref().unwrap()).await;
    let failed: Vec<(&str, u64)> = errors
        .iter()
        .map(|l| {
            (
                l["custom_id"].as_str().unwrap(),
                l["response"]["status_code"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        failed,
        vec![("job-1", 500), ("job-3", 500), ("other-model", 404)]
    );
    assert_eq!(
        errors[0]["response"]["body"]["error"]["type"],
        "server_error"
    );
    assert_eq!(
        errors[2]["response"]["body"]["error"]["code"],
        "model_not_found"
    );
    assert!(errors.iter().all(|l| l["error"].is_null()));
    let outcomes: Vec<RequestOutcome> = server.batches()[0]
        .requests
        .iter()
        .map(|r| r.outcome)
        .collect();
    use RequestOutcome::{Completed, Failed};
    assert_eq!(outcomes, vec![Completed, Failed, Completed, Failed, Failed]);
}

#[tokio::test]
async fn a_batch_expiring_half_done_keeps_the_first_half_and_expires_the_rest() {
    let server = standin(200).await;
    server.set_batch_behaviour(BatchBehaviour {
        expire_after_fraction: Some(0.5),
        ..server.batch_behaviour()
    });
    let client = client();
    let file = upload(&client, &server, menus_file(3)).await;
    let batch = create(&client, &server, &file.id, json!({})).await;
    let batch = ended(&client, &server, &batch.id).await;

    assert_eq!(batch.status, BatchStatus::Expired);
    assert!(batch.expired_at.is_some() && batch.completed_at.is_none());
    assert_eq!(
        (batch.request_counts.completed, batch.request_counts.failed),
        (2, 0)
    );
    let output = lines(&client, &server, batch.output_file_id.as_deref().unwrap()).await;
    let done: Vec<&str> = output
        .iter()
        .map(|l| l["custom_id"].as_str().unwrap())
        .collect();
    assert_eq!(done, vec!["job-0", "job-1"]);
    let errors = lines(&client, &server, batch.error_file_id.as_deref().unwrap()).await;
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0]["custom_id"], "job-2");
    assert_eq!(errors[0]["response"], Value::Null);
    assert_eq!(errors[0]["error"]["code"], "batch_expired");
    assert_eq!(
        errors[0]["error"]["message"],
        "This request could not be executed before the completion window expired."
    );
    let journal = &server.batches()[0];
    assert_eq!(journal.status, BatchStatus::Expired);
    assert_eq!(journal.requests[2].outcome, RequestOutcome::Expired);
}

#[tokio::test]
async fn every_nth_whole_menu_has_one_broken_day() {
    let server = standin(50).await;
    let changed = send_admin(
        &server,
        "/_standin/batches/behaviour",
        json!({"broken_day_every": 2}),
    )
    .await;
    assert_eq!(changed["broken_day_every"], 2);
    assert_eq!(changed["completion_delay_ms"], 50, "other knobs are kept");
    let client = client();
    let menu = menu(3);
    let file = upload(&client, &server, menus_file(4)).await;
    let batch = create(&client, &server, &file.id, json!(null)).await;
    let batch = ended(&client, &server, &batch.id).await;
    let output = lines(&client, &server, batch.output_file_id.as_deref().unwrap()).await;
    let broken: Vec<usize> = output
        .iter()
        .map(|l| broken_days(&days_of(&l["response"]["body"], &menu), &menu))
        .collect();
    assert_eq!(broken, vec![0, 1, 0, 1]);
}

/// POSTs `body` to an admin route of `server` (no key needed) and returns the JSON answer.
async fn send_admin(server: &StandIn, path: &str, body: Value) -> Value {
    let response = client()
        .post(format!("http://{}{path}", server.addr()))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test]
async fn a_cancelled_batch_keeps_the_requests_done_before_the_cancel() {
    // Ten requests shown one by one over eight seconds.
    let server = standin(10_000).await;
    let client = client();
    let file = upload(&client, &server, menus_file(10)).await;
    let batch = create(&client, &server, &file.id, json!(null)).await;
    let start = Instant::now();
    loop {
        let now = retrieve(&client, &server, &batch.id).await;
        if now.request_counts.completed >= 1 {
            assert_eq!(now.status, BatchStatus::InProgress);
            break;
        }
        assert!(start.elapsed() < PATIENCE);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cancelling = send(
        &client,
        &server,
        "POST",
        &format!("/batches/{}/cancel", batch.id),
        json!(null),
    )
    .await;
    assert_eq!(cancelling["status"], "cancelling", "{cancelling}");
    assert!(cancelling["cancelling_at"].is_i64());
    let cancelled = ended(&client, &server, &batch.id).await;

    assert_eq!(cancelled.status, BatchStatus::Cancelled);
    assert!(cancelled.cancelled_at.is_some() && cancelled.completed_at.is_none());
    let done = cancelled.request_counts.completed;
    assert!((1..10).contains(&done), "{done} of 10 done");
    let output = lines(
        &client,
        &server,
        cancelled.output_file_id.as_deref().unwrap(),
    )
    .await;
    assert_eq!(output.len(), done as usize);
    let journal = &server.batches()[0];
    let outcomes = |outcome| {
        journal
            .requests
            .iter()
            .filter(|r| r.outcome == outcome)
            .count()
    };
    assert_eq!(outcomes(RequestOutcome::Completed), done as usize);
    assert_eq!(outcomes(RequestOutcome::Cancelled), 10 - done as usize);

    // A cancelled batch stays so; a completed one cannot be cancelled.
    let again = send(
        &client,
        &server,
        "POST",
        &format!("/batches/{}/cancel", batch.id),
        json!(null),
    )
    .await;
    assert_eq!(
        (again["http_status"].as_u64(), again["status"].as_str()),
        (Some(200), Some("cancelled"))
    );
    server.set_batch_behaviour(BatchBehaviour {
        completion_delay_ms: 0,
        ..BatchBehaviour::default()
    });
    let quick = create(&client, &server, &file.id, json!(null)).await;
    ended(&client, &server, &quick.id).await;
    let refused = send(
        &client,
        &server,
        "POST",
        &format!("/batches/{}/cancel", quick.id),
        json!(null),
    )
    .await;
    assert_eq!(refused["http_status"], 400, "{refused}");
}

#[tokio::test]
async fn files_that_break_the_input_rules_are_refused_with_the_line_at_fault() {
    let server = standin(0).await;
    let client = client();
    let good = line("a", &body());
    let refused = |answer: Value| {
        assert_eq!(answer["http_status"], 400, "{answer}");
        assert_eq!(answer["error"]["type"], "invalid_request_error");
        answer["error"]["code"].as_str().unwrap().to_string()
    };
    let cases = [
        ("{not json}\n".to_string(), "invalid_json_line"),
        (
            line("a", &body()).replace("custom_id", "customer"),
            "missing_required_parameter",
        ),
        (format!("{good}\n{good}"), "duplicate_custom_id"),
        (
            good.replace("/v1/chat/completions", "/v1/embeddings"),
            "invalid_url",
        ),
    ];
    for (jsonl, code) in cases {
        let answer = upload_as(&client, &server, KEY, jsonl).await;
        assert_eq!(refused(answer), code);
    }

    let wrong_purpose = client
        .post(format!("{}/files", server.base_url()))
        .bearer_auth(KEY)
        .multipart(
            Form::new()
                .text("purpose", "fine-tune")
                .part("file", Part::bytes(good.clone().into_bytes())),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_purpose.status(), 400);

    server.set_batch_behaviour(BatchBehaviour {
        max_requests: 2,
        ..BatchBehaviour::default()
    });
    let three = format!("{}\n{}\n{}", good, line("b", &body()), line("c", &body()));
    assert_eq!(
        refused(upload_as(&client, &server, KEY, three).await),
        "too_many_requests"
    );
    server.set_batch_behaviour(BatchBehaviour {
        max_file_bytes: 1_000,
        ..BatchBehaviour::default()
    });
    let big = menus_file(1);
    assert!(big.len() > 1_000);
    assert_eq!(
        refused(upload_as(&client, &server, KEY, big).await),
        "file_too_large"
    );
    server.set_batch_behaviour(BatchBehaviour::default());

    // A batch's own parameters.
    let file = upload(&client, &server, good).await;
    for (field, value) in [("endpoint", "/v1/embeddings"), ("completion_window", "1h")] {
        let mut request = json!({
            "input_file_id": file.id,
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
        });
        request[field] = json!(value);
        let answer = send(&client, &server, "POST", "/batches", request).await;
        assert_eq!(refused(answer), "invalid_value");
    }
    let unknown = send(&client, &server, "GET", "/batches/batch_nope", json!(null)).await;
    assert_eq!(unknown["http_status"], 404);
    let no_file = client
        .get(format!("{}/files/file-nope/content", server.base_url()))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(no_file.status(), 404);
    assert!(server.batches().is_empty());
}

#[tokio::test]
async fn a_batch_of_an_unknown_file_fails_with_its_reason() {
    let server = standin(0).await;
    let client = client();
    let batch = create(&client, &server, "file-missing", json!(null)).await;
    let batch = ended(&client, &server, &batch.id).await;
    assert_eq!(batch.status, BatchStatus::Failed);
    assert!(batch.failed_at.is_some());
    let errors = batch.errors.unwrap();
    assert_eq!(errors.data[0].code, "invalid_file");
    assert!(errors.data[0].message.contains("file-missing"));
}

#[tokio::test]
async fn a_wrong_key_gets_401_on_every_batch_route() {
    let server = standin(0).await;
    let client = client();
    let answer = upload_as(&client, &server, "sk-wrong", menus_file(1)).await;
    assert_eq!(answer["http_status"], 401);
    assert_eq!(answer["error"]["code"], "invalid_api_key");
    for (method, path) in [
        ("POST", "/batches"),
        ("GET", "/batches"),
        ("GET", "/batches/batch_x"),
        ("POST", "/batches/batch_x/cancel"),
        ("GET", "/files/file-x/content"),
    ] {
        let url = format!("{}{path}", server.base_url());
        let request = match method {
            "GET" => client.get(url),
            _ => client.post(url).json(&json!({})),
        };
        let response = request.bearer_auth("sk-wrong").send().await.unwrap();
        assert_eq!(response.status(), 401, "{method} {path}");
    }
    assert!(server.batches().is_empty());
}

#[tokio::test]
async fn the_list_pages_newest_first_and_finds_a_batch_by_its_metadata() {
    let server = standin(0).await;
    let client = client();
    let file = upload(&client, &server, menus_file(1)).await;
    let mut ids = Vec::new();
    for n in 0..3 {
        let metadata = json!({"menus_batch": format!("ours-{n}")});
        ids.push(create(&client, &server, &file.id, metadata).await.id);
    }
    let page = |answer: Value| -> BatchList {
        assert_eq!(answer["http_status"], 200, "{answer}");
        serde_json::from_value(answer).unwrap()
    };
    let first = page(send(&client, &server, "GET", "/batches?limit=2", json!(null)).await);
    assert_eq!(first.object, "list");
    let newest: Vec<&str> = first.data.iter().map(|b| b.id.as_str()).collect();
    assert_eq!(newest, vec![ids[2].as_str(), ids[1].as_str()]);
    assert!(first.has_more);
    assert_eq!(first.first_id.as_deref(), Some(ids[2].as_str()));
    let last = first.last_id.unwrap();
    let rest = page(
        send(
            &client,
            &server,
            "GET",
            &format!("/batches?limit=2&after={last}"),
            json!(null),
        )
        .await,
    );
    assert_eq!(rest.data.len(), 1);
    assert_eq!(rest.data[0].id, ids[0]);
    assert!(!rest.has_more);

    let all = page(send(&client, &server, "GET", "/batches", json!(null)).await);
    let found: Vec<&str> = all
        .data
        .iter()
        .filter(|b| {
            b.metadata
                .as_ref()
                .is_some_and(|m| m.get("menus_batch").map(String::as_str) == Some("ours-1"))
        })
        .map(|b| b.id.as_str())
        .collect();
    assert_eq!(found, vec![ids[1].as_str()]);
    let bad = send(&client, &server, "GET", "/batches?limit=0", json!(null)).await;
    assert_eq!(bad["http_status"], 400);
}

#[tokio::test]
async fn two_stand_ins_are_two_independent_providers() {
    let one = standin(0).await;
    let two = standin(5_000).await;
    two.set_batch_behaviour(BatchBehaviour {
        error_every: Some(1),
        ..two.batch_behaviour()
    });
    let client = client();
    let file = upload(&client, &one, menus_file(2)).await;
    let batch = create(&client, &one, &file.id, json!(null)).await;

    // The other provider knows neither the file nor the batch, and kept its own knobs.
    let elsewhere = create(&client, &two, &file.id, json!(null)).await;
    let unknown = send(
        &client,
        &two,
        "GET",
        &format!("/batches/{}", batch.id),
        json!(null),
    )
    .await;
    assert_eq!(unknown["http_status"], 404);
    assert_eq!(one.batch_behaviour().error_every, None);
    assert_eq!(two.batch_behaviour().completion_delay_ms, 5_000);

    let done = ended(&client, &one, &batch.id).await;
    assert_eq!(done.status, BatchStatus::Completed);
    assert_eq!(done.request_counts.completed, 2);
    let failed = ended(&client, &two, &elsewhere.id).await;
    assert_eq!(failed.status, BatchStatus::Failed);
    assert_eq!(one.batches().len(), 1);
    assert_eq!(two.batches().len(), 1);
    assert_ne!(one.batches()[0].id, two.batches()[0].id);

    // The journal over HTTP says the same.
    let journal: Value = client
        .get(format!("http://{}/_standin/batches", one.addr()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(journal["batches"][0]["id"], done.id.as_str());
    assert_eq!(journal["batches"][0]["requests"][1]["custom_id"], "job-1");
}
