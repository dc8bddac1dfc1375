//! The ways a request can fail, one variant per outcome that Vault knows.
//!
//! Each variant maps onto one case of the WIT `error` variant, which the host turns into
//! Vault's own outcome and so into the HTTP status the user sees. Messages are lowercase, name
//! the value that was wrong and say what to do next.

use thiserror::Error;

/// Why a request failed.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum Error {
    /// No path of this backend matches (404).
    #[error("unsupported path")]
    UnsupportedPath,

    /// The path exists but does not support the operation (405).
    #[error("unsupported operation")]
    UnsupportedOperation,

    /// The user's input is wrong (400).
    #[error("{0}")]
    BadRequest(String),

    /// The caller may not do this (403).
    #[error("permission denied")]
    PermissionDenied,

    /// Any other HTTP status with its message, such as 502 when an upstream API failed.
    #[error("{message}")]
    Coded { status: u16, message: String },

    /// The backend failed (500). The text says what was being done.
    #[error("{0}")]
    Internal(String),
}

impl Error {
    /// Builds a 400 error from any message.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::BadRequest(message.into())
    }

    /// Builds a 500 error from any message.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::Internal(message.into())
    }

    /// Builds an error with an explicit HTTP status.
    pub fn coded(status: u16, message: impl Into<String>) -> Self {
        Self::Coded {
            status,
            message: message.into(),
        }
    }

    /// Rewrites the message of a variant that carries one; the others stay as they are.
    pub fn map_message(self, rewrite: impl FnOnce(String) -> String) -> Self {
        match self {
            Self::BadRequest(message) => Self::BadRequest(rewrite(message)),
            Self::Coded { status, message } => Self::Coded {
                status,
                message: rewrite(message),
            },
            Self::Internal(message) => Self::Internal(rewrite(message)),
            other => other,
        }
    }

    /// The HTTP status Vault answers with for this error.
    pub fn status(&self) -> u16 {
        match self {
            Self::UnsupportedPath => 404,
            Self::UnsupportedOperation => 405,
            Self::BadRequest(_) => 400,
            Self::PermissionDenied => 403,
            Self::Coded { status, .. } => *status,
            Self::Internal(_) => 500,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_status_per_variant() {
        let cases = [
            (Error::UnsupportedPath, 404),
            (Error::UnsupportedOperation, 405),
            (Error::bad_request("x"), 400),
            (Error::PermissionDenied, 403),
            (Error::coded(504, "x"), 504),
            (Error::internal("x"), 500),
        ];
        for (error, status) in cases {
            assert_eq!(error.status(), status, "status of {error:?}");
        }
    }

    #[test]
    fn error_map_message_keeps_status() {
        let rewritten =
            Error::coded(504, "slow").map_message(|message| format!("{message}; retry"));
        assert_eq!(rewritten, Error::coded(504, "slow; retry"));
        assert_eq!(
            Error::UnsupportedPath.map_message(|_| "x".into()),
            Error::UnsupportedPath
        );
    }

    #[test]
    fn error_display_is_the_message() {
        assert_eq!(Error::coded(502, "kong failed").to_string(), "kong failed");
        assert_eq!(Error::UnsupportedPath.to_string(), "unsupported path");
    }
}
