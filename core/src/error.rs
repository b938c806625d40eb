//! Domain errors and the one table of stable machine codes.
//!
//! `CoreError` carries domain meaning only. Adapters translate driver errors into these
//! variants (logging the driver detail themselves); the HTTP layer maps each variant to a
//! status code exactly once.

use serde::Serialize;

use crate::model::Binding;

/// Stable machine codes sent to clients in the `error` (or `code`) field.
///
/// Codes shared with the reference implementation keep its spelling so that its clients and
/// peers keep working; the others are new.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    // Shared with the reference implementation.
    Unauthorized,
    InvalidItemState,
    UnservedDomainBinding,
    ItemAlreadyExists,
    ItemNotFoundOrForbidden,
    InvalidInput,
    InternalServerError,
    RemoteSchemaFetchFailed,
    // New in this implementation.
    NetworkNotConfigured,
    DomainNotFound,
    ItemTypeNotFound,
    ImmutableField,
    InvalidGeoFilter,
    InvalidStateFilter,
    InvalidPagination,
    SchemaReloadFailed,
    StorageUnavailable,
    NoPeerAvailable,
    SchemaUrlForbidden,
    InvalidSchemaRef,
    // Accounts (Better Auth's spelling where it has one).
    NotOwner,
    AdminRequired,
    InvalidApiKey,
    InvalidEmailOrPassword,
    InvalidPassword,
    InvalidEmail,
    PasswordTooShort,
    PasswordTooLong,
    UserAlreadyExists,
    SignupDisabled,
    NameRequired,
    KeyNotFound,
    RateLimited,
    CorsOriginNotAllowed,
    InvalidPreflight,
    PrivateFieldFilter,
    InvalidCursor,
    // Peer trust.
    SignatureRequired,
    SignatureInvalid,
    SignatureExpired,
    DigestMismatch,
    UnknownSigningKey,
    WrongAuthority,
    NonceReplayed,
    SignerNotMember,
    SignerNotInstance,
    // Actions and events (the reference's spelling).
    SourceItemNotFound,
    TargetItemNotFound,
    InvalidTargetItem,
    InvalidTargetInstance,
    InvalidActionRequest,
    InvalidActionEvent,
    InvalidEventRequest,
    ActionNotFound,
    TargetInstanceUnavailable,
    // Actions and events (new).
    IdempotencyKeyReused,
    EventOriginForbidden,
}

impl ErrorCode {
    /// The wire spelling of the code.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::InvalidItemState => "INVALID_ITEM_STATE",
            ErrorCode::UnservedDomainBinding => "UNSERVED_DOMAIN_BINDING",
            ErrorCode::ItemAlreadyExists => "ITEM_ALREADY_EXISTS",
            ErrorCode::ItemNotFoundOrForbidden => "ITEM_NOT_FOUND_OR_FORBIDDEN",
            ErrorCode::InvalidInput => "INVALID_INPUT",
            ErrorCode::InternalServerError => "INTERNAL_SERVER_ERROR",
            ErrorCode::RemoteSchemaFetchFailed => "REMOTE_SCHEMA_FETCH_FAILED",
            ErrorCode::NetworkNotConfigured => "NETWORK_NOT_CONFIGURED",
            ErrorCode::DomainNotFound => "DOMAIN_NOT_FOUND",
            ErrorCode::ItemTypeNotFound => "ITEM_TYPE_NOT_FOUND",
            ErrorCode::ImmutableField => "IMMUTABLE_FIELD",
            ErrorCode::InvalidGeoFilter => "INVALID_GEO_FILTER",
            ErrorCode::InvalidStateFilter => "INVALID_STATE_FILTER",
            ErrorCode::InvalidPagination => "INVALID_PAGINATION",
            ErrorCode::SchemaReloadFailed => "SCHEMA_RELOAD_FAILED",
            ErrorCode::StorageUnavailable => "STORAGE_UNAVAILABLE",
            ErrorCode::NoPeerAvailable => "NO_PEER_AVAILABLE",
            ErrorCode::NotOwner => "NOT_OWNER",
            ErrorCode::AdminRequired => "ADMIN_REQUIRED",
            ErrorCode::InvalidApiKey => "INVALID_API_KEY",
            ErrorCode::InvalidEmailOrPassword => "INVALID_EMAIL_OR_PASSWORD",
            ErrorCode::InvalidPassword => "INVALID_PASSWORD",
            ErrorCode::InvalidEmail => "INVALID_EMAIL",
            ErrorCode::PasswordTooShort => "PASSWORD_TOO_SHORT",
            ErrorCode::PasswordTooLong => "PASSWORD_TOO_LONG",
            ErrorCode::UserAlreadyExists => "USER_ALREADY_EXISTS",
            ErrorCode::SignupDisabled => "SIGNUP_DISABLED",
            ErrorCode::NameRequired => "NAME_REQUIRED",
            ErrorCode::KeyNotFound => "KEY_NOT_FOUND",
            ErrorCode::RateLimited => "RATE_LIMITED",
            ErrorCode::CorsOriginNotAllowed => "CORS_ORIGIN_NOT_ALLOWED",
            ErrorCode::InvalidPreflight => "INVALID_PREFLIGHT",
            ErrorCode::PrivateFieldFilter => "PRIVATE_FIELD_FILTER",
            ErrorCode::InvalidCursor => "INVALID_CURSOR",
            ErrorCode::SignatureRequired => "SIGNATURE_REQUIRED",
            ErrorCode::SignatureInvalid => "SIGNATURE_INVALID",
            ErrorCode::SignatureExpired => "SIGNATURE_EXPIRED",
            ErrorCode::DigestMismatch => "DIGEST_MISMATCH",
            ErrorCode::UnknownSigningKey => "UNKNOWN_SIGNING_KEY",
            ErrorCode::WrongAuthority => "WRONG_AUTHORITY",
            ErrorCode::NonceReplayed => "NONCE_REPLAYED",
            ErrorCode::SignerNotMember => "SIGNER_NOT_MEMBER",
            ErrorCode::SignerNotInstance => "SIGNER_NOT_INSTANCE",
            ErrorCode::SchemaUrlForbidden => "SCHEMA_URL_FORBIDDEN",
            ErrorCode::InvalidSchemaRef => "INVALID_SCHEMA_REF",
            ErrorCode::SourceItemNotFound => "SOURCE_ITEM_NOT_FOUND",
            ErrorCode::TargetItemNotFound => "TARGET_ITEM_NOT_FOUND",
            ErrorCode::InvalidTargetItem => "INVALID_TARGET_ITEM",
            ErrorCode::InvalidTargetInstance => "INVALID_TARGET_INSTANCE",
            ErrorCode::InvalidActionRequest => "INVALID_ACTION_REQUEST",
            ErrorCode::InvalidActionEvent => "INVALID_ACTION_EVENT",
            ErrorCode::InvalidEventRequest => "INVALID_EVENT_REQUEST",
            ErrorCode::ActionNotFound => "ACTION_NOT_FOUND",
            ErrorCode::TargetInstanceUnavailable => "TARGET_INSTANCE_UNAVAILABLE",
            ErrorCode::IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
            ErrorCode::EventOriginForbidden => "EVENT_ORIGIN_FORBIDDEN",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One failed rule of a JSON Schema (or of our own input checks), located by JSON Pointer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// JSON Pointer into the checked document (`""` for the root).
    pub path: String,
    pub message: String,
}

/// What the 403 `UNSERVED_DOMAIN_BINDING` body reports (reference-contract §0.5).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnservedBinding {
    pub requested: Binding,
    pub allowed_bindings: Vec<String>,
    pub allowed_networks: Vec<String>,
    pub allowed_domains: Vec<String>,
    pub allowed_item_types_by_binding: Vec<(String, Vec<String>)>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CoreError {
    /// The input breaks a rule; 400.
    #[error("{code}: {message}")]
    Invalid {
        code: ErrorCode,
        message: String,
        violations: Vec<Violation>,
    },
    /// The caller is not authenticated; 401.
    #[error("{code}: {message}")]
    Unauthorized { code: ErrorCode, message: String },
    /// The caller may not do this; 403.
    #[error("{code}: {message}")]
    Forbidden { code: ErrorCode, message: String },
    /// This instance does not serve the requested network/domain; 403 with details.
    #[error("unserved binding {}", .0.requested.key())]
    UnservedBinding(Box<UnservedBinding>),
    /// The thing does not exist (or is not visible to the caller); 404.
    #[error("{code}: {message}")]
    NotFound { code: ErrorCode, message: String },
    /// The thing already exists; 409.
    #[error("{code}: {message}")]
    Conflict { code: ErrorCode, message: String },
    /// Too many requests in the current window; 429 with `Retry-After`.
    #[error("rate limited for {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    /// A remote dependency (registry, peer) failed; 502.
    #[error("{code}: {message}")]
    Upstream { code: ErrorCode, message: String },
    /// A local dependency (database, cache) is unreachable; 503. The message is safe to show.
    #[error("{code}: {message}")]
    Unavailable { code: ErrorCode, message: String },
    /// A bug or an unexpected state; 500. The message is for logs only, never for clients.
    #[error("internal: {0}")]
    Internal(String),
}

impl CoreError {
    pub fn invalid(code: ErrorCode, message: impl Into<String>) -> Self {
        CoreError::Invalid {
            code,
            message: message.into(),
            violations: Vec::new(),
        }
    }

    pub fn invalid_with(
        code: ErrorCode,
        message: impl Into<String>,
        violations: Vec<Violation>,
    ) -> Self {
        CoreError::Invalid {
            code,
            message: message.into(),
            violations,
        }
    }

    pub fn not_found(code: ErrorCode, message: impl Into<String>) -> Self {
        CoreError::NotFound {
            code,
            message: message.into(),
        }
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        CoreError::Unauthorized {
            code: ErrorCode::Unauthorized,
            message: message.into(),
        }
    }

    pub fn storage_unavailable() -> Self {
        CoreError::Unavailable {
            code: ErrorCode::StorageUnavailable,
            message: "The storage backend is unavailable; try again shortly".to_string(),
        }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        CoreError::Internal(message.into())
    }

    /// The machine code sent to clients.
    pub fn code(&self) -> ErrorCode {
        match self {
            CoreError::Invalid { code, .. }
            | CoreError::Unauthorized { code, .. }
            | CoreError::Forbidden { code, .. }
            | CoreError::NotFound { code, .. }
            | CoreError::Conflict { code, .. }
            | CoreError::Upstream { code, .. }
            | CoreError::Unavailable { code, .. } => *code,
            CoreError::UnservedBinding(_) => ErrorCode::UnservedDomainBinding,
            CoreError::RateLimited { .. } => ErrorCode::RateLimited,
            CoreError::Internal(_) => ErrorCode::InternalServerError,
        }
    }

    /// Rewrites the code of a 400, keeping message and violations (routes of the reference
    /// report the same schema failure under different codes).
    pub fn with_invalid_code(self, new_code: ErrorCode) -> Self {
        match self {
            CoreError::Invalid {
                message,
                violations,
                ..
            } => CoreError::Invalid {
                code: new_code,
                message,
                violations,
            },
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_serialize_as_their_wire_spelling() {
        for code in [
            ErrorCode::Unauthorized,
            ErrorCode::InvalidItemState,
            ErrorCode::UnservedDomainBinding,
            ErrorCode::ItemNotFoundOrForbidden,
            ErrorCode::NetworkNotConfigured,
            ErrorCode::NoPeerAvailable,
            ErrorCode::SchemaUrlForbidden,
            ErrorCode::InvalidSchemaRef,
            ErrorCode::InvalidActionEvent,
            ErrorCode::TargetInstanceUnavailable,
        ] {
            let json = serde_json::to_value(code).expect("serializes");
            assert_eq!(json, serde_json::Value::String(code.as_str().to_string()));
        }
    }

    #[test]
    fn with_invalid_code_keeps_message_and_violations() {
        let err = CoreError::invalid_with(
            ErrorCode::InvalidItemState,
            "Invalid item_state: x",
            vec![Violation {
                path: "/a".into(),
                message: "x".into(),
            }],
        )
        .with_invalid_code(ErrorCode::InvalidInput);
        assert_eq!(err.code(), ErrorCode::InvalidInput);
        match err {
            CoreError::Invalid {
                message,
                violations,
                ..
            } => {
                assert_eq!(message, "Invalid item_state: x");
                assert_eq!(violations.len(), 1);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
