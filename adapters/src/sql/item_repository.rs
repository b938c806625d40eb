//! `ItemRepository` on SQL.

use std::sync::Arc;

use async_trait::async_trait;
use dpg_core::error::CoreError;
use dpg_core::model::{Item, ItemFilter, ItemKey, ItemPage, PageRequest};
use dpg_core::ports::ItemRepository;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, DbBackend, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect,
};
use uuid::Uuid;

use super::database::SqlDatabase;
use super::entity::item::{self, Column, Entity, ITEM_COLUMNS, ItemRecord};
use super::errors::storage_error;
use super::geo::UnitVector;
use super::group_writer::{GroupWriter, ItemInserts};
use super::item_filter::item_condition;

/// Groups of creates written at once on PostgreSQL (each holds a pooled connection). Two keep
/// one group forming while the other commits; more make smaller groups, and the database
/// spends more per row (on 2 cores, 4 writers created 20-35% fewer items per second than 2).
const POSTGRES_WRITERS: usize = 2;

/// Items in the `items` table of PostgreSQL or SQLite.
#[derive(Clone)]
pub struct SqlItemRepository {
    conn: DatabaseConnection,
    backend: DbBackend,
    inserts: Arc<GroupWriter<ItemInserts>>,
}

impl std::fmt::Debug for SqlItemRepository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlItemRepository")
            .field("backend", &self.backend)
            .finish()
    }
}

impl SqlItemRepository {
    pub fn new(database: &SqlDatabase) -> Self {
        let backend = database.db_backend();
        // SQLite has one writer at a time anyway; a second group would only wait for the lock.
        let writers = match backend {
            DbBackend::Postgres => POSTGRES_WRITERS,
            _ => 1,
        };
        SqlItemRepository {
            conn: database.connection().clone(),
            backend,
            inserts: Arc::new(GroupWriter::new(
                ItemInserts {
                    conn: database.connection().clone(),
                },
                writers,
            )),
        }
    }
}

#[async_trait]
impl ItemRepository for SqlItemRepository {
    #[tracing::instrument(level = "debug", skip_all, fields(item_id = %item.item_id))]
    async fn insert(&self, item: &Item) -> Result<(), CoreError> {
        self.inserts.write(item::active_model(item)).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(network = %filter.network, domain = %filter.domain))]
    async fn find(&self, filter: &ItemFilter, page: PageRequest) -> Result<ItemPage, CoreError> {
        let total = self.count(filter).await?;
        if total <= u64::from(page.offset) {
            return Ok(ItemPage {
                total,
                items: Vec::new(),
            });
        }
        let items = self.find_slice(filter, page).await?;
        Ok(ItemPage { total, items })
    }

    #[tracing::instrument(level = "debug", skip_all, fields(network = %filter.network, domain = %filter.domain))]
    async fn find_slice(
        &self,
        filter: &ItemFilter,
        page: PageRequest,
    ) -> Result<Vec<Item>, CoreError> {
        let rows = select_items()
            .filter(item_condition(filter, self.backend))
            // The one global order: newest first, item_id (byte order = lowercase hex order on
            // both databases) breaking ties, so pages never overlap or skip.
            .order_by_desc(Column::CreatedAt)
            .order_by_desc(Column::ItemId)
            .limit(u64::from(page.limit))
            .offset(u64::from(page.offset))
            .into_model::<ItemRecord>()
            .all(&self.conn)
            .await
            .map_err(|e| storage_error("find items", &e))?;
        Ok(rows.into_iter().map(|record| record.0).collect())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(network = %filter.network, domain = %filter.domain))]
    async fn find_after(
        &self,
        filter: &ItemFilter,
        after: Option<ItemKey>,
        limit: u32,
    ) -> Result<Vec<Item>, CoreError> {
        let mut condition = item_condition(filter, self.backend);
        if let Some(after) = after {
            let at = item::to_millis(after.created_at);
            condition = condition.add(
                Condition::any().add(Column::CreatedAt.lt(at)).add(
                    Condition::all()
                        .add(Column::CreatedAt.eq(at))
                        .add(Column::ItemId.lt(after.item_id)),
                ),
            );
        }
        let rows = select_items()
            .filter(condition)
            .order_by_desc(Column::CreatedAt)
            .order_by_desc(Column::ItemId)
            .limit(u64::from(limit))
            .into_model::<ItemRecord>()
            .all(&self.conn)
            .await
            .map_err(|e| storage_error("find items after a position", &e))?;
        Ok(rows.into_iter().map(|record| record.0).collect())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(network = %filter.network, domain = %filter.domain))]
    async fn count(&self, filter: &ItemFilter) -> Result<u64, CoreError> {
        Entity::find()
            .filter(item_condition(filter, self.backend))
            .count(&self.conn)
            .await
            .map_err(|e| storage_error("count items", &e))
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn find_owned(&self, item_id: Uuid, owner: &str) -> Result<Option<Item>, CoreError> {
        select_items()
            .filter(Column::ItemId.eq(item_id))
            .filter(Column::CreatedBy.eq(owner))
            .order_by_desc(Column::CreatedAt)
            .into_model::<ItemRecord>()
            .one(&self.conn)
            .await
            .map(|row| row.map(|record| record.0))
            .map_err(|e| storage_error("find owned item", &e))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(item_id = %item.item_id))]
    async fn update(&self, item: &Item) -> Result<bool, CoreError> {
        let vector = UnitVector::of_item(item.latitude, item.longitude);
        let result = Entity::update_many()
            .col_expr(Column::ItemState, Expr::val(item.state.clone()))
            .col_expr(Column::ItemLatitude, Expr::val(item.latitude))
            .col_expr(Column::ItemLongitude, Expr::val(item.longitude))
            .col_expr(Column::GeoX, Expr::val(vector.map(|v| v.x)))
            .col_expr(Column::GeoY, Expr::val(vector.map(|v| v.y)))
            .col_expr(Column::GeoZ, Expr::val(vector.map(|v| v.z)))
            .col_expr(
                Column::UpdatedAt,
                Expr::val(item::to_millis(item.updated_at)),
            )
            .filter(Column::ItemNetwork.eq(item.network.as_str()))
            .filter(Column::ItemDomain.eq(item.domain.as_str()))
            .filter(Column::ItemType.eq(item.item_type.as_str()))
            .filter(Column::ItemId.eq(item.item_id))
            .filter(Column::CreatedBy.eq(item.created_by.as_str()))
            .exec(&self.conn)
            .await
            .map_err(|e| storage_error("update item", &e))?;
        Ok(result.rows_affected > 0)
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn delete_owned(&self, item_id: Uuid, owner: &str) -> Result<bool, CoreError> {
        let result = Entity::delete_many()
            .filter(Column::ItemId.eq(item_id))
            .filter(Column::CreatedBy.eq(owner))
            .exec(&self.conn)
            .await
            .map_err(|e| storage_error("delete owned item", &e))?;
        Ok(result.rows_affected > 0)
    }

    async fn ping(&self) -> Result<(), CoreError> {
        self.conn
            .ping()
            .await
            .map_err(|e| storage_error("ping", &e))
    }
}

/// A select of the item columns alone, in the order [`ItemRecord`] reads them.
fn select_items() -> sea_orm::Select<Entity> {
    Entity::find().select_only().columns(ITEM_COLUMNS)
}
