//! `source_is_local` and `target_is_local` on `actions` and `action_events`: whether the
//! source (target) item of a row lives on this instance, set when the row is written.
//!
//! User ids are local to an instance (reference-contract §8.5), and rows carry the other
//! instance's owner id verbatim; an owner column names one of this instance's users only on a
//! side whose item lives here, so owner-scoped reads check the flag with the owner.
//!
//! Existing rows are backfilled conservatively: a side is local only when an item of this
//! instance has that side's network, domain, type and id, the row's instance URL spelled
//! exactly as the item's, and the row's owner as its creator. A remote item with the same id,
//! a foreign owner id that equals a local creator, or another spelling of this instance's URL
//! stays not local (hidden rather than shown to the wrong user).

use sea_orm_migration::prelude::*;

pub const NAME: &str = "m20250901_000008_action_item_locality";

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        NAME
    }
}

const TABLES: [&str; 2] = ["actions", "action_events"];
const SIDES: [&str; 2] = ["source", "target"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in TABLES {
            for side in SIDES {
                // One column per statement: SQLite alters one thing at a time.
                manager
                    .alter_table(
                        Table::alter()
                            .table(Alias::new(table))
                            .add_column(
                                ColumnDef::new(Alias::new(format!("{side}_is_local")))
                                    .boolean()
                                    .not_null()
                                    .default(false),
                            )
                            .to_owned(),
                    )
                    .await?;
                manager
                    .get_connection()
                    .execute_unprepared(&backfill(table, side))
                    .await?;
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in TABLES {
            for side in SIDES {
                manager
                    .alter_table(
                        Table::alter()
                            .table(Alias::new(table))
                            .drop_column(Alias::new(format!("{side}_is_local")))
                            .to_owned(),
                    )
                    .await?;
            }
        }
        Ok(())
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}

/// Same text on PostgreSQL and SQLite (both know `TRUE` and correlated `EXISTS`).
fn backfill(table: &str, side: &str) -> String {
    format!(
        "UPDATE {table} SET {side}_is_local = TRUE WHERE EXISTS (\
         SELECT 1 FROM items i \
         WHERE i.item_network = {table}.{side}_item_network \
         AND i.item_domain = {table}.{side}_item_domain \
         AND i.item_type = {table}.{side}_item_type \
         AND i.item_id = {table}.{side}_item_id \
         AND i.item_instance_url = {table}.{side}_item_instance_url \
         AND i.created_by = {table}.{side}_item_owner)"
    )
}
