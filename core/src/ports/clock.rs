use chrono::{DateTime, Utc};
use uuid::Uuid;

/// The current time. Services read time only through this port so tests can fix it.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait Clock: Send + Sync {
    /// Now, in UTC, truncated to milliseconds (what the wire and the database keep).
    fn now(&self) -> DateTime<Utc>;
}

/// Fresh identifiers for stored records.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait IdGenerator: Send + Sync {
    /// A new UUID, unique across instances (random or time-ordered with random bits).
    fn new_id(&self) -> Uuid;
}
