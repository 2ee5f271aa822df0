//! The one place HTTP status codes come from. Every rejection ends in [`recover`], which
//! writes Nakama's gateway error body `{"code":N,"message":"..."}` (NAKAMA-SPEC §1.2), adds
//! `WWW-Authenticate` on 401, and maps warp's own routing rejections to Nakama's 404 and 501.

use std::convert::Infallible;

use warp::http::{header, StatusCode};
use warp::reject::Reject;
use warp::reply::Response;
use warp::{Rejection, Reply};

use crate::core::{Code, CoreError};

/// An error on its way to the client.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: Code,
    pub message: String,
}

impl Reject for ApiError {}

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(Code::InvalidArgument, message)
    }

    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(Code::Unauthenticated, message)
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        ApiError {
            code: e.code,
            message: e.message,
        }
    }
}

impl From<CoreError> for Rejection {
    fn from(e: CoreError) -> Self {
        warp::reject::custom(ApiError::from(e))
    }
}

/// gRPC code -> HTTP status, as grpc-gateway maps them.
pub fn status_for(code: Code) -> StatusCode {
    match code {
        Code::Canceled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
            StatusCode::BAD_REQUEST
        }
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
    }
}

/// The gateway error response for `e`.
pub fn error_response(e: &ApiError) -> Response {
    let body = serde_json::json!({ "code": e.code.as_i32(), "message": e.message });
    let mut res =
        warp::reply::with_status(warp::reply::json(&body), status_for(e.code)).into_response();
    if e.code == Code::Unauthenticated {
        if let Ok(v) = header::HeaderValue::from_str(&e.message) {
            res.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
    }
    res
}

/// Turns every rejection into Nakama's error shape.
pub async fn recover(err: Rejection) -> Result<Response, Infallible> {
    let e = if let Some(e) = err.find::<ApiError>() {
        e.clone()
    } else if err.is_not_found() {
        ApiError::new(Code::NotFound, "Not Found")
    } else if err.find::<warp::reject::MethodNotAllowed>().is_some() {
        ApiError::new(Code::Unimplemented, "Method Not Allowed")
    } else if err.find::<warp::reject::PayloadTooLarge>().is_some() {
        ApiError::invalid("http: request body too large")
    } else if let Some(missing) = err.find::<warp::reject::MissingHeader>() {
        ApiError::invalid(format!("missing header {}", missing.name()))
    } else if err.find::<warp::filters::cors::CorsForbidden>().is_some() {
        ApiError::new(Code::PermissionDenied, "CORS request forbidden")
    } else if err.find::<warp::ws::MissingConnectionUpgrade>().is_some() {
        ApiError::invalid("WebSocket upgrade required")
    } else {
        tracing::warn!(rejection = ?err, "unhandled rejection");
        ApiError::new(Code::Internal, "Internal Server Error")
    };
    Ok(error_response(&e))
}
