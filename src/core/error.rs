//! The one error type core returns. Its [`Code`] is a gRPC status code, because that is the
//! vocabulary Nakama's clients understand; each door maps it to its own form exactly once
//! (HTTP status in `api::error`, envelope codes on the socket, Lua errors in the runtime).
//!
//! Internal detail (SQL errors, I/O) is logged where it happens and never put in `message`.

/// gRPC status codes (NAKAMA-SPEC §1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    Canceled = 1,
    Unknown = 2,
    InvalidArgument = 3,
    DeadlineExceeded = 4,
    NotFound = 5,
    AlreadyExists = 6,
    PermissionDenied = 7,
    ResourceExhausted = 8,
    FailedPrecondition = 9,
    Aborted = 10,
    OutOfRange = 11,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
    DataLoss = 15,
    Unauthenticated = 16,
}

impl Code {
    pub fn as_i32(self) -> i32 {
        self as i32
    }

    /// The code for a number, or `None` outside 1..=16.
    pub fn from_i32(n: i64) -> Option<Code> {
        use Code::*;
        Some(match n {
            1 => Canceled,
            2 => Unknown,
            3 => InvalidArgument,
            4 => DeadlineExceeded,
            5 => NotFound,
            6 => AlreadyExists,
            7 => PermissionDenied,
            8 => ResourceExhausted,
            9 => FailedPrecondition,
            10 => Aborted,
            11 => OutOfRange,
            12 => Unimplemented,
            13 => Internal,
            14 => Unavailable,
            15 => DataLoss,
            16 => Unauthenticated,
            _ => return None,
        })
    }
}

/// A failure a client or script may see: a code and a message safe to show.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct CoreError {
    pub code: Code,
    pub message: String,
}

pub type CoreResult<T> = Result<T, CoreError>;

impl CoreError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        CoreError {
            code,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(Code::InvalidArgument, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(Code::NotFound, message)
    }

    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(Code::Unauthenticated, message)
    }

    /// An internal failure: `detail` goes to the log, `public` to the caller.
    pub fn internal(public: impl Into<String>, detail: impl std::fmt::Display) -> Self {
        let public = public.into();
        tracing::error!(error = %detail, "{public}");
        Self::new(Code::Internal, public)
    }
}
