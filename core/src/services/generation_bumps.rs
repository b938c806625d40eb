//! Generation bumps that arrive while one is on its way to the cache ride the next round trip
//! together: under a burst of writes the cache sees one increment per distinct key per round
//! trip instead of one increment per write.
//!
//! Nothing waits to form a group: a lone bump goes out at once. A caller returns only after a
//! round trip that started after it queued its keys, so a writer still reads its own write.
//! Every caller may be cancelled at any await (a client that hangs up): the round it led or
//! was handed over passes to another waiting caller, so no one is stranded.

use std::collections::{BTreeSet, VecDeque};
use std::mem;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::channel::oneshot;

use crate::ports::Cache;

pub struct GenerationBumps {
    cache: Arc<dyn Cache>,
    ttl: Duration,
    queue: Mutex<Queue>,
}

#[derive(Default)]
struct Queue {
    /// Keys of the next round trip.
    keys: BTreeSet<String>,
    /// Callers whose keys are in `keys`.
    waiting: VecDeque<oneshot::Sender<Turn>>,
    /// A round trip is on its way; its leader starts the next one or hands over.
    busy: bool,
}

/// What a waiting caller is told.
enum Turn {
    /// A round trip that started after it queued has carried its keys.
    Done,
    /// It leads the next round trip.
    Lead,
}

impl GenerationBumps {
    /// Bumps expire `ttl` after their latest increment.
    pub fn new(cache: Arc<dyn Cache>, ttl: Duration) -> Self {
        GenerationBumps {
            cache,
            ttl,
            queue: Mutex::new(Queue::default()),
        }
    }

    /// Increments every key by one, with other callers' keys when they arrive together.
    /// A cache failure is logged: the pages these keys version expire on their own.
    pub async fn bump(&self, keys: &[String]) {
        loop {
            let waiter = {
                let mut queue = self.lock();
                queue.keys.extend(keys.iter().cloned());
                if queue.busy {
                    let (sender, receiver) = oneshot::channel();
                    queue.waiting.push_back(sender);
                    Some(Waiter {
                        bumps: self,
                        receiver,
                    })
                } else {
                    queue.busy = true;
                    None
                }
            };
            let Some(mut waiter) = waiter else {
                return self.lead().await;
            };
            match (&mut waiter.receiver).await {
                Ok(Turn::Done) => return,
                Ok(Turn::Lead) => return self.lead().await,
                // Its round's leader was cancelled, maybe before the keys reached the cache.
                Err(oneshot::Canceled) => continue,
            }
        }
    }

    /// Sends everything queued, answers the callers it carried, then hands over.
    async fn lead(&self) {
        let mut round = Round {
            bumps: self,
            carried: VecDeque::new(),
        };
        let keys: Vec<String> = {
            let mut queue = self.lock();
            round.carried = mem::take(&mut queue.waiting);
            mem::take(&mut queue.keys).into_iter().collect()
        };
        if !keys.is_empty()
            && let Err(err) = self.cache.increment_each(&keys, 1, self.ttl).await
        {
            tracing::warn!(error = %err, "cache invalidation failed");
        }
        for caller in mem::take(&mut round.carried) {
            let _ = caller.send(Turn::Done);
        }
        // `round` is dropped here and hands over.
    }

    /// Makes the longest-waiting live caller the next leader, or marks the queue idle.
    fn hand_over(&self) {
        let mut queue = self.lock();
        while let Some(next) = queue.waiting.pop_front() {
            if next.send(Turn::Lead).is_ok() {
                return;
            }
        }
        // Keys of callers that were cancelled go out with the next bump.
        queue.busy = false;
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The round trip being led. Dropped when it is over or its leader is cancelled: the callers
/// it carried and has not answered retry (their senders drop), and a waiting caller leads next.
struct Round<'a> {
    bumps: &'a GenerationBumps,
    carried: VecDeque<oneshot::Sender<Turn>>,
}

impl Drop for Round<'_> {
    fn drop(&mut self) {
        self.carried.clear();
        self.bumps.hand_over();
    }
}

/// A caller waiting for its round. If it is cancelled after being made leader, it passes the
/// lead on.
struct Waiter<'a> {
    bumps: &'a GenerationBumps,
    receiver: oneshot::Receiver<Turn>,
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        // Closing first makes a later hand-over pick someone else instead of this caller.
        self.receiver.close();
        if let Ok(Some(Turn::Lead)) = self.receiver.try_recv() {
            self.bumps.hand_over();
        }
    }
}

#[cfg(test)]
mod tests;
