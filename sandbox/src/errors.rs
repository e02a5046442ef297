//! Provider-style error bodies.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Which provider's error body to answer with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    Ripplenet,
    PaymentsDirect,
    Checkout,
}

/// An error body in the provider's style.
pub fn error(style: Style, status: StatusCode, code: &str, detail: &str) -> Response {
    match style {
        Style::Ripplenet => ripplenet(status, code, detail),
        Style::PaymentsDirect => payments_direct(status, code, detail),
        Style::Checkout => grpc(status, detail),
    }
}

/// A gRPC-style status body (`google.rpc.Status`), as Checkout's APIs answer errors.
pub fn grpc(status: StatusCode, message: &str) -> Response {
    let code = match status.as_u16() {
        400 => 3,  // INVALID_ARGUMENT
        401 => 16, // UNAUTHENTICATED
        403 => 7,  // PERMISSION_DENIED
        404 => 5,  // NOT_FOUND
        409 => 6,  // ALREADY_EXISTS
        429 => 8,  // RESOURCE_EXHAUSTED
        501 => 12, // UNIMPLEMENTED
        503 => 14, // UNAVAILABLE
        504 => 4,  // DEADLINE_EXCEEDED
        _ => 13,   // INTERNAL
    };
    (status, Json(json!({"code": code, "message": message, "details": []}))).into_response()
}

/// A Payments Direct `PaymentErrorResponse` (as the OpenAPI examples show it).
pub fn payments_direct(status: StatusCode, code: &str, detail: &str) -> Response {
    let kind = match status.as_u16() {
        400 => "USER_VALIDATION_ERROR",
        401 | 403 => "AUTHENTICATION_ERROR",
        404 => "NOT_FOUND",
        429 => "RATE_LIMIT_ERROR",
        _ => "SYSTEM_ERROR",
    };
    let body = json!({
        "status": status.as_u16(),
        "errors": {
            "code": code,
            "type": kind,
            "title": status.canonical_reason().unwrap_or("Error"),
            "description": detail,
            "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }
    });
    (status, Json(body)).into_response()
}

/// A RippleNet error (problem-details style with a RippleNet error code).
pub fn ripplenet(status: StatusCode, code: &str, detail: &str) -> Response {
    let body = json!({
        "type": format!("https://errors.ripplenet.ripple.com/error/{}", status.as_u16()),
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail,
        "ripplenet_error_code": code,
        "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    });
    (status, Json(body)).into_response()
}

/// An OAuth 2.0 token endpoint error (RFC 6749 §5.2).
pub fn oauth(status: StatusCode, error: &str, description: &str) -> Response {
    (status, Json(json!({"error": error, "error_description": description}))).into_response()
}

/// A fault-injected status, with Retry-After when given.
pub fn injected(style: Style, status: u16, retry_after: Option<u64>) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = error(style, code, "SANDBOX_FAULT", "fault injected by the sandbox");
    if let Some(seconds) = retry_after
        && let Ok(value) = HeaderValue::from_str(&seconds.to_string())
    {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// Headers sent, then the connection is dropped before the body: the client never gets
/// an answer (a lost response or a reset, as the client sees it).
pub fn dropped_connection() -> Response {
    let stream = futures_util::stream::once(async {
        Err::<axum::body::Bytes, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "sandbox fault: connection dropped",
        ))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(axum::body::Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// A response with exactly this status, body and content type (the `body` fault).
pub fn verbatim(status: u16, body: String, content_type: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let mut response = (status, body).into_response();
    if let Ok(value) = axum::http::HeaderValue::from_str(content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response
}
