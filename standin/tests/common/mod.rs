//! What the HTTP tests share: a client, a realistic request, and small readers. Every test
//! binary that declares this module uses all of it.

use std::time::Duration;

use chrono::NaiveDate;
use domain::menu::Day;
use domain::prompt::{DayBrief, SYSTEM_PROMPT};
use domain::request::{GenerationRequest, MenuOptions};
use reqwest::{Client, Response};
use serde_json::{Value, json};

/// The API key the tests' calls carry.
pub const KEY: &str = "sk-test-standin";

/// A plain-HTTP client whose calls give up after 30 s; reqwest's rustls build needs a crypto
/// provider even then.
pub fn client() -> Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// The brief for day 1 of a default request with two snacks, as the worker writes it.
pub fn brief() -> DayBrief {
    let options = MenuOptions {
        snacks_per_day: Some(2),
        servings: Some(2),
        ..MenuOptions::default()
    };
    let start = NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
    let request = GenerationRequest::from_options(&options, start).unwrap();
    DayBrief::new(&request, 1, &[], vec![])
}

/// A chat-completion body as the worker sends it: system rules, the brief, the Day schema.
pub fn body_for(brief: &DayBrief) -> Value {
    json!({
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": brief.to_json()},
        ],
        "response_format": {
            "type": "json_schema",
            "json_schema": {
                "name": "menu_day",
                "strict": true,
                "schema": schemars::schema_for!(Day),
            }
        },
        "max_completion_tokens": 6000,
        "temperature": 0.7,
    })
}

pub fn body() -> Value {
    body_for(&brief())
}

pub async fn post(client: &Client, base_url: &str, body: &Value) -> Response {
    client
        .post(format!("{base_url}/chat/completions"))
        .bearer_auth(KEY)
        .json(body)
        .send()
        .await
        .unwrap()
}

pub fn header<'a>(response: &'a Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

/// The day in a successful answer, finished as the worker finishes it.
pub fn day_of(answer: &Value, brief: &DayBrief) -> Day {
    let content = answer["choices"][0]["message"]["content"].as_str().unwrap();
    let mut day: Day = serde_json::from_str(content).unwrap();
    day.finish(brief.day, None, brief.servings);
    day
}
