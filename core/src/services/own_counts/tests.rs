use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use super::*;
use crate::ports::MockItemRepository;

/// A cache that can be switched off: every call then fails like an unreachable Redis.
#[derive(Default)]
struct SwitchableCache {
    entries: Mutex<HashMap<String, Vec<u8>>>,
    down: AtomicBool,
    /// The lifetime of every entry written.
    ttls: Mutex<Vec<Duration>>,
}

impl SwitchableCache {
    fn check(&self) -> Result<(), CoreError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(CoreError::Unavailable {
                code: crate::ErrorCode::StorageUnavailable,
                message: "cache down".into(),
            });
        }
        Ok(())
    }

    fn put(&self, key: &str, value: &str) {
        self.entries
            .lock()
            .expect("lock")
            .insert(key.into(), value.as_bytes().to_vec());
    }
}

#[async_trait]
impl Cache for SwitchableCache {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CoreError> {
        self.check()?;
        Ok(self.entries.lock().expect("lock").get(key).cloned())
    }
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, CoreError> {
        self.check()?;
        let entries = self.entries.lock().expect("lock");
        Ok(keys.iter().map(|k| entries.get(k).cloned()).collect())
    }
    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), CoreError> {
        self.check()?;
        self.ttls.lock().expect("lock").push(ttl);
        self.entries
            .lock()
            .expect("lock")
            .insert(key.into(), value.to_vec());
        Ok(())
    }
    async fn set_if_absent(&self, _: &str, _: &[u8], _: Duration) -> Result<bool, CoreError> {
        unimplemented!("not used by counts")
    }
    async fn increment(&self, _: &str, _: i64, _: Duration) -> Result<i64, CoreError> {
        unimplemented!("not used by counts")
    }
    async fn delete(&self, _: &str) -> Result<(), CoreError> {
        unimplemented!("not used by counts")
    }
    async fn delete_prefix(&self, _: &str) -> Result<u64, CoreError> {
        unimplemented!("not used by counts")
    }
    async fn ping(&self) -> Result<(), CoreError> {
        self.check()
    }
}

/// A repository whose `count` answers `answers` in turn and fails the test when asked more.
fn counting(answers: &[u64]) -> Arc<MockItemRepository> {
    let mut repository = MockItemRepository::new();
    let (answers, mut next) = (answers.to_vec(), 0);
    repository
        .expect_count()
        .times(answers.len())
        .returning(move |_| {
            next += 1;
            Ok(answers[next - 1])
        });
    Arc::new(repository)
}

fn filter() -> ItemFilter {
    ItemFilter::new("yellow_dot", "student")
}

#[tokio::test]
async fn a_count_is_kept_until_the_domain_generation_moves() {
    let cache = Arc::new(SwitchableCache::default());
    let counts = OwnCounts::new(counting(&[7, 8]), cache.clone());
    assert_eq!(counts.count(&filter()).await.expect("count"), 7);
    assert_eq!(counts.count(&filter()).await.expect("cached"), 7);
    assert_eq!(
        counts.count_at(&filter(), Some("0")).await.expect("cached"),
        7,
        "the generation read by a network read finds the same entry"
    );
    // A write here moves the generation on: the stored count no longer applies.
    cache.put(&network_generation_key("yellow_dot", "student"), "1");
    assert_eq!(counts.count(&filter()).await.expect("recount"), 8);
    assert_eq!(
        counts.count_at(&filter(), Some("1")).await.expect("cached"),
        8
    );
}

#[tokio::test]
async fn filters_differing_in_any_part_have_their_own_counts() {
    let cache = Arc::new(SwitchableCache::default());
    let counts = OwnCounts::new(counting(&[3, 2, 1]), cache);
    let mut typed = filter();
    typed.item_type = Some("profile_1.0".into());
    let mut owned = filter();
    owned.created_by = Some("alice".into());
    assert_eq!(counts.count(&filter()).await.expect("count"), 3);
    assert_eq!(counts.count(&typed).await.expect("count"), 2);
    assert_eq!(counts.count(&owned).await.expect("count"), 1);
    assert_eq!(counts.count(&typed).await.expect("cached"), 2);
}

#[tokio::test]
async fn without_a_cache_every_count_goes_to_the_database() {
    let cache = Arc::new(SwitchableCache::default());
    cache.down.store(true, Ordering::SeqCst);
    let counts = OwnCounts::new(counting(&[4, 5, 6]), cache);
    assert_eq!(counts.count(&filter()).await.expect("count"), 4);
    assert_eq!(counts.count(&filter()).await.expect("count"), 5);
    assert_eq!(counts.count_at(&filter(), None).await.expect("count"), 6);
}

#[tokio::test]
async fn a_corrupt_entry_is_counted_again() {
    let cache = Arc::new(SwitchableCache::default());
    cache.put(&own_count_key(&filter()), "many\n0");
    let counts = OwnCounts::new(counting(&[9]), cache);
    assert_eq!(counts.count(&filter()).await.expect("count"), 9);
    assert_eq!(counts.count(&filter()).await.expect("cached"), 9);
}
