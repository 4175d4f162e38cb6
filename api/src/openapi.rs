//! The OpenAPI 3.1 document of the JSON API, served at `GET /openapi.json`, with Swagger UI at
//! `/docs`.
//!
//! The document is generated from the code. Every JSON route is registered with
//! `utoipa_axum::routes!`, which adds the handler's `#[utoipa::path]` (method, path, parameters,
//! bodies, responses) to the document as it adds the handler to the router, so a route is not
//! served without being described. This module holds what the operations share: the document's
//! head (info, tags, the bearer scheme) and the error responses most routes can give.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use std::collections::BTreeMap;

use utoipa::openapi::ContentBuilder;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi, Ref, RefOr};
use utoipa::{IntoResponses, Modify, ToResponse, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::{Config, SwaggerUi};

use crate::error::Envelope;
use crate::state::AppState;

/// Where the document is served; Swagger UI loads it from there.
const DOCUMENT_PATH: &str = "/openapi.json";

/// The document's head; `routes::documented` adds every operation to it.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Menus API",
        description = "Personalised meal menus from an LLM, generated as queued jobs: submit a \
            request (`POST /v1/menus`), follow its job (`GET /v1/jobs/{id}`, long-polled with \
            `wait`), read the menu.\n\n\
            Bodies are JSON (`content-type: application/json`). Every error answers with the \
            `ApiError` shape, `{\"error\":{\"code\",\"message\",\"field\",\"details\"}}`, whose \
            `code` is stable; each operation lists the codes it can answer. Any request may also \
            be answered `404 not_found` (no route matches), `405 method_not_allowed` (with \
            `Allow`), `413 body_too_large` (a declared length over the limit), `500 internal` \
            or `503 timeout`. Every response carries an `x-request-id` \
            header (the request's own, if it sent one)."
    ),
    tags(
        (name = "operations", description = "Liveness, readiness, metrics and this document"),
        (name = "auth", description = "Accounts and bearer tokens"),
        (name = "preferences", description = "The profile menu requests are merged with"),
        (name = "menus", description = "Submitting generation requests and reading menus"),
        (name = "jobs", description = "Following and cancelling generation jobs"),
        (name = "coaching", description = "Coaches and the clients they generate menus for"),
        (name = "admin", description = "Operating the service (role `admin`)"),
    ),
    modifiers(&BearerScheme),
    components(
        schemas(Envelope),
        responses(
            MalformedJson,
            Unauthenticated,
            InvalidQuery,
            InvalidPage,
            AdminOnly,
            NotFound,
            BodyTooLarge,
            NotJson,
            InvalidBody,
            InvalidFilter,
            TooManyRequests,
            Internal,
            Unavailable,
        )
    )
)]
pub struct ApiDoc;

/// Adds the `bearer` scheme that authenticated operations name in their `security`.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut OpenApi) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("JWT")
            .description(Some(
                "A token from `POST /v1/auth/register` or `POST /v1/auth/login`, sent as \
                 `Authorization: Bearer <token>`. Operations that name the role `admin` need \
                 the token of an admin account.",
            ))
            .build();
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

/// `/openapi.json`, serving `document` with its own description added, and Swagger UI at
/// `/docs` reading it.
pub fn routes(mut document: OpenApi) -> Router<AppState> {
    let (serve, itself) = OpenApiRouter::new()
        .routes(routes!(openapi_json))
        .split_for_parts();
    document.merge(itself);
    let mut json = serde_json::to_value(&document).expect("an OpenAPI document serializes");
    state_no_nul(&mut json);
    // Serialized once: the document depends on the code alone.
    let json = Bytes::from(json.to_string());
    serve
        .with_state(json)
        .merge(SwaggerUi::new("/docs").config(Config::from(DOCUMENT_PATH)))
}

/// The pattern every free string of the document gets: no NUL character (U+0000), which
/// PostgreSQL cannot store and which the server refuses wherever text is sent
/// (`extract::unstorable_text`, `QueryParams`).
pub const NO_NUL: &str = "^[^\\u0000]*$";

/// States the server's one rule for all text in the document itself: every string schema that
/// has no pattern, format or enumeration of its own gets [`NO_NUL`]. (Those that have one refuse
/// NUL already: a format is a UUID or a time, an enumeration lists its values.)
fn state_no_nul(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(object) => {
            let string = match object.get("type") {
                Some(serde_json::Value::String(t)) => t == "string",
                Some(serde_json::Value::Array(types)) => types.iter().any(|t| t == "string"),
                _ => false,
            };
            let free = ["pattern", "format", "enum", "const"]
                .iter()
                .all(|key| !object.contains_key(*key));
            if string && free {
                object.insert("pattern".into(), NO_NUL.into());
            }
            object.values_mut().for_each(state_no_nul);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(state_no_nul),
        _ => {}
    }
}

/// This document.
#[utoipa::path(
    get,
    path = DOCUMENT_PATH,
    operation_id = "openapi",
    tag = "operations",
    responses(
        (status = 200, description = "The OpenAPI 3.1 document of this API", body = Object),
    )
)]
async fn openapi_json(State(json): State<Bytes>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], json)
}

// The error responses most operations share, as response components: types for the document
// only, never built. Each is the `ApiError` body; the description names the codes.

/// `malformed_json`: the body is not valid JSON.
#[derive(ToResponse)]
pub struct MalformedJson(pub Envelope);

/// `unauthenticated`: no bearer token was sent; `invalid_token`: the token is malformed, not
/// ours, expired, or its account no longer exists.
#[derive(ToResponse)]
#[response(headers(
    ("WWW-Authenticate" = String, description = "`Bearer`, with `error=\"invalid_token\"` when a token was sent")
))]
pub struct Unauthenticated(pub Envelope);

/// `invalid_query`: the query string cannot be read.
#[derive(ToResponse)]
pub struct InvalidQuery(pub Envelope);

/// `invalid_type`: `limit` is not an integer; `validation_failed`: `limit` out of range or a
/// `cursor` not of its shape (a paged list that takes no other parameter).
#[derive(ToResponse)]
pub struct InvalidPage(pub Envelope);

/// `forbidden`: the caller is not an admin.
#[derive(ToResponse)]
pub struct AdminOnly(pub Envelope);

/// `not_found`: nothing with this id that the caller may see. Another person's job or menu is
/// answered the same as a missing one, and so is an id that is not a UUID.
#[derive(ToResponse)]
pub struct NotFound(pub Envelope);

/// `body_too_large`: the body is larger than the server accepts (`BODY_LIMIT_BYTES`).
#[derive(ToResponse)]
pub struct BodyTooLarge(pub Envelope);

/// `unsupported_media_type`: the body was not sent as `application/json` (or
/// `application/*+json`).
#[derive(ToResponse)]
pub struct NotJson(pub Envelope);

/// The body does not fit the schema: `unknown_field`, `missing_field` or `invalid_type` (with
/// the field's path in `field`), or `validation_failed` (a value out of range or not allowed;
/// `details` lists every problem).
#[derive(ToResponse)]
pub struct InvalidBody(pub Envelope);

/// A bulk action's body does not fit the schema (`unknown_field`, `missing_field`,
/// `invalid_type`), or its filter is empty or has a value that is not allowed, such as an
/// unknown `status` or a time that is not RFC 3339 (`validation_failed`).
#[derive(ToResponse)]
pub struct InvalidFilter(pub Envelope);

/// `too_many_requests`: the caller's budget of such requests per minute is spent.
#[derive(ToResponse)]
#[response(headers(
    ("Retry-After" = u64, description = "Seconds to wait before trying again")
))]
pub struct TooManyRequests(pub Envelope);

/// `internal`: something failed on the server's side; the body says nothing of what.
#[derive(ToResponse)]
pub struct Internal(pub Envelope);

/// `busy`: no database connection within the acquire timeout, under load or while the
/// database is down (with `Retry-After`); `database_unavailable`: the database connection
/// failed during the request, a restart or an outage (with `Retry-After`; nothing was done);
/// `timeout`: the request took longer than the server allows (`REQUEST_TIMEOUT_MS`).
#[derive(ToResponse)]
#[response(headers(
    ("Retry-After" = u64, description = "With `busy` and `database_unavailable`: seconds to wait before trying again")
))]
pub struct Unavailable(pub Envelope);

// The error responses that several operations give alike, as one set each: an operation lists
// the sets that apply in its `responses(…)` after its own answers. A status two listed sets
// share means the same response in both.

/// What every operation that reaches the stores may refuse with: 500 `Internal`, 503
/// `Unavailable`.
pub struct ServerRefusals;

impl IntoResponses for ServerRefusals {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        refs([
            (500, Internal::response().0),
            (503, Unavailable::response().0),
        ])
    }
}

/// What every operation that needs a bearer token may refuse with: 401 `Unauthenticated`, and
/// [`ServerRefusals`].
pub struct SignedInRefusals;

impl IntoResponses for SignedInRefusals {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        with::<ServerRefusals>(refs([(401, Unauthenticated::response().0)]))
    }
}

/// What every admin operation may refuse with: 403 `AdminOnly`, and [`SignedInRefusals`].
pub struct AdminRefusals;

impl IntoResponses for AdminRefusals {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        with::<SignedInRefusals>(refs([(403, AdminOnly::response().0)]))
    }
}

/// What an operation on one job, menu or batch named by its id may refuse with: 404
/// `NotFound`, and [`SignedInRefusals`].
pub struct ItemRefusals;

impl IntoResponses for ItemRefusals {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        with::<SignedInRefusals>(refs([(404, NotFound::response().0)]))
    }
}

/// What every operation that reads a JSON body may refuse with before reading it: 400
/// `MalformedJson`, 413 `BodyTooLarge`, 415 `NotJson`.
pub struct JsonBodyRefusals;

impl IntoResponses for JsonBodyRefusals {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        refs([
            (400, MalformedJson::response().0),
            (413, BodyTooLarge::response().0),
            (415, NotJson::response().0),
        ])
    }
}

/// What an admin's paged list (the audit log, the batch runs) may refuse with: 400
/// `InvalidQuery`, 422 `InvalidPage`, and [`AdminRefusals`].
pub struct AdminPageRefusals;

impl IntoResponses for AdminPageRefusals {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        with::<AdminRefusals>(refs([
            (400, InvalidQuery::response().0),
            (422, InvalidPage::response().0),
        ]))
    }
}

/// What an admin's bulk action (requeue or cancel every job a filter matches) may refuse with:
/// 422 `InvalidFilter`, [`JsonBodyRefusals`] and [`AdminRefusals`].
pub struct BulkRefusals;

impl IntoResponses for BulkRefusals {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let responses = with::<JsonBodyRefusals>(refs([(422, InvalidFilter::response().0)]));
        with::<AdminRefusals>(responses)
    }
}

/// What cancelling one job (its owner's, or an admin's) may refuse with besides the caller's
/// role: 409 `job_finished`, and [`ItemRefusals`].
pub struct CancelRefusals;

impl IntoResponses for CancelRefusals {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let finished = ResponseBuilder::new()
            .description("`job_finished`: the job has finished and can no longer be cancelled")
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name(Envelope::name())))
                    .build(),
            );
        let own = BTreeMap::from([("409".to_string(), RefOr::T(finished.build()))]);
        with::<ItemRefusals>(own)
    }
}

/// `responses` with the set `S` added.
fn with<S: IntoResponses>(
    mut responses: BTreeMap<String, RefOr<Response>>,
) -> BTreeMap<String, RefOr<Response>> {
    responses.extend(S::responses());
    responses
}

/// Each status with a reference to the response component of that name, as
/// `(status = …, response = …)` gives it.
fn refs<const N: usize>(answers: [(u16, &str); N]) -> BTreeMap<String, RefOr<Response>> {
    answers
        .into_iter()
        .map(|(status, name)| {
            (
                status.to_string(),
                RefOr::Ref(Ref::from_response_name(name)),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn every_free_string_is_stated_to_refuse_nul_and_no_other_schema_changes() {
        let mut document = json!({
            "components": {"schemas": {"Filter": {"type": "object", "properties": {
                "error_code": {"type": ["string", "null"]},
                "status": {"type": "string", "enum": ["queued"]},
                "created_after": {"type": "string", "format": "date-time"},
                "cursor": {"type": "string", "pattern": "^[0-9]*$"},
                "names": {"type": "array", "items": {"type": "string"}},
                "days": {"type": "integer"},
            }}}},
            "paths": {"/x": {"get": {"parameters": [{"name": "q", "schema": {"type": "string"}}]}}},
        });
        state_no_nul(&mut document);
        let filter = &document["components"]["schemas"]["Filter"]["properties"];
        assert_eq!(filter["error_code"]["pattern"], NO_NUL);
        assert_eq!(filter["names"]["items"]["pattern"], NO_NUL);
        assert_eq!(
            document["paths"]["/x"]["get"]["parameters"][0]["schema"]["pattern"],
            NO_NUL
        );
        assert_eq!(filter["cursor"]["pattern"], "^[0-9]*$");
        for untouched in ["status", "created_after", "days"] {
            assert!(filter[untouched].get("pattern").is_none(), "{untouched}");
        }
    }
}
