/// Randomness for jitter, injectable so tests are deterministic.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait Random: Send + Sync {
    /// A uniformly distributed integer in `[0, max]` (both ends included).
    fn up_to(&self, max: u64) -> u64;
}
