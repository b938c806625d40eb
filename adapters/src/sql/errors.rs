//! Driver errors become `CoreError`s here, once. The driver detail (which may quote SQL or
//! values) goes to the log, never into the returned error.

use std::ops::Deref;

use dpg_core::error::CoreError;
use sea_orm::{DbErr, RuntimeErr, sqlx};

/// Translates a failed storage call; `operation` names it in the log and in the log-only
/// message of `CoreError::Internal`.
pub(super) fn storage_error(operation: &'static str, err: &DbErr) -> CoreError {
    if is_unavailable(err) {
        tracing::warn!(operation, error = %err, "database unavailable");
        CoreError::storage_unavailable()
    } else {
        tracing::error!(operation, error = %err, "database operation failed");
        CoreError::internal(format!("storage failure during {operation}"))
    }
}

/// True when the database cannot be reached (or is refusing work for now), as opposed to a
/// statement that failed.
pub(super) fn is_unavailable(err: &DbErr) -> bool {
    match err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
            sqlx_unavailable(e.deref())
        }
        _ => false,
    }
}

pub(super) fn is_unique_violation(err: &DbErr) -> bool {
    matches!(
        err.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    )
}

fn sqlx_unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                db.code().is_some_and(|code| sqlite_code_unavailable(&code))
            } else {
                db.code()
                    .is_some_and(|code| postgres_state_unavailable(&code))
            }
        }
        _ => false,
    }
}

/// SQLSTATE class 08 (connection exception), server shutting down or starting, too many
/// connections.
fn postgres_state_unavailable(state: &str) -> bool {
    state.starts_with("08") || matches!(state, "57P01" | "57P02" | "57P03" | "53300")
}

/// Primary result codes BUSY, LOCKED, IOERR, FULL, CANTOPEN (the extended code's low byte).
fn sqlite_code_unavailable(code: &str) -> bool {
    code.parse::<i32>()
        .is_ok_and(|extended| matches!(extended & 0xff, 5 | 6 | 10 | 13 | 14))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::ConnAcquireErr;

    #[test]
    fn connection_failures_are_unavailable() {
        assert!(is_unavailable(&DbErr::ConnectionAcquire(
            ConnAcquireErr::Timeout
        )));
        assert!(is_unavailable(&DbErr::Conn(RuntimeErr::Internal(
            "refused".into()
        ))));
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        let dropped = DbErr::Query(RuntimeErr::SqlxError(std::sync::Arc::new(sqlx::Error::Io(
            io,
        ))));
        assert!(is_unavailable(&dropped));
        assert!(!is_unavailable(&DbErr::Custom("bad".into())));
    }

    #[test]
    fn codes_that_mean_try_again() {
        assert!(postgres_state_unavailable("08006"));
        assert!(postgres_state_unavailable("57P01"));
        assert!(!postgres_state_unavailable("23505"));
        assert!(sqlite_code_unavailable("5"));
        assert!(sqlite_code_unavailable("517"), "SQLITE_BUSY_SNAPSHOT");
        assert!(!sqlite_code_unavailable("2067"), "unique violation");
    }

    #[test]
    fn internal_errors_carry_only_the_operation() {
        let err = storage_error(
            "insert item",
            &DbErr::Custom("INSERT INTO items VALUES (1)".into()),
        );
        match err {
            CoreError::Internal(message) => {
                assert_eq!(message, "storage failure during insert item");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
