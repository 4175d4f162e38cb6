//! The OpenAPI document at `/openapi.json`: it is valid OpenAPI 3.1, it describes every route the
//! API serves and no other, and it says what clients rely on.

use std::collections::BTreeSet;
use std::path::Path;

use oas3::spec::{Operation, ParameterIn};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use testkit::{TestApi, error_of, spawn_api};

/// Routes served outside the JSON API, which the document rightly leaves out: the admin
/// dashboard's HTML pages (a UI for people, under `/admin`) and Swagger UI (`/docs`).
const UNDOCUMENTED_PREFIXES: [&str; 2] = ["/admin", "/docs"];

/// The document as served, as JSON and as parsed by `oas3`'s OpenAPI 3.1 model.
async fn document(app: &TestApi) -> (Value, oas3::Spec) {
    let response = app.get_anonymous("/openapi.json").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    let text = response.text().await.unwrap();
    let spec = oas3::from_json(&text).expect("the document fits the OpenAPI 3.1 model");
    (serde_json::from_str(&text).unwrap(), spec)
}

/// Every `(path, method, operation)` of the document.
fn operations(spec: &oas3::Spec) -> Vec<(String, Method, &Operation)> {
    spec.operations()
        .map(|(path, method, operation)| {
            let method = Method::from_bytes(method.as_str().as_bytes()).unwrap();
            (path, method, operation)
        })
        .collect()
}

/// Every `$ref` anywhere in `value`.
fn refs(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(target)) = map.get("$ref") {
                found.push(target.clone());
            }
            map.values().for_each(|v| refs(v, found));
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, found)),
        _ => {}
    }
}

/// Whether the answer is the router's own "no such route" (as opposed to a handler's 404
/// about a resource).
async fn unrouted(response: reqwest::Response) -> bool {
    match response.status() {
        StatusCode::METHOD_NOT_ALLOWED => true,
        StatusCode::NOT_FOUND => {
            let (_, error) = error_of(response).await;
            error["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("no route matches"))
        }
        _ => false,
    }
}

/// `path` with each `{parameter}` replaced by a fresh UUID (every path parameter is an id).
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|segment| {
            if segment.starts_with('{') {
                uuid::Uuid::now_v7().to_string()
            } else {
                segment.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test]
async fn the_served_document_is_valid_openapi_3_1() {
    let app = spawn_api(|_| {}).await;
    let (json, spec) = document(&app).await;

    let version = spec
        .validate_version()
        .expect("a supported OpenAPI version");
    assert_eq!((version.major, version.minor), (3, 1));
    assert!(!spec.info.title.is_empty() && !spec.info.version.is_empty());

    let mut targets = Vec::new();
    refs(&json, &mut targets);
    assert!(!targets.is_empty());
    for target in targets {
        let pointer = target
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("{target} points outside the document"));
        assert!(
            json.pointer(pointer).is_some(),
            "{target} resolves to nothing"
        );
    }

    let schemes = &spec.components.as_ref().unwrap().security_schemes;
    let mut operation_ids = BTreeSet::new();
    for (path, method, operation) in operations(&spec) {
        let at = format!("{method} {path}");
        let id = operation.operation_id.as_deref();
        assert!(
            id.is_some_and(|id| operation_ids.insert(id.to_string())),
            "{at}: operationId {id:?} missing or not unique"
        );
        assert!(!operation.tags.is_empty(), "{at}: no tag");

        let responses = operation.responses.as_ref().expect("responses");
        assert!(!responses.is_empty(), "{at}: no documented response");
        for (status, response) in responses {
            let response = response.resolve(&spec).expect("responses resolve");
            assert!(
                response
                    .description
                    .as_deref()
                    .is_some_and(|d| !d.is_empty()),
                "{at} {status}: no description"
            );
        }
        let documents = |status: &str| responses.contains_key(status);

        for requirement in &operation.security {
            for scheme in requirement.0.keys() {
                assert!(
                    schemes.contains_key(scheme),
                    "{at}: unknown scheme {scheme}"
                );
            }
        }

        let parameters: Vec<_> = operation
            .parameters
            .iter()
            .map(|p| p.resolve(&spec).expect("parameters resolve"))
            .collect();
        let in_path: BTreeSet<&str> = parameters
            .iter()
            .filter(|p| p.location == ParameterIn::Path)
            .map(|p| p.name.as_str())
            .collect();
        let templated: BTreeSet<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        assert_eq!(in_path, templated, "{at}: path parameters");

        // What can go wrong follows from what the operation takes: each extractor and layer
        // answers its own errors, and the document must say so.
        let can_fail = !operation.security.is_empty()
            || operation.request_body.is_some()
            || !parameters.is_empty();
        if can_fail {
            let error_statuses: Vec<_> = responses
                .keys()
                .filter(|s| s.starts_with('4') || s.starts_with('5'))
                .collect();
            assert!(!error_statuses.is_empty(), "{at}: no error response");
        }
        if !operation.security.is_empty() {
            assert!(
                documents("401"),
                "{at}: a token is needed, 401 undocumented"
            );
        }
        if operation.request_body.is_some() {
            for status in ["400", "413", "415", "422"] {
                assert!(
                    documents(status),
                    "{at}: takes a body, {status} undocumented"
                );
            }
        }
        if !in_path.is_empty() {
            assert!(documents("404"), "{at}: takes an id, 404 undocumented");
        }
        if parameters.iter().any(|p| p.location == ParameterIn::Query) {
            for status in ["400", "422"] {
                assert!(
                    documents(status),
                    "{at}: takes a query, {status} undocumented"
                );
            }
        }

        // Every error is the one error shape, but for /readyz, whose 503 is its own report.
        if path != "/readyz" {
            for status in responses.keys().filter(|s| s.as_str() >= "400") {
                let pointer = format!(
                    "/paths/{}/{}/responses/{status}",
                    path.replace('~', "~0").replace('/', "~1"),
                    method.as_str().to_lowercase()
                );
                let mut response = json.pointer(&pointer).unwrap();
                if let Some(target) = response["$ref"].as_str() {
                    response = json.pointer(&target[1..]).unwrap();
                }
                assert_eq!(
                    response["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ApiError",
                    "{at} {status}: {response}"
                );
            }
        }
    }
}

#[tokio::test]
async fn every_documented_operation_is_served() {
    let app = spawn_api(|_| {}).await;
    let (_, spec) = document(&app).await;
    // The check tells a missing route from a handler's answer.
    let missing = app.request(Method::GET, "/v1/no-such-route", None);
    assert!(unrouted(missing.send().await.unwrap()).await);
    let wrong_method = app.request(Method::PATCH, "/v1/me", None);
    assert!(unrouted(wrong_method.send().await.unwrap()).await);

    let operations = operations(&spec);
    assert!(!operations.is_empty());
    for (path, method, _) in operations {
        // No token and no body: every route answers without changing anything.
        let response = app
            .request(method.clone(), &concrete(&path), None)
            .send()
            .await
            .unwrap();
        assert!(
            !unrouted(response).await,
            "{method} {path} is documented but not served"
        );
    }
}

/// Routes can be registered without `utoipa_axum::routes!` only with a plain `.route(` (or
/// `.route_service(`, `.nest(`, `.nest_service(`), which puts nothing in the document: every
/// such call in the API's sources must name a documented path or an allowed undocumented one.
#[tokio::test]
async fn no_route_is_served_that_the_document_does_not_list() {
    let app = spawn_api(|_| {}).await;
    let (json, _) = document(&app).await;
    let documented: BTreeSet<&str> = json["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();

    let mut files = Vec::new();
    sources(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    assert!(files.iter().any(|f| f.ends_with("routes/mod.rs")));
    let mut registered = Vec::new();
    for file in &files {
        registered.extend(plain_registrations(file));
    }
    for (file, path) in registered {
        let path = path.unwrap_or_else(|| {
            panic!("{file}: a route registered with a path that is not a literal")
        });
        let allowed = UNDOCUMENTED_PREFIXES
            .iter()
            .any(|prefix| path == *prefix || path.starts_with(&format!("{prefix}/")));
        assert!(
            allowed || documented.contains(path.as_str()),
            "{file}: {path} is served but not in the OpenAPI document; register it with \
             utoipa_axum::routes! and a #[utoipa::path]"
        );
    }

    // What the allowance lets through really is the UI, not JSON, and it reads the document.
    let docs = app.get_anonymous("/docs/").await;
    assert_eq!(docs.status(), StatusCode::OK);
    assert!(
        docs.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let initializer = app.get_anonymous("/docs/swagger-initializer.js").await;
    assert_eq!(initializer.status(), StatusCode::OK);
    assert!(
        initializer
            .text()
            .await
            .unwrap()
            .contains("\"/openapi.json\"")
    );
}

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

/// The plain route registrations of a source file: `(file, Some(path))` for a literal path,
/// `(file, None)` for any other first argument. Comments are left out.
fn plain_registrations(file: &Path) -> Vec<(String, Option<String>)> {
    let code: String = std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .map(|line| line.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n");
    let name = file.display().to_string();
    let mut found = Vec::new();
    for call in [".route(", ".route_service(", ".nest(", ".nest_service("] {
        for (at, _) in code.match_indices(call) {
            let argument = code[at + call.len()..].trim_start();
            let path = argument
                .strip_prefix('"')
                .and_then(|rest| rest.split_once('"'))
                .map(|(path, _)| path.to_string());
            found.push((name.clone(), path));
        }
    }
    found
}

#[tokio::test]
async fn submitting_a_menu_documents_its_answers_and_the_idempotency_key() {
    let app = spawn_api(|_| {}).await;
    let (json, _) = document(&app).await;
    let submit = &json["paths"]["/v1/menus"]["post"];
    for status in ["202", "200", "400", "401", "413", "415", "422", "429"] {
        assert!(
            submit["responses"].get(status).is_some(),
            "POST /v1/menus: {status} undocumented"
        );
    }
    assert!(
        submit["responses"]["202"]["headers"]
            .get("Location")
            .is_some()
    );
    let parameters = submit["parameters"].as_array().unwrap();
    let key = parameters
        .iter()
        .find(|p| p["name"] == "Idempotency-Key")
        .expect("the Idempotency-Key header is documented");
    assert_eq!(key["in"], "header");
    assert_eq!(key["required"], false);
    assert_eq!(key["schema"]["maxLength"], 200);

    // The body is the menu options and the keys the handler takes itself, in one object that
    // refuses others.
    let body = &submit["requestBody"]["content"]["application/json"]["schema"];
    let name = body["$ref"].as_str().unwrap().rsplit('/').next().unwrap();
    let schema = &json["components"]["schemas"][name];
    for key in ["days", "macros", "client_id", "start_date"] {
        assert!(
            schema["properties"].get(key).is_some(),
            "{key} undocumented"
        );
    }
    assert_eq!(schema["additionalProperties"], false);
}

#[tokio::test]
async fn reading_a_job_documents_the_long_poll() {
    let app = spawn_api(|_| {}).await;
    let (json, _) = document(&app).await;
    let parameters = json["paths"]["/v1/jobs/{id}"]["get"]["parameters"]
        .as_array()
        .unwrap();
    let wait = parameters
        .iter()
        .find(|p| p["name"] == "wait")
        .expect("wait is documented");
    assert_eq!(wait["in"], "query");
    assert_eq!(
        (&wait["schema"]["minimum"], &wait["schema"]["maximum"]),
        (&0.into(), &25.into())
    );
}

#[tokio::test]
async fn the_error_schema_is_the_shape_errors_have() {
    let app = spawn_api(|_| {}).await;
    let (json, _) = document(&app).await;
    let documented: BTreeSet<&str> =
        json["components"]["schemas"]["ApiError"]["properties"]["error"]["properties"]
            .as_object()
            .expect("ApiError has an error object")
            .keys()
            .map(String::as_str)
            .collect();
    assert_eq!(
        documented,
        BTreeSet::from(["code", "message", "field", "details"])
    );

    let response = app.get_anonymous("/v1/me").await;
    let (status, error) = error_of(response).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let answered: BTreeSet<&str> = error
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(answered, documented);
}

#[tokio::test]
async fn the_weekly_batch_is_documented_for_admins_and_the_people_it_serves() {
    let app = spawn_api(|_| {}).await;
    let (json, _) = document(&app).await;
    let schemas = &json["components"]["schemas"];
    let days = json!([
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday"
    ]);
    assert_eq!(schemas["Weekday"]["enum"], days);
    for schema in ["Preferences", "PreferencesInput"] {
        let property = &schemas[schema]["properties"]["weekly_start_day"];
        assert!(
            property
                .to_string()
                .contains("#/components/schemas/Weekday"),
            "{schema}: {property}"
        );
    }
    assert!(schemas["Job"]["properties"].get("batch_id").is_some());

    let start = &json["paths"]["/v1/admin/batches"]["post"]["responses"];
    for status in ["202", "200", "403", "422"] {
        assert!(
            start.get(status).is_some(),
            "POST /v1/admin/batches: {status}"
        );
    }
    assert!(start["202"]["headers"].get("Location").is_some());
    let body = &start["200"]["content"]["application/json"]["schema"]["$ref"];
    let either = json.pointer(&body.as_str().unwrap()[1..]).unwrap()["anyOf"].to_string();
    assert!(
        either.contains("#/components/schemas/Plan")
            && either.contains("#/components/schemas/BatchSummary"),
        "{either}"
    );
    for path in [
        "/v1/jobs",
        "/v1/admin/batches/{id}",
        "/v1/admin/batches/{id}/requeue-failed",
    ] {
        assert!(json["paths"].get(path).is_some(), "{path}");
    }
}

#[tokio::test]
async fn costs_are_documented_as_dollars_wherever_they_are_shown() {
    let app = spawn_api(|_| {}).await;
    let (json, _) = document(&app).await;
    let schemas = &json["components"]["schemas"];
    // A schema's properties, with those of the schemas it is composed of (`allOf`, `$ref`).
    fn properties(json: &Value, schema: &Value, found: &mut serde_json::Map<String, Value>) {
        if let Some(target) = schema["$ref"].as_str() {
            properties(json, json.pointer(&target[1..]).unwrap(), found);
        }
        if let Some(own) = schema["properties"].as_object() {
            found.extend(own.clone());
        }
        for part in schema["allOf"].as_array().into_iter().flatten() {
            properties(json, part, found);
        }
    }
    for (schema, fields) in [
        ("Job", &["cost_usd", "batch_saved_usd"][..]),
        ("Attempt", &["cost_usd"]),
        ("BatchSummary", &["cost_usd", "saved_usd"]),
        ("AccountUsage", &["cost_usd", "batch_saved_usd"]),
        (
            "AdminAccount",
            &["email", "jobs", "cost_usd", "batch_saved_usd"],
        ),
        ("Throughput", &["cost_usd", "batch_saved_usd"]),
    ] {
        let mut found = serde_json::Map::new();
        properties(&json, &schemas[schema], &mut found);
        for field in fields {
            let property = found
                .get(*field)
                .unwrap_or_else(|| panic!("{schema}.{field} in {:?}", found.keys()));
            if field.ends_with("_usd") {
                assert_eq!(property["type"], "number", "{schema}.{field}: {property}");
            }
        }
        assert!(
            !found.keys().any(|k| k.ends_with("_micros")),
            "{schema} shows dollars, not micro-dollars: {:?}",
            found.keys()
        );
    }
    assert!(
        json["paths"]["/v1/admin/users/{id}"].get("get").is_some(),
        "an account with its cost, for admins"
    );
}
