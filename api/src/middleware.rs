//! The layers every request passes through, outermost first: a request id, a tracing span,
//! JSON bodies for the errors the layers below answer themselves, panic recovery, the body size
//! limit and the request timeout.

use std::any::Any;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{StatusCode, header};
use axum::middleware::{Next, from_fn};
use axum::response::{IntoResponse, Response};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use tracing::{Span, field};

use crate::error::ApiError;
use crate::state::AppState;

/// Wraps every route (and the fallbacks) of `router` in the layers.
pub fn apply(router: Router<AppState>, state: &AppState) -> Router<AppState> {
    // Three groups, since `json_error_bodies` needs the plain response body that each
    // `Router::layer` call restores.
    let answered_by_layers = ServiceBuilder::new()
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(RequestBodyLimitLayer::new(state.body_limit_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            state.request_timeout,
        ));
    let observed = ServiceBuilder::new()
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_request(())
                .on_response(record_response)
                // Failures are logged once, where they become a response (`ApiError`).
                .on_failure(()),
        );
    router
        .layer(answered_by_layers)
        .layer(from_fn(json_error_bodies))
        .layer(from_fn(count_requests))
        .layer(observed)
        // The limit above is the one that applies; axum's own default would cap it at 2 MiB.
        .layer(DefaultBodyLimit::disable())
}

/// Method, route template (not the path: ids would make every request unique) and request id.
/// Headers are left out: they carry tokens.
fn request_span(request: &Request) -> Span {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str);
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    tracing::info_span!(
        "http.request",
        http.method = %request.method(),
        http.route = route,
        request_id,
        http.status = field::Empty,
        latency_ms = field::Empty,
    )
}

fn record_response(response: &Response, latency: Duration, span: &Span) {
    span.record("http.status", response.status().as_u16());
    span.record("latency_ms", latency.as_millis() as u64);
    tracing::info!("request finished");
}

/// Counts requests and their latency by method, route template and status, for Prometheus.
async fn count_requests(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    let method = request.method().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let labels = [
        ("method", method),
        ("route", route),
        ("status", response.status().as_u16().to_string()),
    ];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels)
        .record(started.elapsed().as_secs_f64());
    response
}

/// Routing, the timeout and the body limit answer some errors with an empty or plain-text
/// body; this gives them the JSON shape every other error has. JSON errors and the dashboard's
/// HTML pages (its error pages included) are answers of their own and pass as they are.
async fn json_error_bodies(request: Request, next: Next) -> Response {
    let method = request.method().to_string();
    let path = request.uri().path().to_string();
    let response = next.run(request).await;
    let answered = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| {
            let v = v.as_bytes();
            v.starts_with(b"application/json") || v.starts_with(b"text/html")
        });
    if answered {
        return response;
    }
    let error = match response.status() {
        StatusCode::NOT_FOUND => ApiError::RouteNotFound { method, path },
        StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed,
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::BodyTooLarge,
        StatusCode::SERVICE_UNAVAILABLE => ApiError::Timeout,
        _ => return response,
    };
    let mut json = error.into_response();
    // The one header such an answer carries that the client needs: a 405's list of methods.
    if let Some(allow) = response.headers().get(header::ALLOW) {
        json.headers_mut().insert(header::ALLOW, allow.clone());
    }
    json
}

fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    ApiError::Internal(anyhow::anyhow!("handler panicked: {message}")).into_response()
}
