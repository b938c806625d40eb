//! dpg-migration: the schema of a DPG instance's database, one migration set for PostgreSQL and
//! SQLite. Backend branches exist only where a feature has no portable form (JSONB, GIN).

use sea_orm_migration::prelude::*;

mod m20250601_000001_create_items;
mod m20250601_000002_create_network_documents;
mod m20250701_000003_create_users;
mod m20250701_000004_create_sessions;
mod m20250701_000005_create_api_keys;
mod m20250801_000006_create_actions;
mod m20250801_000007_create_outbox;
mod m20250901_000008_action_item_locality;
mod m20251001_000009_store_event_function;

pub use sea_orm_migration::MigratorTrait;

/// Name of the table that records applied migrations. Our own name (not SeaORM's default) so
/// that a database shared with another SeaORM program is recognised as foreign.
pub const MIGRATION_TABLE: &str = "dpg_schema_migrations";

/// A table created by these migrations, with the migration that creates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnedTable {
    pub table: &'static str,
    pub created_by_migration: &'static str,
}

/// Every table these migrations create; start-up refuses a database where one of them exists
/// without its migration being recorded (another program's table of the same name).
pub const OWNED_TABLES: &[OwnedTable] = &[
    OwnedTable {
        table: m20250601_000001_create_items::TABLE,
        created_by_migration: m20250601_000001_create_items::NAME,
    },
    OwnedTable {
        table: m20250601_000002_create_network_documents::TABLE,
        created_by_migration: m20250601_000002_create_network_documents::NAME,
    },
    OwnedTable {
        table: m20250701_000003_create_users::TABLE,
        created_by_migration: m20250701_000003_create_users::NAME,
    },
    OwnedTable {
        table: m20250701_000004_create_sessions::TABLE,
        created_by_migration: m20250701_000004_create_sessions::NAME,
    },
    OwnedTable {
        table: m20250701_000005_create_api_keys::TABLE,
        created_by_migration: m20250701_000005_create_api_keys::NAME,
    },
    OwnedTable {
        table: m20250801_000006_create_actions::ACTIONS,
        created_by_migration: m20250801_000006_create_actions::NAME,
    },
    OwnedTable {
        table: m20250801_000006_create_actions::EVENTS,
        created_by_migration: m20250801_000006_create_actions::NAME,
    },
    OwnedTable {
        table: m20250801_000006_create_actions::IDEMPOTENCY_KEYS,
        created_by_migration: m20250801_000006_create_actions::NAME,
    },
    OwnedTable {
        table: m20250801_000007_create_outbox::TABLE,
        created_by_migration: m20250801_000007_create_outbox::NAME,
    },
];

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20250601_000001_create_items::Migration),
            Box::new(m20250601_000002_create_network_documents::Migration),
            Box::new(m20250701_000003_create_users::Migration),
            Box::new(m20250701_000004_create_sessions::Migration),
            Box::new(m20250701_000005_create_api_keys::Migration),
            Box::new(m20250801_000006_create_actions::Migration),
            Box::new(m20250801_000007_create_outbox::Migration),
            Box::new(m20250901_000008_action_item_locality::Migration),
            Box::new(m20251001_000009_store_event_function::Migration),
        ]
    }

    fn migration_table_name() -> DynIden {
        Alias::new(MIGRATION_TABLE).into_iden()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_owned_table_names_a_migration_of_the_set() {
        let names: Vec<String> = Migrator::migrations()
            .iter()
            .map(|m| m.name().to_string())
            .collect();
        for owned in OWNED_TABLES {
            assert!(
                names.iter().any(|n| n == owned.created_by_migration),
                "{} is not a migration of the set",
                owned.created_by_migration
            );
        }
    }
}
