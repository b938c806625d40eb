//! Writes that arrive together are made together: one statement (and one commit) for a whole
//! group of concurrent calls. Nothing waits to form a group: a writer takes whatever is queued
//! when it becomes free, so a lone call is written at once and groups only form under load.

use std::future::Future;
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, Utc};
use dpg_core::error::{CoreError, ErrorCode};
use dpg_core::model::OutboxState;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait, QueryFilter};
use tokio::sync::{Mutex, mpsc, oneshot};
use uuid::Uuid;

use super::entity::item::{ActiveModel, Entity, to_millis};
use super::errors::{is_unavailable, is_unique_violation, storage_error};

/// Calls queued before callers wait for room.
const QUEUE_CAPACITY: usize = 1024;

pub(super) type Verdict = Result<(), CoreError>;

/// How one kind of row is written as a group.
pub(super) trait WriteGroup: Send + Sync + 'static {
    type Row: Send + 'static;

    /// Most rows in one group.
    const MAX_ROWS: usize;

    /// Writes `rows`; one verdict per row, in their order.
    fn write(&self, rows: Vec<Self::Row>) -> impl Future<Output = Vec<Verdict>> + Send;
}

struct Pending<R> {
    row: R,
    done: oneshot::Sender<Verdict>,
}

/// The queue of rows and the writers that empty it, started on first use (inside the runtime
/// that serves the requests).
pub(super) struct GroupWriter<W: WriteGroup> {
    group: Arc<W>,
    writers: usize,
    queue: OnceLock<mpsc::Sender<Pending<W::Row>>>,
}

impl<W: WriteGroup> GroupWriter<W> {
    /// `writers` groups may be in flight at once (each holds one database connection).
    pub(super) fn new(group: W, writers: usize) -> Self {
        GroupWriter {
            group: Arc::new(group),
            writers: writers.max(1),
            queue: OnceLock::new(),
        }
    }

    /// Writes `row` with whatever other rows are queued; answers once its group is written.
    pub(super) async fn write(&self, row: W::Row) -> Verdict {
        let (done, verdict) = oneshot::channel();
        self.queue()
            .send(Pending { row, done })
            .await
            .map_err(|_| stopped())?;
        verdict.await.map_err(|_| stopped())?
    }

    fn queue(&self) -> &mpsc::Sender<Pending<W::Row>> {
        self.queue.get_or_init(|| {
            let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
            let receiver = Arc::new(Mutex::new(receiver));
            for _ in 0..self.writers {
                tokio::spawn(write_groups(self.group.clone(), receiver.clone()));
            }
            sender
        })
    }
}

/// One writer: takes the next row and everything queued behind it, writes them, repeats until
/// every sender is gone.
async fn write_groups<W: WriteGroup>(
    group: Arc<W>,
    queue: Arc<Mutex<mpsc::Receiver<Pending<W::Row>>>>,
) {
    let mut pending = Vec::with_capacity(W::MAX_ROWS);
    loop {
        {
            let mut receiver = queue.lock().await;
            if receiver.recv_many(&mut pending, W::MAX_ROWS).await == 0 {
                return;
            }
        }
        let (rows, answers): (Vec<_>, Vec<_>) = pending.drain(..).map(|p| (p.row, p.done)).unzip();
        let verdicts = group.write(rows).await;
        for (answer, verdict) in answers.into_iter().zip(verdicts) {
            let _ = answer.send(verdict);
        }
    }
}

fn stopped() -> CoreError {
    CoreError::internal("the storage writer stopped")
}

/// Item creates: one multi-row INSERT per group.
pub(super) struct ItemInserts {
    pub(super) conn: DatabaseConnection,
}

impl WriteGroup for ItemInserts {
    type Row = ActiveModel;

    /// Well under SQLite's bound-parameter limit (16 columns per row).
    const MAX_ROWS: usize = 64;

    async fn write(&self, rows: Vec<ActiveModel>) -> Vec<Verdict> {
        let conn = &self.conn;
        if rows.len() == 1 {
            let row = rows.into_iter().next().expect("one row");
            return vec![insert_one(conn, row).await];
        }
        let count = rows.len();
        match Entity::insert_many(rows.clone())
            .exec_without_returning(conn)
            .await
        {
            Ok(_) => vec![Ok(()); count],
            Err(err) if is_unavailable(&err) => {
                vec![Err(storage_error("insert items", &err)); count]
            }
            // One bad row fails the statement: each row gets its own verdict.
            Err(_) => {
                let mut verdicts = Vec::with_capacity(count);
                for row in rows {
                    verdicts.push(insert_one(conn, row).await);
                }
                verdicts
            }
        }
    }
}

/// Outbox entries marked delivered: one UPDATE per group. On PostgreSQL its commit does not
/// wait for the WAL flush: a mark lost in a database crash only makes the entry due again, and
/// the receiver absorbs the repeated delivery, so the sender never waits on the disk for it.
pub(super) struct DeliveredMarks {
    pub(super) conn: DatabaseConnection,
}

impl WriteGroup for DeliveredMarks {
    /// The entry and when it was delivered.
    type Row = (Uuid, DateTime<Utc>);

    const MAX_ROWS: usize = 256;

    async fn write(&self, rows: Vec<(Uuid, DateTime<Utc>)>) -> Vec<Verdict> {
        let count = rows.len();
        let verdict = mark_delivered(&self.conn, rows)
            .await
            .map_err(|err| storage_error("mark outbox entries delivered", &err));
        vec![verdict; count]
    }
}

async fn mark_delivered(
    conn: &DatabaseConnection,
    rows: Vec<(Uuid, DateTime<Utc>)>,
) -> Result<(), DbErr> {
    use super::entity::outbox::{Column, Entity as Outbox};
    // One finishing time for the group, its latest: the rows were delivered within moments.
    let at = rows
        .iter()
        .map(|(_, at)| *at)
        .max()
        .unwrap_or_else(Utc::now);
    let ids = rows.into_iter().map(|(id, _)| id);
    let mut update = Outbox::update_many()
        .col_expr(Column::State, Expr::val(OutboxState::Delivered.as_str()))
        .col_expr(Column::FinishedAt, Expr::val(to_millis(at)))
        .col_expr(Column::LeaseUntil, Expr::val(None::<DateTime<Utc>>))
        .filter(Column::Id.is_in(ids));
    if conn.get_database_backend() == DbBackend::Postgres {
        // `SET LOCAL` for the statement's own implicit transaction, without the three extra
        // round trips of an explicit one: the commit then does not wait for the WAL flush.
        update = update.filter(Expr::cust(
            "set_config('synchronous_commit', 'off', true) IS NOT NULL",
        ));
    }
    update.exec(conn).await.map(drop)
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

    async fn stored(conn: &DatabaseConnection) -> u64 {
        Entity::find().count(conn).await.expect("count")
    }

    #[tokio::test]
    async fn a_group_is_stored_by_one_statement_and_every_row_answered() {
        let database = database().await;
        let conn = database.connection();
        let inserts = ItemInserts { conn: conn.clone() };

        let verdicts = inserts
            .write((1..=5).map(|n| active_model(&item(n))).collect())
            .await;

        assert_eq!(verdicts, vec![Ok(()); 5]);
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
        let inserts = ItemInserts { conn: conn.clone() };

        let verdicts = inserts
            .write([2, 1, 3, 3, 4].map(|n| active_model(&item(n))).to_vec())
            .await;

        let answers: Vec<_> = verdicts
            .into_iter()
            .map(|v| v.map_err(|e| e.code()))
            .collect();
        let conflict = Err(ErrorCode::ItemAlreadyExists);
        assert_eq!(answers, [Ok(()), conflict, Ok(()), conflict, Ok(())]);
        assert_eq!(stored(conn).await, 4);
    }

    #[tokio::test]
    async fn concurrent_inserts_through_the_queue_each_get_their_verdict() {
        let database = database().await;
        let inserts = ItemInserts {
            conn: database.connection().clone(),
        };
        let writer = GroupWriter::new(inserts, 1);
        let rows: Vec<Item> = (1..=100).chain([7, 50]).map(item).collect();

        let verdicts =
            futures::future::join_all(rows.iter().map(|row| writer.write(active_model(row)))).await;

        let failed: Vec<usize> = (0..verdicts.len())
            .filter(|&i| verdicts[i].is_err())
            .collect();
        assert_eq!(failed.len(), 2, "{verdicts:?}");
        assert_eq!(stored(database.connection()).await, 100);
    }
}
