//! Item inserts that arrive together are written together: one multi-row INSERT, so one
//! round trip and one commit for a whole group of concurrent creates. Nothing waits to form a
//! group: a writer takes whatever is queued when it becomes free, so a lone create is written at
//! once and groups only form under load.

use std::sync::{Arc, OnceLock};

use dpg_core::error::{CoreError, ErrorCode};
use sea_orm::{DatabaseConnection, EntityTrait};
use tokio::sync::{Mutex, mpsc, oneshot};

use super::entity::item::{ActiveModel, Entity};
use super::errors::{is_unavailable, is_unique_violation, storage_error};

/// Rows in one INSERT: well under SQLite's bound-parameter limit (16 columns per row).
const MAX_ROWS: usize = 64;

/// Creates queued before callers wait for room.
const QUEUE_CAPACITY: usize = 1024;

type Verdict = Result<(), CoreError>;

struct Pending {
    row: ActiveModel,
    done: oneshot::Sender<Verdict>,
}

/// The queue of inserts and the writers that empty it, started on first use (inside the
/// runtime that serves the requests).
pub(super) struct InsertBatcher {
    conn: DatabaseConnection,
    writers: usize,
    queue: OnceLock<mpsc::Sender<Pending>>,
}

impl InsertBatcher {
    /// `writers` groups may be in flight at once (each holds one database connection).
    pub(super) fn new(conn: DatabaseConnection, writers: usize) -> Self {
        InsertBatcher {
            conn,
            writers: writers.max(1),
            queue: OnceLock::new(),
        }
    }

    /// Inserts `row` with whatever other rows are queued; answers once its group committed
    /// (or, when the group failed, once its own row was retried alone).
    pub(super) async fn insert(&self, row: ActiveModel) -> Verdict {
        let (done, verdict) = oneshot::channel();
        self.queue()
            .send(Pending { row, done })
            .await
            .map_err(|_| stopped())?;
        verdict.await.map_err(|_| stopped())?
    }

    fn queue(&self) -> &mpsc::Sender<Pending> {
        self.queue.get_or_init(|| {
            let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
            let receiver = Arc::new(Mutex::new(receiver));
            for _ in 0..self.writers {
                tokio::spawn(write_groups(self.conn.clone(), receiver.clone()));
            }
            sender
        })
    }
}

/// One writer: takes the next row and everything queued behind it, writes them, repeats until
/// every sender is gone.
async fn write_groups(conn: DatabaseConnection, queue: Arc<Mutex<mpsc::Receiver<Pending>>>) {
    let mut group = Vec::with_capacity(MAX_ROWS);
    loop {
        {
            let mut receiver = queue.lock().await;
            if receiver.recv_many(&mut group, MAX_ROWS).await == 0 {
                return;
            }
        }
        write_group(&conn, std::mem::take(&mut group)).await;
    }
}

async fn write_group(conn: &DatabaseConnection, group: Vec<Pending>) {
    if let [_] = group.as_slice() {
        let pending = group.into_iter().next().expect("one row");
        let verdict = insert_one(conn, pending.row).await;
        let _ = pending.done.send(verdict);
        return;
    }
    let rows: Vec<ActiveModel> = group.iter().map(|p| p.row.clone()).collect();
    match Entity::insert_many(rows).exec_without_returning(conn).await {
        Ok(_) => {
            for pending in group {
                let _ = pending.done.send(Ok(()));
            }
        }
        Err(err) if is_unavailable(&err) => {
            let error = storage_error("insert items", &err);
            for pending in group {
                let _ = pending.done.send(Err(error.clone()));
            }
        }
        // One bad row fails the statement: each row gets its own verdict.
        Err(_) => {
            for pending in group {
                let verdict = insert_one(conn, pending.row).await;
                let _ = pending.done.send(verdict);
            }
        }
    }
}

async fn insert_one(conn: &DatabaseConnection, row: ActiveModel) -> Verdict {
    match Entity::insert(row).exec_without_returning(conn).await {
        Ok(_) => Ok(()),
        Err(err) if is_unique_violation(&err) => Err(CoreError::Conflict {
            code: ErrorCode::ItemAlreadyExists,
            message: "An item with the same type and id already exists".to_string(),
        }),
        Err(err) => Err(storage_error("insert item", &err)),
    }
}

fn stopped() -> CoreError {
    CoreError::internal("the item writer stopped".to_string())
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use dpg_core::model::Item;
    use sea_orm::PaginatorTrait;
    use serde_json::json;
    use uuid::Uuid;

    use super::*;
    use crate::sql::SqlDatabase;
    use crate::sql::entity::item::active_model;

    async fn database() -> SqlDatabase {
        let database = SqlDatabase::connect("sqlite::memory:")
            .await
            .expect("in-memory SQLite");
        database.migrate().await.expect("migrate");
        database
    }

    fn item(n: u128) -> Item {
        let at = Utc.timestamp_millis_opt(1_000).single().expect("time");
        Item {
            network: "net".into(),
            domain: "dom".into(),
            item_type: "job".into(),
            item_id: Uuid::from_u128(n),
            instance_url: "http://127.0.0.1:1".into(),
            schema_url: "https://schemas.example/job.json".into(),
            state: json!({"n": n.to_string()}),
            latitude: None,
            longitude: None,
            created_by: "u".into(),
            created_at: at,
            updated_at: at,
        }
    }

    fn pending(item: &Item) -> (Pending, oneshot::Receiver<Verdict>) {
        let (done, verdict) = oneshot::channel();
        let row = active_model(item);
        (Pending { row, done }, verdict)
    }

    async fn stored(conn: &DatabaseConnection) -> u64 {
        Entity::find().count(conn).await.expect("count")
    }

    #[tokio::test]
    async fn a_group_is_stored_by_one_statement_and_every_row_answered() {
        let database = database().await;
        let conn = database.connection();
        let (group, verdicts): (Vec<_>, Vec<_>) = (1..=5).map(|n| pending(&item(n))).unzip();

        write_group(conn, group).await;

        for verdict in verdicts {
            assert_eq!(verdict.await.expect("answered"), Ok(()));
        }
        assert_eq!(stored(conn).await, 5);
    }

    #[tokio::test]
    async fn a_conflicting_row_fails_alone_and_the_rest_of_its_group_is_stored() {
        let database = database().await;
        let conn = database.connection();
        insert_one(conn, active_model(&item(1)))
            .await
            .expect("first");
        // Rows 2 and 4 are new; 1 exists already; 3 comes twice in the group.
        let (group, verdicts): (Vec<_>, Vec<_>) = [2, 1, 3, 3, 4]
            .map(|n| pending(&item(n)))
            .into_iter()
            .unzip();

        write_group(conn, group).await;

        let mut answers = Vec::new();
        for verdict in verdicts {
            answers.push(verdict.await.expect("answered").map_err(|e| e.code()));
        }
        let conflict = Err(ErrorCode::ItemAlreadyExists);
        assert_eq!(answers, [Ok(()), conflict, Ok(()), conflict, Ok(())]);
        assert_eq!(stored(conn).await, 4);
    }

    #[tokio::test]
    async fn concurrent_inserts_through_the_queue_each_get_their_verdict() {
        let database = database().await;
        let batcher = InsertBatcher::new(database.connection().clone(), 1);
        let rows: Vec<Item> = (1..=100).chain([7, 50]).map(item).collect();

        let verdicts =
            futures::future::join_all(rows.iter().map(|row| batcher.insert(active_model(row))))
                .await;

        let failed: Vec<usize> = (0..verdicts.len())
            .filter(|&i| verdicts[i].is_err())
            .collect();
        assert_eq!(failed.len(), 2, "{verdicts:?}");
        assert_eq!(stored(database.connection()).await, 100);
    }
}
