//! The Chat Completions client of one endpoint: builds the request for one day, sends it with a
//! connect and a per-call timeout, and turns the answer into a `Day` or a classified
//! `LlmError`. It also writes the whole-menu request a provider batch carries and reads its
//! answer (the batch lane), so both lanes ask and read alike.

use std::time::Duration;

use secrecy::ExposeSecret;

use super::endpoint::EndpointSettings;
use super::error::{ErrorClass, LlmError, TRUNCATED};
use super::schema::{day_schema, menu_schema};
use super::wire::{ChatRequest, ChatResponse, JsonSchemaFormat, Message, ResponseFormat};
use crate::config::{JsonMode, LlmConfig, TokenParam};
use crate::job::Usage;
use domain::menu::{Day, MenuPlan};
use domain::prompt::{DayBrief, MENU_SYSTEM_PROMPT, MenuBrief, SYSTEM_PROMPT, schema_hint};
use domain::tokens;

/// A day's request, ready to send: the brief as the user message and what it will cost.
#[derive(Debug, Clone)]
pub struct Prompt {
    pub day: u8,
    pub user: String,
    /// Prompt tokens the provider will bill for it.
    pub tokens: u32,
    /// The completion cap its dishes need (see [`tokens::completion_cap`]).
    pub completion_cap: u32,
}

/// Which call this is, as the provider is told in `X-Client-Request-Id` (OpenAI logs it with
/// the request for tracing; it must be ASCII and at most 512 characters, per OpenAI's API
/// reference, "Debugging requests"). It names the job, the attempt's fence, the day, the ask
/// of that day and the retry of that ask: ids and numbers only, never personal data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallId {
    pub job: uuid::Uuid,
    pub fence: i64,
    pub day: u8,
    /// 1 for the first ask of the day; more when answers broke the rules.
    pub ask: u32,
    /// 0 for the first try of the ask; more after transient errors and rate limits.
    pub retry: u32,
}

impl std::fmt::Display for CallId {
    /// `job-{uuid}.att{fence}.day{d}.ask{k}.try{r}`: letters, digits, `-` and `.` only, which
    /// every gateway's id syntax accepts.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "job-{}.att{}.day{}.ask{}.try{}",
            self.job, self.fence, self.day, self.ask, self.retry
        )
    }
}

impl std::str::FromStr for CallId {
    type Err = ();

    /// Reads an id written by `Display` (the chaos suite reads them back from the stand-in).
    fn from_str(text: &str) -> Result<CallId, ()> {
        let mut parts = text.strip_prefix("job-").ok_or(())?.split('.');
        let mut next = |prefix: &str| {
            parts
                .next()
                .and_then(|p| p.strip_prefix(prefix).map(str::to_string))
                .ok_or(())
        };
        let job = next("")?.parse().map_err(drop)?;
        let fence = next("att")?.parse().map_err(drop)?;
        let day = next("day")?.parse().map_err(drop)?;
        let ask = next("ask")?.parse().map_err(drop)?;
        let retry = next("try")?.parse().map_err(drop)?;
        Ok(CallId {
            job,
            fence,
            day,
            ask,
            retry,
        })
    }
}

/// One call's outcome and what it cost (a failed call may still have used tokens).
#[derive(Debug)]
pub struct Call {
    pub usage: Usage,
    pub result: Result<Day, LlmError>,
}

#[derive(Clone)]
pub struct LlmClient {
    http: reqwest::Client,
    /// The endpoint's name (`default` for the single-endpoint settings), a label of its metrics.
    endpoint: String,
    config: LlmConfig,
    chat_url: String,
    system_prompt: String,
    /// The whole-menu request's system prompt (with the menu's schema in JSON mode).
    menu_system_prompt: String,
    /// Prompt tokens of what every call sends alike: the system message, the schema (with
    /// Structured Outputs) and the reply priming; a call adds its user message's.
    fixed_prompt_tokens: u32,
}

impl LlmClient {
    /// The client of one endpoint of the list.
    pub fn for_endpoint(endpoint: &EndpointSettings) -> Result<Self, reqwest::Error> {
        let mut client = LlmClient::new(endpoint.llm.clone())?;
        client.endpoint = endpoint.name.clone();
        Ok(client)
    }

    /// The client of the single-endpoint settings (the endpoint named `default`).
    pub fn new(config: LlmConfig) -> Result<Self, reqwest::Error> {
        // reqwest is built without a bundled TLS provider; ring is ours. A second install (by
        // another client in the same process) is refused harmlessly.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.call_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("menus-worker/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let system_prompt = match config.json_mode {
            JsonMode::JsonSchema => SYSTEM_PROMPT.to_string(),
            JsonMode::JsonObject => format!("{SYSTEM_PROMPT}{}", schema_hint(day_schema())),
        };
        let menu_system_prompt = match config.json_mode {
            JsonMode::JsonSchema => MENU_SYSTEM_PROMPT.to_string(),
            JsonMode::JsonObject => format!("{MENU_SYSTEM_PROMPT}{}", schema_hint(menu_schema())),
        };
        let schema_text =
            (config.json_mode == JsonMode::JsonSchema).then(|| day_schema().to_string());
        let fixed_prompt_tokens =
            tokens::chat_prompt([("system", system_prompt.as_str())], schema_text.as_deref());
        Ok(LlmClient {
            http,
            endpoint: super::endpoint::DEFAULT_ENDPOINT.to_string(),
            menu_system_prompt,
            chat_url: format!("{}/chat/completions", config.base_url.trim_end_matches('/')),
            fixed_prompt_tokens,
            config,
            system_prompt,
        })
    }

    /// The user message for `brief` and the prompt tokens a call with it will be billed,
    /// counted as the provider counts them, so budget can be reserved before the call.
    pub fn prompt(&self, brief: &DayBrief) -> Prompt {
        let user = brief.to_json();
        // The system message and the schema are the same in every call: counted once, in `new`.
        let tokens = self.fixed_prompt_tokens + tokens::message("user", &user);
        Prompt {
            day: brief.day,
            user,
            tokens,
            completion_cap: tokens::completion_cap(brief, self.config.max_completion_tokens),
        }
    }

    pub fn config(&self) -> &LlmConfig {
        &self.config
    }

    /// The endpoint's name.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The Chat Completions request body asking `model` for the whole menu of `brief` (one
    /// line's `body` in a provider batch's input file): the menu's schema, and a completion cap
    /// that is the sum of its days' caps.
    pub fn menu_request(&self, model: &str, brief: &MenuBrief) -> serde_json::Value {
        let user = brief.to_json();
        let cap: u32 = (1..=brief.of_days)
            .map(|d| {
                tokens::completion_cap(&brief.day_brief(d, &[]), self.config.max_completion_tokens)
            })
            .sum();
        let request = self.chat_request(model, &self.menu_system_prompt, &user, cap, true);
        serde_json::to_value(&request).unwrap_or_default()
    }

    /// Prompt tokens of [`menu_request`](LlmClient::menu_request)'s body, counted as the
    /// provider bills them (for the Batch API's enqueued-token limit).
    pub fn menu_prompt_tokens(&self, brief: &MenuBrief) -> u32 {
        let schema_text =
            (self.config.json_mode == JsonMode::JsonSchema).then(|| menu_schema().to_string());
        tokens::chat_prompt(
            [
                ("system", self.menu_system_prompt.as_str()),
                ("user", brief.to_json().as_str()),
            ],
            schema_text.as_deref(),
        )
    }

    /// Reads a whole-menu answer: `body` is a Chat Completions response (an output line's
    /// `response.body`). The usage it reports, and its days (unchecked against the rules) or
    /// why there are none.
    pub fn read_menu(body: &serde_json::Value) -> (Usage, Result<Vec<Day>, LlmError>) {
        let mut usage = Usage {
            calls: 1,
            ..Usage::default()
        };
        let parsed: ChatResponse = match serde_json::from_value(body.clone()) {
            Ok(p) => p,
            Err(e) => {
                let error = LlmError::new(
                    ErrorClass::Transient,
                    "llm_malformed_response",
                    format!("the provider's response is not Chat Completions JSON: {e}"),
                );
                return (usage, Err(error));
            }
        };
        if let Some(u) = parsed.usage {
            usage.prompt_tokens = u.prompt_tokens;
            usage.completion_tokens = u.completion_tokens;
        }
        let days = read_answer::<MenuPlan>(parsed).map(|plan| plan.days);
        (usage, days)
    }

    fn chat_request<'a>(
        &'a self,
        model: &'a str,
        system: &'a str,
        user: &'a str,
        cap: u32,
        whole_menu: bool,
    ) -> ChatRequest<'a> {
        let cap = Some(cap);
        ChatRequest {
            model,
            messages: vec![
                Message {
                    role: "system",
                    content: system,
                },
                Message {
                    role: "user",
                    content: user,
                },
            ],
            response_format: match self.config.json_mode {
                JsonMode::JsonSchema => ResponseFormat::JsonSchema {
                    json_schema: JsonSchemaFormat {
                        name: if whole_menu { "menu_week" } else { "menu_day" },
                        strict: true,
                        schema: if whole_menu {
                            menu_schema()
                        } else {
                            day_schema()
                        },
                    },
                },
                JsonMode::JsonObject => ResponseFormat::JsonObject,
            },
            max_completion_tokens: cap
                .filter(|_| self.config.token_param == TokenParam::MaxCompletionTokens),
            max_tokens: cap.filter(|_| self.config.token_param == TokenParam::MaxTokens),
            temperature: self.config.temperature,
        }
    }

    /// Asks the model for one day, its answer capped at `cap` completion tokens; `id` names the
    /// call to the provider.
    #[tracing::instrument(skip_all, fields(llm.model = model, day = prompt.day, llm.call = %id, llm.cap = cap, llm.latency_ms, llm.outcome))]
    pub async fn plan_day(&self, model: &str, prompt: &Prompt, cap: u32, id: CallId) -> Call {
        let started = std::time::Instant::now();
        let request = self.chat_request(model, &self.system_prompt, &prompt.user, cap, false);
        let call = self.send(&request, id).await;
        let latency = started.elapsed();
        let outcome = call.result.as_ref().map_or_else(|e| e.code, |_| "ok");
        let span = tracing::Span::current();
        span.record("llm.latency_ms", latency.as_millis() as u64);
        span.record("llm.outcome", outcome);
        let model = model.to_string();
        metrics::counter!("llm_calls_total", "endpoint" => self.endpoint.clone(), "model" => model.clone(), "outcome" => outcome)
            .increment(1);
        metrics::histogram!("llm_call_duration_seconds", "model" => model.clone())
            .record(latency.as_secs_f64());
        metrics::counter!("llm_tokens_total", "model" => model.clone(), "kind" => "prompt")
            .increment(call.usage.prompt_tokens.max(0) as u64);
        metrics::counter!("llm_tokens_total", "model" => model, "kind" => "completion")
            .increment(call.usage.completion_tokens.max(0) as u64);
        call
    }

    async fn send(&self, request: &ChatRequest<'_>, id: CallId) -> Call {
        let mut usage = Usage {
            calls: 1,
            ..Usage::default()
        };
        let response = self
            .http
            .post(&self.chat_url)
            .bearer_auth(self.config.api_key.expose_secret())
            .header("x-client-request-id", id.to_string())
            .json(request)
            .send()
            .await;
        let response = match response {
            Ok(r) => r,
            Err(e) => {
                return Call {
                    usage,
                    result: Err(LlmError::from_transport(&e)),
                };
            }
        };
        let status = response.status();
        let headers = response.headers().clone();
        let body = match response.text().await {
            Ok(b) => b,
            Err(e) => {
                return Call {
                    usage,
                    result: Err(LlmError::from_transport(&e)),
                };
            }
        };
        if !status.is_success() {
            return Call {
                usage,
                result: Err(LlmError::from_status(status, &headers, &body)),
            };
        }
        let parsed: ChatResponse = match serde_json::from_str(&body) {
            Ok(p) => p,
            Err(e) => {
                return Call {
                    usage,
                    result: Err(LlmError::new(
                        ErrorClass::Transient,
                        "llm_malformed_response",
                        format!("the provider's response is not Chat Completions JSON: {e}"),
                    )),
                };
            }
        };
        if let Some(u) = parsed.usage {
            usage.prompt_tokens = u.prompt_tokens;
            usage.completion_tokens = u.completion_tokens;
        }
        Call {
            usage,
            result: read_answer::<Day>(parsed),
        }
    }
}

/// The first choice's content as a `T` (a day, or a whole menu), or why it is not one.
fn read_answer<T: serde::de::DeserializeOwned>(response: ChatResponse) -> Result<T, LlmError> {
    let Some(choice) = response.choices.into_iter().next() else {
        return Err(LlmError::new(
            ErrorClass::Transient,
            "llm_empty",
            "the provider answered without a choice",
        ));
    };
    if let Some(refusal) = choice.message.refusal.filter(|r| !r.is_empty()) {
        return Err(LlmError::new(
            ErrorClass::PermanentForJob,
            "llm_refusal",
            format!("the model refused: {refusal}"),
        ));
    }
    match choice.finish_reason.as_deref() {
        Some("content_filter") => {
            return Err(LlmError::new(
                ErrorClass::PermanentForJob,
                "llm_content_filter",
                "the provider's content filter withheld the answer",
            ));
        }
        Some("length") => {
            return Err(LlmError::new(
                ErrorClass::Transient,
                TRUNCATED,
                "the answer was cut off at the token limit",
            ));
        }
        _ => {}
    }
    let content = choice.message.content.unwrap_or_default();
    let value: serde_json::Value = serde_json::from_str(&content).map_err(|e| {
        LlmError::new(
            ErrorClass::Transient,
            "llm_malformed_json",
            format!("the answer is not valid JSON: {e}"),
        )
    })?;
    serde_path_to_error::deserialize::<_, T>(value).map_err(|e| {
        LlmError::invalid_output(vec![format!(
            "the answer does not match the schema at `{}`: {}",
            e.path(),
            e.inner()
        )])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(json_mode: JsonMode) -> LlmClient {
        LlmClient::new(LlmConfig {
            base_url: "http://127.0.0.1:1/v1".into(),
            api_key: secrecy::SecretString::from("sk-test"),
            model: "gpt-4o-mini".into(),
            model_premium: None,
            json_mode,
            token_param: TokenParam::MaxCompletionTokens,
            max_completion_tokens: 2500,
            temperature: 0.7,
            connect_timeout: Duration::from_secs(1),
            call_timeout: Duration::from_secs(1),
        })
        .unwrap()
    }

    fn week() -> MenuBrief {
        let options = domain::request::MenuOptions {
            days: Some(7),
            ..Default::default()
        };
        let start = chrono::NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
        MenuBrief::new(&domain::request::GenerationRequest::from_options(&options, start).unwrap())
    }

    #[test]
    fn a_whole_menu_request_asks_for_the_week_schema_capped_at_its_days_caps() {
        let brief = week();
        let body = client(JsonMode::JsonSchema).menu_request("gpt-4o-mini", &brief);
        assert_eq!(body["response_format"]["json_schema"]["name"], "menu_week");
        assert_eq!(
            body["response_format"]["json_schema"]["schema"],
            *menu_schema()
        );
        let day_cap = tokens::completion_cap(&brief.day_brief(1, &[]), 2500);
        assert_eq!(body["max_completion_tokens"], 7 * day_cap);
        assert_eq!(body["messages"][0]["content"], MENU_SYSTEM_PROMPT);
        assert!(MenuBrief::is_menu(
            body["messages"][1]["content"].as_str().unwrap()
        ));
        // JSON mode: the schema goes in the system prompt, and the prompt costs it.
        let object = client(JsonMode::JsonObject);
        let body = object.menu_request("gpt-4o-mini", &brief);
        assert_eq!(body["response_format"]["type"], "json_object");
        assert!(
            body["messages"][0]["content"]
                .as_str()
                .unwrap()
                .contains("menu")
        );
        assert!(object.menu_prompt_tokens(&brief) > tokens::count(&brief.to_json()));
    }

    #[test]
    fn a_whole_menu_answer_reads_as_its_days_with_its_usage() {
        let day = serde_json::json!({"meals": [], "snacks": []});
        let body = serde_json::json!({
            "choices": [{"message": {"content": serde_json::json!({"days": [day, day]}).to_string()},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 900, "completion_tokens": 5000}
        });
        let (usage, days) = LlmClient::read_menu(&body);
        assert_eq!(
            (usage.calls, usage.prompt_tokens, usage.completion_tokens),
            (1, 900, 5000)
        );
        assert_eq!(days.unwrap().len(), 2);
        let cut = serde_json::json!({"choices": [{"message": {"content": "{\"days\": ["}, "finish_reason": "length"}]});
        assert_eq!(LlmClient::read_menu(&cut).1.unwrap_err().code, TRUNCATED);
        let not_a_menu = serde_json::json!({"choices": [{"message": {"content": "{\"day\": 1}"}}]});
        assert_eq!(
            LlmClient::read_menu(&not_a_menu).1.unwrap_err().class,
            ErrorClass::InvalidOutput
        );
    }

    #[test]
    fn a_call_id_names_the_call_in_ascii_and_reads_back() {
        let id = CallId {
            job: uuid::Uuid::now_v7(),
            fence: 1234,
            day: 3,
            ask: 2,
            retry: 1,
        };
        let text = id.to_string();
        assert!(text.len() <= 512 && text.is_ascii(), "{text}");
        assert!(
            text.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        );
        assert_eq!(text.parse::<CallId>(), Ok(id));
        assert!("job-x.att1.day1.ask1.try0".parse::<CallId>().is_err());
        assert!("something else".parse::<CallId>().is_err());
    }
}
