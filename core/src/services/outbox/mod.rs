//! Delivery of the transactional outbox: events stored here reach the source instance's
//! `POST /api/v1/event/store`, at least once, with backoff, per-peer limits and dead letters.
//! The receiver is idempotent, so a duplicate (after a crash between send and mark) is
//! harmless.
//!
//! Entries that wait for a free slot of a healthy destination ride along with the next
//! request to it, as one batch (`POST /api/v1/event/store_batch`), when the destination has
//! that route; each entry then gets the verdict of its own status in the answer. Probes of
//! a failing destination always carry one event.
//!
//! Claims are global and oldest-due first. A slow but healthy peer with a long backlog can
//! hold up to `max_in_flight` claimed entries while it works through them, so other peers'
//! entries wait behind it in due order (a failing peer holds nothing: its backlog is
//! deferred). Skipping saturated peers in the claim itself would need the port to take a
//! list of destinations to leave out.

mod destinations;
mod dispatcher;
mod notify;
pub mod policy;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use std::sync::atomic::{AtomicBool, Ordering};

use futures::task::AtomicWaker;

pub use dispatcher::{DrainReport, OutboxDeps, OutboxDispatcher, OutboxStats};
pub use notify::NotifyingActions;
pub use policy::{OutboxSettings, Verdict, classify};

use crate::error::CoreError;
use crate::model::{OutboxCounts, OutboxEntry};
use crate::ports::{Clock, Outbox};

/// Told when a peer proved it is up (a valid signed request from it), so that deliveries
/// waiting for it go at once. Kept as a trait so the HTTP layer does not know the
/// dispatcher.
pub trait PeerContacts: Send + Sync {
    /// `instance_url`: the peer's base URL as the Network Schema lists it.
    fn peer_contacted(&self, instance_url: &str);
}

/// A wake-up flag with one waiter: any number of raises before the waiter looks count as
/// one (one look at the outbox covers every new row), so nothing queues up.
#[derive(Debug, Default)]
pub(crate) struct Signal {
    raised: AtomicBool,
    waker: AtomicWaker,
}

impl Signal {
    fn raise(&self) {
        self.raised.store(true, Ordering::SeqCst);
        self.waker.wake();
    }

    /// Resolves once the flag is raised (at once if it already is), and lowers it.
    pub(crate) fn raised(&self) -> impl std::future::Future<Output = ()> + '_ {
        std::future::poll_fn(move |cx| {
            self.waker.register(cx.waker());
            if self.raised.swap(false, Ordering::SeqCst) {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        })
    }
}

/// Wakes the dispatcher when an outbox row was written, so it is sent without waiting for
/// the next poll.
#[derive(Debug, Clone)]
pub struct OutboxNotifier {
    signal: Option<Arc<Signal>>,
}

impl OutboxNotifier {
    pub(crate) fn new(signal: Arc<Signal>) -> Self {
        OutboxNotifier {
            signal: Some(signal),
        }
    }

    /// A notifier that wakes nobody (no dispatcher in this process: the poll of another
    /// replica finds the row).
    pub fn detached() -> Self {
        OutboxNotifier { signal: None }
    }

    pub fn notify(&self) {
        if let Some(signal) = &self.signal {
            signal.raise();
        }
    }
}

/// Operators' view of the outbox: counts, undelivered entries, redrive of dead letters.
pub struct OutboxAdmin {
    outbox: Arc<dyn Outbox>,
    clock: Arc<dyn Clock>,
    notifier: OutboxNotifier,
    dispatcher: Option<Arc<OutboxDispatcher>>,
}

/// Counts and the newest undelivered entries.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxOverview {
    pub counts: OutboxCounts,
    pub undelivered: Vec<OutboxEntry>,
    pub at: DateTime<Utc>,
}

impl OutboxAdmin {
    pub fn new(outbox: Arc<dyn Outbox>, clock: Arc<dyn Clock>, notifier: OutboxNotifier) -> Self {
        OutboxAdmin {
            outbox,
            clock,
            notifier,
            dispatcher: None,
        }
    }

    /// Readiness reads the counts this dispatcher keeps fresh instead of counting rows on
    /// every probe.
    pub fn with_dispatcher(mut self, dispatcher: Arc<OutboxDispatcher>) -> Self {
        self.notifier = dispatcher.notifier();
        self.dispatcher = Some(dispatcher);
        self
    }

    /// Current totals: the dispatcher's last read when there is one, else read now.
    pub async fn counts(&self) -> Result<OutboxCounts, CoreError> {
        if let Some(counts) = self.dispatcher.as_ref().and_then(|d| d.stats().counts) {
            return Ok(counts);
        }
        self.outbox.counts(self.clock.now()).await
    }

    pub async fn overview(&self, limit: u32) -> Result<OutboxOverview, CoreError> {
        let now = self.clock.now();
        let (counts, undelivered) =
            futures::try_join!(self.outbox.counts(now), self.outbox.list_undelivered(limit))?;
        Ok(OutboxOverview {
            counts,
            undelivered,
            at: now,
        })
    }

    /// Dead entries (all, or those for one destination) back to pending, due now; returns
    /// how many.
    pub async fn redrive(&self, destination: Option<String>) -> Result<u64, CoreError> {
        let redriven = self.outbox.redrive(destination, self.clock.now()).await?;
        if redriven > 0 {
            self.notifier.notify();
        }
        Ok(redriven)
    }
}
