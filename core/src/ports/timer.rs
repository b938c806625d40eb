use std::time::Duration;

use async_trait::async_trait;

/// Waiting, for deadlines and polling in the use cases (which know no runtime).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait Timer: Send + Sync {
    /// Resolves after `duration`.
    async fn sleep(&self, duration: Duration);
}
