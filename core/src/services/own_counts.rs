//! This instance's item counts per filter, cached under the domain's write generation. Any
//! item write here moves that generation on, so a count found at the current generation is
//! exact. Network reads (this instance's share) and the peer routes (`count_local`, the
//! `total` of `fetch_local`) share the entries: without them every peer page counted the
//! whole domain again.

use std::sync::Arc;
use std::time::Duration;

use super::page_cache::{generation_of, network_generation_key, tagged, value_at};
use crate::error::CoreError;
use crate::model::ItemFilter;
use crate::ports::{Cache, ItemRepository};

/// How long a count stays cached. Exactness comes from the generation; this bounds what
/// counts of filters nobody asks for any more occupy, also when a peer sends many distinct
/// filters (one entry per filter for at most this long).
pub const OWN_COUNT_TTL: Duration = Duration::from_secs(60);

pub struct OwnCounts {
    repository: Arc<dyn ItemRepository>,
    cache: Arc<dyn Cache>,
}

impl OwnCounts {
    pub fn new(repository: Arc<dyn ItemRepository>, cache: Arc<dyn Cache>) -> Self {
        OwnCounts { repository, cache }
    }

    /// The number of items matching `filter`: the domain's generation and a stored count in
    /// one cache round trip, the database only when the count is not stored at that
    /// generation. Counts straight from the database when the cache is down.
    pub async fn count(&self, filter: &ItemFilter) -> Result<u64, CoreError> {
        let keys = [
            network_generation_key(&filter.network, &filter.domain),
            own_count_key(filter),
        ];
        let values = match self.cache.get_many(&keys).await {
            Ok(values) => values,
            Err(err) => {
                tracing::warn!(error = %err, "cache unavailable; counting uncached");
                return self.repository.count(filter).await;
            }
        };
        let mut values = values.into_iter();
        let Some(generation) = generation_of(values.next().flatten()) else {
            return self.repository.count(filter).await;
        };
        if let Some(count) = values
            .next()
            .flatten()
            .and_then(|s| parse_at(s, &generation))
        {
            return Ok(count);
        }
        self.count_and_store(filter, &generation).await
    }

    /// [`count`](Self::count) when the caller already read the domain's generation
    /// (`None`: the cache is down, so the count is neither looked up nor stored).
    pub async fn count_at(
        &self,
        filter: &ItemFilter,
        generation: Option<&str>,
    ) -> Result<u64, CoreError> {
        let Some(generation) = generation else {
            return self.repository.count(filter).await;
        };
        if let Ok(Some(stored)) = self.cache.get(&own_count_key(filter)).await
            && let Some(count) = parse_at(stored, generation)
        {
            return Ok(count);
        }
        self.count_and_store(filter, generation).await
    }

    async fn count_and_store(
        &self,
        filter: &ItemFilter,
        generation: &str,
    ) -> Result<u64, CoreError> {
        let count = self.repository.count(filter).await?;
        let stored = tagged(count.to_string().as_bytes(), generation);
        if let Err(err) = self
            .cache
            .set(&own_count_key(filter), &stored, OWN_COUNT_TTL)
            .await
        {
            tracing::warn!(error = %err, "cache write of a count failed");
        }
        Ok(count)
    }
}

fn parse_at(stored: Vec<u8>, generation: &str) -> Option<u64> {
    let raw = value_at(stored, generation)?;
    std::str::from_utf8(&raw).ok()?.parse().ok()
}

/// This instance's count for `filter`, stored as `<count>\n<generation>`.
pub(crate) fn own_count_key(filter: &ItemFilter) -> String {
    format!(
        "network-own-count:{}:{}:{}",
        filter.network,
        filter.domain,
        filter.fingerprint()
    )
}

#[cfg(test)]
mod tests;
