//! A batch input file read line by line, as OpenAI requires it
//! (<https://platform.openai.com/docs/guides/batch>): one JSON object per line with a unique
//! `custom_id`, `method` `POST`, `url` `/v1/chat/completions` and the request `body`. A file
//! that breaks a rule is refused at upload with the line at fault, so a bad file never becomes
//! a batch.

use std::collections::HashSet;

use axum::body::Bytes;
use serde_json::Value;

use crate::reply::{Refused, bad_request};

/// The only endpoint a batch's requests may call.
pub(crate) const CHAT_COMPLETIONS: &str = "/v1/chat/completions";

/// One request of a batch: its caller's name for it and the Chat Completions body.
#[derive(Debug, Clone)]
pub(crate) struct InputLine {
    pub(crate) custom_id: String,
    pub(crate) body: Bytes,
}

/// The requests of an input file, in order, or the 400 naming the first line at fault. Blank
/// lines are skipped; more than `max_requests` requests are refused.
pub(crate) fn read_lines(content: &[u8], max_requests: usize) -> Result<Vec<InputLine>, Refused> {
    let text = std::str::from_utf8(content).map_err(|_| {
        bad_request(
            "The file is not UTF-8 text: a batch input file is JSONL.",
            Some("file"),
            Some("invalid_file_format"),
        )
    })?;
    let mut lines = Vec::new();
    let mut seen = HashSet::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let number = index + 1;
        if lines.len() == max_requests {
            return Err(bad_request(
                format!(
                    "The file has more than the {max_requests} requests a batch may hold (line \
                     {number})."
                ),
                Some("file"),
                Some("too_many_requests"),
            ));
        }
        let request = read_line(line, number)?;
        if !seen.insert(request.custom_id.clone()) {
            return Err(bad_request(
                format!(
                    "Line {number}: the custom_id for this request is a duplicate of another \
                     request. The custom_id parameter must be unique for each request in a \
                     batch."
                ),
                Some("custom_id"),
                Some("duplicate_custom_id"),
            ));
        }
        lines.push(request);
    }
    Ok(lines)
}

fn read_line(line: &str, number: usize) -> Result<InputLine, Refused> {
    let Ok(Value::Object(mut fields)) = serde_json::from_str::<Value>(line) else {
        return Err(bad_request(
            format!("Line {number}: the line is not a JSON object."),
            Some("file"),
            Some("invalid_json_line"),
        ));
    };
    let missing = |param: &str| {
        bad_request(
            format!("Line {number}: Missing required parameter: '{param}'."),
            Some(param),
            Some("missing_required_parameter"),
        )
    };
    let text = |param: &str| match fields.get(param) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        _ => Err(missing(param)),
    };
    let custom_id = text("custom_id")?;
    let method = text("method")?;
    let url = text("url")?;
    let body = match fields.remove("body") {
        Some(body @ Value::Object(_)) => body,
        _ => return Err(missing("body")),
    };
    if method != "POST" {
        return Err(bad_request(
            format!("Line {number}: the method must be POST, not {method}."),
            Some("method"),
            Some("invalid_method"),
        ));
    }
    if url != CHAT_COMPLETIONS {
        return Err(bad_request(
            format!("Line {number}: the url must be {CHAT_COMPLETIONS}, not {url}."),
            Some("url"),
            Some("invalid_url"),
        ));
    }
    Ok(InputLine {
        custom_id,
        body: Bytes::from(body.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn line(custom_id: &str) -> String {
        json!({
            "custom_id": custom_id,
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": "gpt-4o-mini", "messages": []},
        })
        .to_string()
    }

    fn code(file: &str, max: usize) -> String {
        read_lines(file.as_bytes(), max)
            .unwrap_err()
            .body
            .error
            .code
            .as_str()
            .unwrap()
            .to_string()
    }

    #[test]
    fn a_good_file_gives_its_requests_in_order() {
        let file = format!("{}\n\n{}\n", line("a"), line("b"));
        let lines = read_lines(file.as_bytes(), 10).unwrap();
        let ids: Vec<&str> = lines.iter().map(|l| l.custom_id.as_str()).collect();
        assert_eq!(ids, vec!["a", "b"]);
        let body: Value = serde_json::from_slice(&lines[0].body).unwrap();
        assert_eq!(body["model"], "gpt-4o-mini");
    }

    #[test]
    fn each_broken_rule_is_refused_with_its_code() {
        let two = format!("{}\n{}", line("a"), line("b"));
        assert_eq!(code(&two, 1), "too_many_requests");
        assert_eq!(
            code(&format!("{}\n{}", line("a"), line("a")), 10),
            "duplicate_custom_id"
        );
        assert_eq!(code("{not json", 10), "invalid_json_line");
        let without_body = line("a").replace("body", "bodies");
        assert_eq!(code(&without_body, 10), "missing_required_parameter");
        let other_url = line("a").replace("/v1/chat/completions", "/v1/embeddings");
        assert_eq!(code(&other_url, 10), "invalid_url");
        let get = line("a").replace("\"POST\"", "\"GET\"");
        assert_eq!(code(&get, 10), "invalid_method");
        let refused = read_lines(without_body.as_bytes(), 10).unwrap_err();
        assert!(
            refused.body.error.message.starts_with("Line 1:"),
            "{:?}",
            refused.body
        );
    }
}
