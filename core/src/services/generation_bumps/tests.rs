use std::sync::Mutex as StdMutex;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Semaphore;

use super::*;
use crate::error::CoreError;

/// A cache whose increments are recorded, then held until the test lets one through.
struct GatedCache {
    rounds: StdMutex<Vec<Vec<String>>>,
    gate: Semaphore,
}

impl GatedCache {
    fn new() -> Arc<Self> {
        Arc::new(GatedCache {
            rounds: StdMutex::new(Vec::new()),
            gate: Semaphore::new(0),
        })
    }

    fn rounds(&self) -> Vec<Vec<String>> {
        self.rounds.lock().expect("rounds lock").clone()
    }

    fn release_one(&self) {
        self.gate.add_permits(1);
    }
}

#[async_trait]
impl Cache for GatedCache {
    async fn increment_each(
        &self,
        keys: &[String],
        _delta: i64,
        _ttl: Duration,
    ) -> Result<Vec<i64>, CoreError> {
        self.rounds.lock().expect("rounds lock").push(keys.to_vec());
        self.gate.acquire().await.expect("gate open").forget();
        Ok(vec![1; keys.len()])
    }

    async fn get(&self, _: &str) -> Result<Option<Vec<u8>>, CoreError> {
        unreachable!("bumps only increment")
    }
    async fn get_many(&self, _: &[String]) -> Result<Vec<Option<Vec<u8>>>, CoreError> {
        unreachable!("bumps only increment")
    }
    async fn set(&self, _: &str, _: &[u8], _: Duration) -> Result<(), CoreError> {
        unreachable!("bumps only increment")
    }
    async fn set_if_absent(&self, _: &str, _: &[u8], _: Duration) -> Result<bool, CoreError> {
        unreachable!("bumps only increment")
    }
    async fn increment(&self, _: &str, _: i64, _: Duration) -> Result<i64, CoreError> {
        unreachable!("bumps increment keys together")
    }
    async fn delete(&self, _: &str) -> Result<(), CoreError> {
        unreachable!("bumps only increment")
    }
    async fn delete_prefix(&self, _: &str) -> Result<u64, CoreError> {
        unreachable!("bumps only increment")
    }
    async fn ping(&self) -> Result<(), CoreError> {
        unreachable!("bumps only increment")
    }
}

fn keys(names: &[&str]) -> Vec<String> {
    names.iter().map(|name| name.to_string()).collect()
}

fn bumps(cache: &Arc<GatedCache>) -> Arc<GenerationBumps> {
    Arc::new(GenerationBumps::new(cache.clone(), Duration::from_secs(60)))
}

fn spawn_bump(
    bumps: &Arc<GenerationBumps>,
    names: &'static [&'static str],
) -> tokio::task::JoinHandle<()> {
    let bumps = bumps.clone();
    tokio::spawn(async move { bumps.bump(&keys(names)).await })
}

/// Yields until `condition` holds; fails the test after a generous bound.
async fn until(what: &str, condition: impl Fn() -> bool) {
    for _ in 0..10_000 {
        if condition() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("never happened: {what}");
}

fn waiting(bumps: &GenerationBumps) -> usize {
    bumps.lock().waiting.len()
}

#[tokio::test]
async fn a_lone_bump_goes_out_at_once() {
    let cache = GatedCache::new();
    let bumps = bumps(&cache);
    cache.release_one();
    bumps.bump(&keys(&["b", "a"])).await;
    assert_eq!(cache.rounds(), vec![keys(&["a", "b"])]);
    assert!(!bumps.lock().busy);
}

#[tokio::test]
async fn bumps_queued_behind_a_round_trip_share_the_next_one_with_each_key_once() {
    let cache = GatedCache::new();
    let bumps = bumps(&cache);
    let first = spawn_bump(&bumps, &["gen:x", "net"]);
    until("the first round trip starts", || cache.rounds().len() == 1).await;
    let second = spawn_bump(&bumps, &["gen:y", "net"]);
    let third = spawn_bump(&bumps, &["gen:x", "net"]);
    until("both wait", || waiting(&bumps) == 2).await;

    cache.release_one();
    first.await.expect("the bump task ends");
    until("the second round trip starts", || cache.rounds().len() == 2).await;
    assert!(!second.is_finished() && !third.is_finished());
    cache.release_one();
    second.await.expect("the bump task ends");
    third.await.expect("the bump task ends");

    assert_eq!(
        cache.rounds(),
        vec![keys(&["gen:x", "net"]), keys(&["gen:x", "gen:y", "net"])]
    );
    assert!(!bumps.lock().busy);
}

#[tokio::test]
async fn a_caller_queued_during_a_round_trip_waits_for_the_next_one() {
    let cache = GatedCache::new();
    let bumps = bumps(&cache);
    let first = spawn_bump(&bumps, &["a"]);
    until("the first round trip starts", || cache.rounds().len() == 1).await;
    let late = spawn_bump(&bumps, &["a"]);
    until("it waits", || waiting(&bumps) == 1).await;
    cache.release_one();
    first.await.expect("the bump task ends");
    // The first round trip may have left before its keys changed: the late caller is not
    // answered by it.
    until("the second round trip starts", || cache.rounds().len() == 2).await;
    assert!(!late.is_finished());
    cache.release_one();
    late.await.expect("the bump task ends");
}

#[tokio::test]
async fn a_cancelled_leader_hands_the_next_round_trip_to_a_waiting_caller() {
    let cache = GatedCache::new();
    let bumps = bumps(&cache);
    let leader = spawn_bump(&bumps, &["a"]);
    until("the first round trip starts", || cache.rounds().len() == 1).await;
    let waiter = spawn_bump(&bumps, &["b"]);
    until("it waits", || waiting(&bumps) == 1).await;

    leader.abort();
    assert!(
        leader
            .await
            .expect_err("the task was aborted")
            .is_cancelled()
    );
    until("the waiter leads", || cache.rounds().len() == 2).await;
    cache.release_one();
    waiter.await.expect("the bump task ends");
    assert_eq!(cache.rounds()[1], keys(&["b"]));
    assert!(!bumps.lock().busy);
}

#[tokio::test]
async fn callers_carried_by_a_cancelled_round_trip_send_their_keys_again() {
    let cache = GatedCache::new();
    let bumps = bumps(&cache);
    let first = spawn_bump(&bumps, &["a"]);
    until("the first round trip starts", || cache.rounds().len() == 1).await;
    let second_leader = spawn_bump(&bumps, &["b"]);
    until("one waits", || waiting(&bumps) == 1).await;
    let carried = spawn_bump(&bumps, &["c"]);
    until("two wait", || waiting(&bumps) == 2).await;
    cache.release_one();
    first.await.expect("the bump task ends");
    until("the second round trip starts", || cache.rounds().len() == 2).await;
    assert_eq!(cache.rounds()[1], keys(&["b", "c"]));

    second_leader.abort();
    assert!(
        second_leader
            .await
            .expect_err("the task was aborted")
            .is_cancelled()
    );
    until("the carried caller sends again", || {
        cache.rounds().len() == 3
    })
    .await;
    cache.release_one();
    carried.await.expect("the bump task ends");
    assert_eq!(cache.rounds()[2], keys(&["c"]));
    assert!(!bumps.lock().busy);
}

#[tokio::test]
async fn a_cancelled_waiter_is_skipped_when_the_lead_is_handed_over() {
    let cache = GatedCache::new();
    let bumps = bumps(&cache);
    let first = spawn_bump(&bumps, &["a"]);
    until("the first round trip starts", || cache.rounds().len() == 1).await;
    let gone = spawn_bump(&bumps, &["b"]);
    until("one waits", || waiting(&bumps) == 1).await;
    let next = spawn_bump(&bumps, &["c"]);
    until("two wait", || waiting(&bumps) == 2).await;
    gone.abort();
    assert!(gone.await.expect_err("the task was aborted").is_cancelled());

    cache.release_one();
    first.await.expect("the bump task ends");
    until("the live caller leads", || cache.rounds().len() == 2).await;
    cache.release_one();
    next.await.expect("the bump task ends");
    // The cancelled caller's key still goes out: harmless, and nothing is lost.
    assert_eq!(cache.rounds()[1], keys(&["b", "c"]));
    assert!(!bumps.lock().busy);
}

#[test]
fn a_caller_dropped_right_after_being_made_leader_passes_the_lead_on() {
    let cache = GatedCache::new();
    let bumps = GenerationBumps::new(cache.clone(), Duration::from_secs(60));
    bumps.lock().busy = true;
    let (sender, receiver) = oneshot::channel();
    let waiter = Waiter {
        bumps: &bumps,
        receiver,
    };
    assert!(sender.send(Turn::Lead).is_ok());
    drop(waiter);
    // No one else waits, so the queue is idle again instead of busy forever.
    assert!(!bumps.lock().busy);
}
