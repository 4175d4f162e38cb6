//! What the "model" answers to one Chat Completions request, without HTTP: the request parsed
//! and checked as OpenAI checks it, the day (or the whole menu) its last user message asks for
//! composed from the catalogue, shaped by a fault, cut at the completion budget and wrapped as
//! a `chat.completion`. The endpoint (`chat`) and each line of a batch (`batches`) answer
//! through here, so a request gets the same answer either way.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use domain::menu::Day;
use domain::prompt::{DayBrief, MenuBrief};
use rand::Rng;
use serde_json::Value;
use tracing::warn;

use crate::answers::{Answer, Answers};
use crate::compose::{answer_content, break_rule, compose};
use crate::faults::{self, BrokenRule, Fault};
use crate::openai::{AssistantMessage, ChatCompletion, ChatRequest, Choice, ErrorBody, Usage};
use crate::server::{AppState, serves_model};
use crate::tokens;

/// A request refused before or instead of an answer: the HTTP status and OpenAI's error body.
#[derive(Debug, Clone)]
pub(crate) struct Refused {
    pub(crate) status: StatusCode,
    pub(crate) body: ErrorBody,
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        faults::error(self.status, self.body)
    }
}

/// 400 `invalid_request_error` with the given message, parameter and code.
pub(crate) fn bad_request(
    message: impl Into<String>,
    param: Option<&str>,
    code: Option<&str>,
) -> Refused {
    Refused {
        status: StatusCode::BAD_REQUEST,
        body: ErrorBody::new(
            message,
            "invalid_request_error",
            param,
            code.map_or(Value::Null, Value::from),
        ),
    }
}

/// 500 `server_error`: what OpenAI answers when its side fails.
pub(crate) fn server_error() -> Refused {
    Refused {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        body: ErrorBody::coded(
            "The server had an error while processing your request. Sorry about that!",
            "server_error",
            None,
        ),
    }
}

/// The body as a request.
pub(crate) fn parse(body: &[u8]) -> Result<ChatRequest, Refused> {
    serde_json::from_slice(body).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            bad_request(
                "We could not parse the JSON body of your request. (HINT: This likely means \
                 you aren't using your HTTP library correctly. The OpenAI API expects a JSON \
                 payload, but what was sent was not valid JSON.)",
                None,
                None,
            )
        } else {
            bad_request(format!("Invalid request: {e}"), None, None)
        }
    })
}

/// The parameter checks OpenAI makes, then the model's: the model the request may use.
pub(crate) fn check(state: &AppState, request: &ChatRequest) -> Result<String, Refused> {
    if let Some(invalid) = validate(request) {
        return Err(invalid);
    }
    let model = request.model.clone().unwrap_or_default();
    if !serves_model(state, &model) {
        return Err(Refused {
            status: StatusCode::NOT_FOUND,
            body: faults::model_not_found_body(&model),
        });
    }
    Ok(model)
}

/// The parameter checks OpenAI makes, with its messages and codes.
fn validate(request: &ChatRequest) -> Option<Refused> {
    if request.model.as_deref().is_none_or(str::is_empty) {
        return Some(bad_request(
            "you must provide a model parameter",
            None,
            None,
        ));
    }
    match request.messages.as_deref() {
        None => {
            return Some(bad_request(
                "Missing required parameter: 'messages'.",
                Some("messages"),
                Some("missing_required_parameter"),
            ));
        }
        Some([]) => {
            return Some(bad_request(
                "Invalid 'messages': empty array. Expected an array with minimum length 1, but \
                 got an empty array instead.",
                Some("messages"),
                Some("empty_array"),
            ));
        }
        Some(_) => {}
    }
    for (param, value) in [
        ("max_completion_tokens", request.max_completion_tokens),
        ("max_tokens", request.max_tokens),
    ] {
        if let Some(v) = value
            && v < 1
        {
            return Some(bad_request(
                format!(
                    "Invalid '{param}': integer below minimum value. Expected a value >= 1, but \
                     got {v} instead."
                ),
                Some(param),
                Some("integer_below_min_value"),
            ));
        }
    }
    if let Some(t) = request.temperature
        && !(0.0..=2.0).contains(&t)
    {
        let (side, bound, code) = if t < 0.0 {
            ("below minimum", ">= 0", "decimal_below_min_value")
        } else {
            ("above maximum", "<= 2", "decimal_above_max_value")
        };
        return Some(bad_request(
            format!(
                "Invalid 'temperature': decimal {side} value. Expected a value {bound}, but got \
                 {t} instead."
            ),
            Some("temperature"),
            Some(code),
        ));
    }
    None
}

/// What the last user message asks for: one day, or (with `"menu": true`) a whole menu.
#[derive(Debug, Clone)]
pub(crate) enum Ask {
    Day(DayBrief),
    Menu(MenuBrief),
}

impl Ask {
    /// The brief in the request's last user message, if it is one.
    pub(crate) fn of(request: &ChatRequest) -> Option<Ask> {
        let text = request.last_user_text()?;
        if MenuBrief::is_menu(&text) {
            serde_json::from_str(&text).ok().map(Ask::Menu)
        } else {
            serde_json::from_str(&text).ok().map(Ask::Day)
        }
    }

    /// The answer to a request whose last user message is no brief.
    pub(crate) fn missing() -> Refused {
        bad_request(
            "Invalid 'messages': the last user message must be a day brief or a menu brief, \
             the JSON object the menu worker sends (day, servings, diet, dishes, macros_pct, \
             ...; a menu brief has \"menu\": true and of_days).",
            Some("messages"),
            None,
        )
    }

    /// The day a day brief asks for.
    pub(crate) fn day(&self) -> Option<u8> {
        match self {
            Ask::Day(brief) => Some(brief.day),
            Ask::Menu(_) => None,
        }
    }

    /// How many problems a day brief lists (a re-ask when above zero).
    pub(crate) fn problems(&self) -> Option<usize> {
        match self {
            Ask::Day(brief) => Some(brief.problems.len()),
            Ask::Menu(_) => None,
        }
    }

    /// How many days a menu brief asks for.
    pub(crate) fn menu_days(&self) -> Option<u8> {
        match self {
            Ask::Day(_) => None,
            Ask::Menu(menu) => Some(menu.of_days),
        }
    }

    /// Composes the answer (CPU-bound: catalogue search and rule checks). A menu's day k is composed for `MenuBrief::day_brief(k, days before)`,
    /// so the days follow the between-day rules (titles, main ingredients) as a whole.
    fn compose(self, seed: u64) -> Composed {
        match self {
            Ask::Day(brief) => {
                let day = compose(&brief, seed).day;
                Composed {
                    menu: false,
                    days: vec![(brief, day)],
                }
            }
            Ask::Menu(menu) => {
                let mut briefs = Vec::with_capacity(usize::from(menu.of_days));
                let mut days: Vec<Day> = Vec::with_capacity(usize::from(menu.of_days));
                for k in 1..=menu.of_days {
                    let brief = menu.day_brief(k, &days);
                    days.push(compose(&brief, seed.wrapping_add(u64::from(k))).day);
                    briefs.push(brief);
                }
                Composed {
                    menu: true,
                    days: briefs.into_iter().zip(days).collect(),
                }
            }
        }
    }
}

/// A composed answer: one day, or every day of a menu, each with the brief it was composed
/// for.
#[derive(Debug, Clone)]
struct Composed {
    menu: bool,
    days: Vec<(DayBrief, Day)>,
}

impl Composed {
    /// The message content: a day's JSON, or `{"days":[day, ...]}`.
    fn content(&self) -> String {
        let mut days = self.days.iter().map(|(_, day)| answer_content(day));
        if self.menu {
            format!("{{\"days\":[{}]}}", days.collect::<Vec<_>>().join(","))
        } else {
            days.next().unwrap_or_default()
        }
    }

    /// The answer with `rule` broken on its day, or on one day of a menu (which one follows
    /// from the seed), so the worker must notice it and ask that day again.
    fn broken(mut self, rule: BrokenRule, seed: u64) -> Composed {
        if !self.days.is_empty() {
            let k = (seed % self.days.len() as u64) as usize;
            let (brief, day) = self.days[k].clone();
            self.days[k].1 = break_rule(&brief, day, rule);
        }
        self
    }
}

/// The seed of a request's answer: its own, or the hash of its messages, so the same messages
/// give the same answer.
pub(crate) fn seed(request: &ChatRequest, body: &[u8]) -> u64 {
    request.seed.map_or_else(
        || {
            let messages = serde_json::from_slice::<Value>(body)
                .ok()
                .and_then(|v| v.get("messages").cloned())
                .unwrap_or_default();
            let mut hasher = DefaultHasher::new();
            messages.to_string().hash(&mut hasher);
            hasher.finish()
        },
        |s| s as u64,
    )
}

/// Benchmark mode's view of one body: where its answer is kept, and the answer kept there.
/// Owned, so composing can move it to the blocking pool.
pub(crate) struct Kept {
    slot: Option<(Arc<AppState>, u64)>,
    answer: Option<Answer>,
}

impl Kept {
    pub(crate) fn of(state: &Arc<AppState>, body: &[u8]) -> Kept {
        let key = state.answers.as_ref().map(|_| Answers::key(body));
        let answer = state
            .answers
            .as_ref()
            .zip(key)
            .and_then(|(answers, key)| answers.get(key));
        Kept {
            slot: key.map(|key| (state.clone(), key)),
            answer,
        }
    }

    /// The request's prompt tokens: kept with its answer, or counted.
    pub(crate) fn prompt_tokens(&self, request: &ChatRequest) -> u32 {
        self.answer.as_ref().map_or_else(
            || tokens::prompt_tokens(request) as u32,
            |a| a.prompt_tokens,
        )
    }

    /// The kept answer as the message, unless a fault is to shape a fresh one.
    fn reused(&self, fault: &Option<Fault>) -> Option<Message> {
        match (&self.answer, fault) {
            (Some(answer), None) => Some(Message {
                content: Some(answer.content.to_string()),
                refusal: None,
                finish_reason: "stop",
                tokens: answer.completion_tokens,
            }),
            _ => None,
        }
    }

    /// The model's message for `ask`: the kept answer when there is one and no fault applies,
    /// else composed on the blocking pool while `delay` runs (so a call takes what was
    /// configured), shaped by `fault`, and kept when faultless.
    pub(crate) async fn message(
        self,
        ask: Ask,
        seed: u64,
        fault: Option<Fault>,
        delay: Duration,
        prompt_tokens: u32,
    ) -> Result<Message, Refused> {
        if let Some(message) = self.reused(&fault) {
            tokio::time::sleep(delay).await;
            return Ok(message);
        }
        let composing =
            tokio::task::spawn_blocking(move || self.compose(ask, seed, fault, prompt_tokens));
        let (composed, _) = tokio::join!(composing, tokio::time::sleep(delay));
        composed.map_err(|e| {
            warn!(error = %e, "composing an answer failed");
            server_error()
        })
    }

    /// The message for `ask`, composed and shaped by `fault`, and kept when faultless.
    /// CPU-bound (catalogue search, rule checks, token counts): for the blocking pool.
    fn compose(&self, ask: Ask, seed: u64, fault: Option<Fault>, prompt_tokens: u32) -> Message {
        let faultless = fault.is_none();
        let message = Message::for_answer(ask.compose(seed), fault, seed);
        if let (Some((state, key)), true, Some(content)) = (&self.slot, faultless, &message.content)
            && let Some(answers) = &state.answers
        {
            let answer = Answer {
                prompt_tokens,
                content: Arc::from(content.as_str()),
                completion_tokens: message.tokens,
            };
            answers.keep(*key, answer);
        }
        message
    }
}

/// A batch line's answer: the completion, and how many days it asked for when a whole menu.
pub(crate) struct LineAnswer {
    pub(crate) completion: ChatCompletion,
    pub(crate) menu_days: Option<u8>,
}

/// One request of a batch answered as the endpoint answers it, minus what belongs to a live
/// call (rate limits, latency, scripted and random faults): the completion, or the error the
/// endpoint would have sent. `break_menu` makes a whole-menu answer break a rule on one day.
/// CPU-bound from parsing to token counts: for the blocking pool.
pub(crate) fn answer_line(
    state: &Arc<AppState>,
    body: &[u8],
    break_menu: bool,
) -> Result<LineAnswer, Refused> {
    let request = parse(body)?;
    let model = check(state, &request)?;
    let kept = Kept::of(state, body);
    let prompt_tokens = kept.prompt_tokens(&request);
    let ask = Ask::of(&request).ok_or_else(Ask::missing)?;
    let menu_days = ask.menu_days();
    let fault = (break_menu && menu_days.is_some()).then(|| Fault::BrokenRule {
        rule: BrokenRule::default(),
    });
    let seed = seed(&request, body);
    let message = match kept.reused(&fault) {
        Some(message) => message,
        None => kept.compose(ask, seed, fault, prompt_tokens),
    };
    let limit = request.completion_limit().map(|l| l as u32);
    Ok(LineAnswer {
        completion: message.capped(limit).completion(model, prompt_tokens),
        menu_days,
    })
}

/// The assistant's message and how it ended.
pub(crate) struct Message {
    content: Option<String>,
    refusal: Option<String>,
    pub(crate) finish_reason: &'static str,
    pub(crate) tokens: u32,
}

impl Message {
    /// The message for a composed answer, shaped by a fault that answers 200.
    fn for_answer(composed: Composed, fault: Option<Fault>, seed: u64) -> Message {
        let text = |content: String, finish_reason| Message {
            tokens: tokens::count(&content),
            content: Some(content),
            refusal: None,
            finish_reason,
        };
        let cut = |full: String, share: usize, finish_reason| {
            let (content, n) = tokens::truncate(&full, tokens::count(&full) as usize / share);
            Message {
                content: Some(content),
                refusal: None,
                finish_reason,
                tokens: n as u32,
            }
        };
        match fault {
            Some(Fault::MalformedJson) => text(malformed(&composed.content()), "stop"),
            Some(Fault::Truncated) => cut(composed.content(), 2, "length"),
            Some(Fault::ContentFilter) => cut(composed.content(), 3, "content_filter"),
            Some(Fault::Refusal { message }) => Message {
                tokens: tokens::count(&message),
                content: None,
                refusal: Some(message),
                finish_reason: "stop",
            },
            Some(Fault::BrokenRule { rule }) => text(composed.broken(rule, seed).content(), "stop"),
            Some(Fault::Prose { content }) => text(content, "stop"),
            _ => text(composed.content(), "stop"),
        }
    }

    /// Cut where the real API would when the completion budget is smaller than the answer.
    pub(crate) fn capped(self, limit: Option<u32>) -> Message {
        match (&self.content, limit) {
            (Some(content), Some(max)) if self.tokens > max => {
                let (cut, n) = tokens::truncate(content, max as usize);
                Message {
                    content: Some(cut),
                    refusal: None,
                    finish_reason: "length",
                    tokens: n as u32,
                }
            }
            _ => self,
        }
    }

    pub(crate) fn completion(self, model: String, prompt_tokens: u32) -> ChatCompletion {
        ChatCompletion {
            id: format!("chatcmpl-{}", random_id(29)),
            object: "chat.completion".to_string(),
            created: unix_now(),
            model,
            system_fingerprint: "fp_standin".to_string(),
            service_tier: "default".to_string(),
            choices: vec![Choice {
                index: 0,
                message: AssistantMessage {
                    role: "assistant".to_string(),
                    content: self.content,
                    refusal: self.refusal,
                    annotations: Vec::new(),
                },
                logprobs: None,
                finish_reason: self.finish_reason.to_string(),
            }],
            usage: Usage::new(prompt_tokens, self.tokens),
        }
    }
}

/// JSON no parser accepts: the first key loses its colon and the object its closing brace.
fn malformed(content: &str) -> String {
    let mut broken = content.replacen("\":", "\" ", 1);
    broken.pop();
    broken
}

/// Seconds since the Unix epoch, as OpenAI's `created` fields count them.
pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// `len` random letters and digits, the tail of OpenAI's ids (`chatcmpl-…`, `file-…`).
pub(crate) fn random_id(len: usize) -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_content_does_not_parse() {
        let text = "{\"meals\":[],\"snacks\":[]}";
        assert!(serde_json::from_str::<Value>(text).is_ok());
        assert!(serde_json::from_str::<Value>(&malformed(text)).is_err());
    }

    #[test]
    fn ids_look_like_openai_ids() {
        let id = random_id(29);
        assert_eq!(id.len(), 29);
        assert!(id.chars().all(|c| c.is_ascii_alphanumeric()));
    }

    #[test]
    fn a_message_over_its_budget_is_cut_with_length() {
        let long = Message {
            content: Some("{\"meals\":[{\"title\":\"Shakshuka\"}],\"snacks\":[]}".into()),
            refusal: None,
            finish_reason: "stop",
            tokens: 14,
        };
        let cut = long.capped(Some(4));
        assert_eq!((cut.tokens, cut.finish_reason), (4, "length"));
    }
}
