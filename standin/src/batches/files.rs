//! The Files endpoints a batch needs (<https://platform.openai.com/docs/api-reference/files>):
//! `POST /v1/files` (multipart upload of a batch input file), `GET /v1/files/{id}` and
//! `GET /v1/files/{id}/content`. Files live in memory for the stand-in's life: the inputs as
//! uploaded, and the output and error files the batches write.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::body::Bytes;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::input::{InputLine, read_lines};
use super::wire::FileObject;
use crate::openai::ErrorBody;
use crate::reply::{Refused, bad_request, random_id, unix_now};
use crate::server::AppState;

/// The purpose of a batch input file.
const BATCH: &str = "batch";
/// The purpose of the files a batch writes.
pub(crate) const BATCH_OUTPUT: &str = "batch_output";

/// A stored file: what `GET /v1/files/{id}` shows, its content, and (for a batch input file)
/// its requests as read at upload.
pub(crate) struct StoredFile {
    pub(crate) object: FileObject,
    content: Bytes,
    pub(crate) lines: Option<Arc<[InputLine]>>,
}

/// Every file of one stand-in, by id.
#[derive(Default)]
pub(crate) struct Files {
    by_id: Mutex<HashMap<String, Arc<StoredFile>>>,
}

impl Files {
    /// Stores `content` under a new id and returns its File object.
    pub(crate) fn insert(
        &self,
        filename: String,
        purpose: &str,
        content: Bytes,
        lines: Option<Arc<[InputLine]>>,
    ) -> FileObject {
        let object = FileObject {
            id: format!("file-{}", random_id(24)),
            object: "file".to_string(),
            bytes: content.len() as u64,
            created_at: unix_now(),
            filename,
            purpose: purpose.to_string(),
        };
        let file = StoredFile {
            object: object.clone(),
            content,
            lines,
        };
        self.lock().insert(object.id.clone(), Arc::new(file));
        object
    }

    pub(crate) fn get(&self, id: &str) -> Option<Arc<StoredFile>> {
        self.lock().get(id).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<StoredFile>>> {
        self.by_id.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// `POST /v1/files`: `purpose=batch` and `file=<jsonl>`; the file is refused (400) when a line
/// breaks the input rules or it holds more requests or bytes than the behaviour allows.
pub(crate) async fn upload(
    State(state): State<Arc<AppState>>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Response {
    match read_upload(&state, multipart).await {
        Ok(object) => Json(object).into_response(),
        Err(refused) => refused.into_response(),
    }
}

async fn read_upload(
    state: &AppState,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<FileObject, Refused> {
    let behaviour = state.batches.behaviour();
    let invalid = |e: &dyn std::fmt::Display| {
        bad_request(
            format!("Invalid multipart body: {e}"),
            None,
            Some("invalid_request"),
        )
    };
    let mut multipart = multipart.map_err(|e| invalid(&e))?;
    let mut purpose = None;
    let mut file = None;
    while let Some(mut field) = multipart.next_field().await.map_err(|e| invalid(&e))? {
        match field.name() {
            Some("purpose") => purpose = Some(field.text().await.map_err(|e| invalid(&e))?),
            Some("file") => {
                let filename = field.file_name().unwrap_or("upload.jsonl").to_string();
                let mut content = Vec::new();
                while let Some(chunk) = field.chunk().await.map_err(|e| invalid(&e))? {
                    if (content.len() + chunk.len()) as u64 > behaviour.max_file_bytes {
                        return Err(bad_request(
                            format!(
                                "The file is larger than the {} bytes a batch input file may \
                                 hold.",
                                behaviour.max_file_bytes
                            ),
                            Some("file"),
                            Some("file_too_large"),
                        ));
                    }
                    content.extend_from_slice(&chunk);
                }
                file = Some((filename, content));
            }
            _ => {}
        }
    }
    let missing = |param: &str| {
        bad_request(
            format!("Missing required parameter: '{param}'."),
            Some(param),
            Some("missing_required_parameter"),
        )
    };
    let purpose = purpose.ok_or_else(|| missing("purpose"))?;
    let (filename, content) = file.ok_or_else(|| missing("file"))?;
    if purpose != BATCH {
        return Err(bad_request(
            format!("Invalid purpose '{purpose}': the stand-in stores batch input files only."),
            Some("purpose"),
            Some("invalid_value"),
        ));
    }
    let lines = read_lines(&content, behaviour.max_requests)?;
    Ok(state
        .batches
        .files
        .insert(filename, BATCH, Bytes::from(content), Some(lines.into())))
}

/// `GET /v1/files/{id}`: the File object.
pub(crate) async fn retrieve(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Response {
    match state.batches.files.get(&id) {
        Some(file) => Json(file.object.clone()).into_response(),
        None => no_such_file(&id).into_response(),
    }
}

/// `GET /v1/files/{id}/content`: the bytes of an input, output or error file.
pub(crate) async fn content(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Response {
    match state.batches.files.get(&id) {
        Some(file) => (
            [(header::CONTENT_TYPE, "application/octet-stream")],
            file.content.clone(),
        )
            .into_response(),
        None => no_such_file(&id).into_response(),
    }
}

fn no_such_file(id: &str) -> Refused {
    Refused {
        status: StatusCode::NOT_FOUND,
        body: ErrorBody::new(
            format!("No such File object: {id}"),
            "invalid_request_error",
            Some("id"),
            serde_json::Value::Null,
        ),
    }
}
