//! `ItemFilter` as a SQL condition, with the semantics of `ItemFilter::matches`.

use dpg_core::model::{GeoRadius, ItemFilter, StateFilter};
use sea_orm::sea_query::{Expr, ExprTrait, SimpleExpr};
use sea_orm::{ColumnTrait, Condition, DbBackend};

use super::entity::item::{Column, Entity};
use super::geo::RadiusBounds;
use super::state_containment::sqlite_contains;

/// Every condition of `filter`, ANDed.
pub(super) fn item_condition(filter: &ItemFilter, backend: DbBackend) -> Condition {
    let mut condition = if filter.item_id.is_some() && backend == DbBackend::Sqlite {
        // Without table statistics SQLite prefers the (network, domain, ...) indexes and reads
        // the whole binding; a unary `+` keeps these two terms off the index choice, so the
        // item_id index finds the one row.
        Condition::all()
            .add(unindexed(Column::ItemNetwork).eq(filter.network.as_str()))
            .add(unindexed(Column::ItemDomain).eq(filter.domain.as_str()))
    } else {
        Condition::all()
            .add(Column::ItemNetwork.eq(filter.network.as_str()))
            .add(Column::ItemDomain.eq(filter.domain.as_str()))
    };
    if let Some(item_type) = &filter.item_type {
        condition = condition.add(Column::ItemType.eq(item_type.as_str()));
    }
    if let Some(item_id) = filter.item_id {
        condition = condition.add(Column::ItemId.eq(item_id));
    }
    if let Some(url) = &filter.instance_url {
        condition = condition.add(Column::ItemInstanceUrl.eq(url.as_str()));
    }
    if let Some(url) = &filter.schema_url {
        condition = condition.add(Column::ItemSchemaUrl.eq(url.as_str()));
    }
    if let Some(owner) = &filter.created_by {
        condition = condition.add(Column::CreatedBy.eq(owner.as_str()));
    }
    if let Some(state) = &filter.state {
        condition = condition.add(state_condition(state, backend));
    }
    if let Some(geo) = &filter.geo {
        condition = condition.add(geo_condition(geo));
    }
    condition
}

/// `+column`: the same value, but SQLite no longer considers an index for the term.
fn unindexed(column: Column) -> Expr {
    Expr::cust_with_exprs("+?", [Expr::col((Entity, column))])
}

fn state_condition(state: &StateFilter, backend: DbBackend) -> SimpleExpr {
    // Imported here only: its `contains` would shadow `str::contains` elsewhere.
    use sea_orm::sea_query::extension::postgres::PgExpr;
    match backend {
        DbBackend::Postgres => {
            Expr::col((Entity, Column::ItemState)).contains(Expr::val(state.to_value()))
        }
        _ => {
            let fragment = sqlite_contains(r#""items"."item_state""#, state.as_map());
            Expr::cust_with_values(fragment.sql, fragment.values)
        }
    }
}

/// Bounding box on (latitude, longitude) for the index, then the exact chord test on the unit
/// vectors. Rows without coordinates have NULL vectors and never match.
fn geo_condition(geo: &GeoRadius) -> Condition {
    let bounds = RadiusBounds::new(geo);
    let (min_lat, max_lat) = bounds.latitude;
    let mut condition = Condition::all().add(Column::ItemLatitude.between(min_lat, max_lat));
    if let Some((min_lng, max_lng)) = bounds.longitude {
        condition = condition.add(Column::ItemLongitude.between(min_lng, max_lng));
    }
    let squared = |column: Column, center: f64| {
        let difference = Expr::col((Entity, column)).sub(center);
        difference.clone().mul(difference)
    };
    let chord_squared = squared(Column::GeoX, bounds.center.x)
        .add(squared(Column::GeoY, bounds.center.y))
        .add(squared(Column::GeoZ, bounds.center.z));
    condition.add(chord_squared.lte(bounds.max_chord_squared))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::{EntityTrait, QueryFilter, QueryTrait};
    use serde_json::json;

    fn sql(filter: &ItemFilter, backend: DbBackend) -> String {
        Entity::find()
            .filter(item_condition(filter, backend))
            .build(backend)
            .to_string()
    }

    #[test]
    fn geo_arithmetic_keeps_its_parentheses() {
        let mut filter = ItemFilter::new("n", "d");
        filter.geo = Some(GeoRadius::new(10.0, 20.0, 1000.0).expect("valid"));
        let text = sql(&filter, DbBackend::Sqlite);
        assert!(
            text.contains(r#"(("items"."geo_x" - "#) && text.contains(r#") * ("items"."geo_x" - "#),
            "{text}"
        );
    }

    #[tokio::test]
    async fn an_item_id_filter_uses_the_item_id_index_on_sqlite() {
        use crate::sql::SqlDatabase;
        use sea_orm::{ConnectionTrait, Statement};

        let db = SqlDatabase::connect("sqlite::memory:")
            .await
            .expect("connects");
        db.migrate().await.expect("migrates");
        let mut filter = ItemFilter::new("n", "d");
        filter.item_id = Some(uuid::Uuid::nil());
        let built = Entity::find()
            .filter(item_condition(&filter, DbBackend::Sqlite))
            .build(DbBackend::Sqlite);
        assert!(
            built
                .sql
                .contains(r#"(+"items"."item_network") = ? AND (+"items"."item_domain") = ?"#),
            "{}",
            built.sql
        );
        let plan = db
            .connection()
            .query_all_raw(Statement::from_sql_and_values(
                DbBackend::Sqlite,
                format!("EXPLAIN QUERY PLAN {}", built.sql),
                built.values.expect("values").0,
            ))
            .await
            .expect("plan");
        let details: Vec<String> = plan
            .iter()
            .map(|row| row.try_get::<String>("", "detail").expect("detail"))
            .collect();
        assert!(
            details.iter().any(|d| d.contains("items_item_id_idx")),
            "{details:?}"
        );
        let rows = Entity::find()
            .filter(item_condition(&filter, DbBackend::Sqlite))
            .all(db.connection())
            .await
            .expect("the hinted query runs");
        assert!(rows.is_empty());
    }

    #[test]
    fn state_uses_containment_on_postgres_and_json_each_on_sqlite() {
        let mut filter = ItemFilter::new("n", "d");
        filter.state = Some(StateFilter::new(json!({"k": "v"})).expect("valid"));
        assert!(sql(&filter, DbBackend::Postgres).contains("@>"));
        assert!(sql(&filter, DbBackend::Sqlite).contains("json_each"));
    }
}
