//! Item use cases: create, owner-scoped fetch, update and delete.

use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use super::page_cache::{Lookup, OwnerPageCache};
use crate::error::{CoreError, ErrorCode};
use crate::model::{
    Binding, Caller, GeoRadius, InstanceIdentity, Item, ItemChanges, ItemFilter, NewItem,
    PageDocument, PageRequest, reject_nul_in_json,
};
use crate::network::CatalogHandle;
use crate::ports::{Cache, Clock, IdGenerator, ItemRepository};

/// Everything the item use cases need.
pub struct ItemServiceDeps {
    pub repository: Arc<dyn ItemRepository>,
    pub cache: Arc<dyn Cache>,
    pub catalog: Arc<CatalogHandle>,
    pub clock: Arc<dyn Clock>,
    pub ids: Arc<dyn IdGenerator>,
    pub identity: Arc<InstanceIdentity>,
    /// How long a local fetch page is cached (writes invalidate it earlier).
    pub local_fetch_ttl: Duration,
}

pub struct ItemService {
    deps: ItemServiceDeps,
    pages: OwnerPageCache,
}

impl ItemService {
    pub fn new(deps: ItemServiceDeps) -> Self {
        let pages = OwnerPageCache::new(deps.cache.clone(), deps.local_fetch_ttl);
        ItemService { deps, pages }
    }

    /// Validates and stores a new item (reference-contract §1.3, §4.1).
    pub async fn create(&self, caller: &Caller, new: NewItem) -> Result<Item, CoreError> {
        let catalog = self.deps.catalog.current();
        self.ensure_served(&new.network, &new.domain)?;
        let schema = catalog
            .item_schema(&new.network, &new.domain, &new.item_type)
            .map_err(as_invalid_item_state)?;
        let compiled = schema
            .compiled()
            .map_err(|message| CoreError::invalid(ErrorCode::InvalidItemState, message))?;
        let state = new.state.unwrap_or(serde_json::Value::Null);
        reject_nul_in_json("item_state", &state)?;
        compiled.check(&state, "item_state", ErrorCode::InvalidItemState)?;
        check_coordinates(new.latitude, new.longitude)?;
        let now = self.deps.clock.now();
        let item = Item {
            network: new.network,
            domain: new.domain,
            item_type: new.item_type,
            item_id: self.deps.ids.new_id(),
            instance_url: self.deps.identity.base_url.clone(),
            schema_url: schema.schema_url.clone(),
            state,
            latitude: new.latitude,
            longitude: new.longitude,
            created_by: caller.user_id.clone(),
            created_at: now,
            updated_at: now,
        };
        self.deps.repository.insert(&item).await?;
        self.invalidate(&item).await;
        Ok(item)
    }

    /// The caller's own items on this instance matching `filter` (reference-contract §1.4).
    pub async fn fetch_own(
        &self,
        caller: &Caller,
        mut filter: ItemFilter,
        page: PageRequest,
    ) -> Result<PageDocument, CoreError> {
        self.ensure_served(&filter.network, &filter.domain)?;
        filter.created_by = Some(caller.user_id.clone());
        filter.check_text()?;
        let lookup = self.pages.lookup(&filter, page).await;
        if let Lookup::Hit(document) = lookup {
            return Ok(document);
        }
        let result = self.deps.repository.find(&filter, page).await?;
        let document = PageDocument::encode(&result, page.limit, page.offset);
        if let Lookup::Miss { key, generation } = lookup {
            self.pages.store(&key, &generation, &document).await;
        }
        Ok(document)
    }

    /// Applies an owner's partial update; the resulting state must satisfy the item's schema
    /// and the instance/schema URLs cannot be rewritten.
    pub async fn update_own(
        &self,
        caller: &Caller,
        item_id: Uuid,
        changes: ItemChanges,
    ) -> Result<Item, CoreError> {
        let mut item = self.find_own(caller, item_id).await?;
        for (field, sent, stored) in [
            (
                "item_instance_url",
                &changes.instance_url,
                &item.instance_url,
            ),
            ("item_schema_url", &changes.schema_url, &item.schema_url),
        ] {
            if sent.as_ref().is_some_and(|sent| sent != stored) {
                return Err(CoreError::invalid(
                    ErrorCode::ImmutableField,
                    format!("{field} is set by the instance and cannot be changed"),
                ));
            }
        }
        if let Some(state) = changes.state {
            let catalog = self.deps.catalog.current();
            let schema = catalog
                .item_schema(&item.network, &item.domain, &item.item_type)
                .map_err(as_invalid_item_state)?;
            let compiled = schema
                .compiled()
                .map_err(|message| CoreError::invalid(ErrorCode::InvalidItemState, message))?;
            reject_nul_in_json("item_state", &state)?;
            compiled.check(&state, "item_state", ErrorCode::InvalidItemState)?;
            item.state = state;
        }
        if let Some(latitude) = changes.latitude {
            item.latitude = latitude;
        }
        if let Some(longitude) = changes.longitude {
            item.longitude = longitude;
        }
        check_coordinates(item.latitude, item.longitude)?;
        item.updated_at = self.deps.clock.now();
        if !self.deps.repository.update(&item).await? {
            return Err(not_found_or_forbidden());
        }
        self.invalidate(&item).await;
        Ok(item)
    }

    /// Deletes one of the caller's items: the owner's way to withdraw data.
    pub async fn delete_own(&self, caller: &Caller, item_id: Uuid) -> Result<(), CoreError> {
        let item = self.find_own(caller, item_id).await?;
        if !self
            .deps
            .repository
            .delete_owned(item_id, &caller.user_id)
            .await?
        {
            return Err(not_found_or_forbidden());
        }
        self.invalidate(&item).await;
        Ok(())
    }

    async fn find_own(&self, caller: &Caller, item_id: Uuid) -> Result<Item, CoreError> {
        self.deps
            .repository
            .find_owned(item_id, &caller.user_id)
            .await?
            .ok_or_else(not_found_or_forbidden)
    }

    fn ensure_served(&self, network: &str, domain: &str) -> Result<(), CoreError> {
        if self.deps.identity.served.contains(network, domain) {
            return Ok(());
        }
        Err(self
            .deps
            .catalog
            .current()
            .unserved(&self.deps.identity, Binding::new(network, domain)))
    }

    async fn invalidate(&self, item: &Item) {
        self.pages
            .invalidate(&item.network, &item.domain, &item.created_by)
            .await;
    }
}

fn check_coordinates(latitude: Option<f64>, longitude: Option<f64>) -> Result<(), CoreError> {
    match (latitude, longitude) {
        (None, None) => Ok(()),
        (Some(lat), Some(lng)) => GeoRadius::new(lat, lng, 1.0)
            .map(|_| ())
            .map_err(|e| e.with_invalid_code(ErrorCode::InvalidInput)),
        _ => Err(CoreError::invalid(
            ErrorCode::InvalidInput,
            "item_latitude and item_longitude must be provided together",
        )),
    }
}

/// On create the reference reports unknown network/domain/type as `INVALID_ITEM_STATE`.
fn as_invalid_item_state(err: CoreError) -> CoreError {
    match err {
        CoreError::NotFound { message, .. } => {
            CoreError::invalid(ErrorCode::InvalidItemState, message)
        }
        other => other,
    }
}

fn not_found_or_forbidden() -> CoreError {
    CoreError::not_found(
        ErrorCode::ItemNotFoundOrForbidden,
        "Item not found or does not belong to the authenticated user",
    )
}

#[cfg(test)]
mod tests {
    use super::super::page_cache::GENERATION_TTL;
    use super::*;
    use crate::model::ItemPage;
    use crate::model::ServedBindings;
    use crate::network::{CatalogOrigin, NetworkCatalog, NetworkDocument, SchemaCompiler};
    use crate::ports::{MockCache, MockClock, MockIdGenerator, MockItemRepository};
    use chrono::{TimeZone, Utc};
    use serde_json::json;
    use std::collections::HashMap;

    const ID: Uuid = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001);

    fn identity() -> Arc<InstanceIdentity> {
        Arc::new(InstanceIdentity {
            base_url: "http://127.0.0.1:2742".into(),
            name: "dpg".into(),
            served: ServedBindings::parse("yellow_dot/student").expect("served"),
        })
    }

    fn catalog() -> Arc<CatalogHandle> {
        let doc = NetworkDocument::parse(&json!({
            "name": "yellow_dot",
            "domains": [
                {"name": "student", "item_schemas": {"profile_1.0": {
                    "type": "object", "additionalProperties": false, "required": ["name"],
                    "properties": {"name": {"type": "string", "minLength": 1}}
                }}},
                {"name": "tutor", "item_schemas": {"profile_1.0": {"type": "object"}}}
            ]
        }))
        .expect("doc");
        let catalog = NetworkCatalog::build(
            vec![doc],
            &HashMap::new(),
            &identity(),
            &SchemaCompiler::new(false),
            Utc::now(),
            CatalogOrigin::Sources,
        );
        Arc::new(CatalogHandle::new(catalog))
    }

    fn now() -> chrono::DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 5, 13, 10, 0, 0)
            .single()
            .expect("valid time")
    }

    fn service(repository: MockItemRepository, cache: MockCache) -> ItemService {
        let mut clock = MockClock::new();
        clock.expect_now().returning(now);
        let mut ids = MockIdGenerator::new();
        ids.expect_new_id().returning(|| ID);
        ItemService::new(ItemServiceDeps {
            repository: Arc::new(repository),
            cache: Arc::new(cache),
            catalog: catalog(),
            clock: Arc::new(clock),
            ids: Arc::new(ids),
            identity: identity(),
            local_fetch_ttl: Duration::from_secs(1),
        })
    }

    fn new_item(state: serde_json::Value) -> NewItem {
        NewItem {
            network: "yellow_dot".into(),
            domain: "student".into(),
            item_type: "profile_1.0".into(),
            state: Some(state),
            latitude: None,
            longitude: None,
        }
    }

    fn stored_item(owner: &str) -> Item {
        Item {
            network: "yellow_dot".into(),
            domain: "student".into(),
            item_type: "profile_1.0".into(),
            item_id: ID,
            instance_url: "http://127.0.0.1:2742".into(),
            schema_url:
                "http://127.0.0.1:2742/api/v1/network/schema/yellow_dot/student/profile_1.0".into(),
            state: json!({"name": "Asha"}),
            latitude: None,
            longitude: None,
            created_by: owner.into(),
            created_at: now(),
            updated_at: now(),
        }
    }

    #[tokio::test]
    async fn create_generates_identity_fields_and_invalidates_the_owner_pages() {
        let mut repository = MockItemRepository::new();
        repository
            .expect_insert()
            .withf(|item| {
                item.item_id == ID
                    && item.instance_url == "http://127.0.0.1:2742"
                    && item
                        .schema_url
                        .ends_with("/api/v1/network/schema/yellow_dot/student/profile_1.0")
                    && item.created_by == "u1"
                    && item.created_at == now()
            })
            .times(1)
            .returning(|_| Ok(()));
        let mut cache = MockCache::new();
        cache
            .expect_increment_each()
            .withf(|keys, delta, ttl| {
                keys == [
                    "local-item-fetch-gen:yellow_dot:student:u1".to_string(),
                    "network-gen:yellow_dot:student".to_string(),
                ] && *delta == 1
                    && *ttl == GENERATION_TTL
            })
            .times(1)
            .returning(|_, _, _| Ok(vec![1, 1]));
        let item = service(repository, cache)
            .create(&Caller::new("u1"), new_item(json!({"name": "Asha"})))
            .await
            .expect("created");
        assert_eq!(item.state, json!({"name": "Asha"}));
    }

    #[tokio::test]
    async fn create_rejects_unserved_bindings_unknown_types_and_invalid_state_without_storing() {
        let svc = service(MockItemRepository::new(), MockCache::new());
        let caller = Caller::new("u1");
        let mut unserved = new_item(json!({"name": "x"}));
        unserved.domain = "tutor".into();
        assert_eq!(
            svc.create(&caller, unserved).await.expect_err("403").code(),
            ErrorCode::UnservedDomainBinding
        );

        let mut unknown = new_item(json!({"name": "x"}));
        unknown.item_type = "profile_9.9".into();
        let err = svc.create(&caller, unknown).await.expect_err("400");
        assert_eq!(err.code(), ErrorCode::InvalidItemState);
        assert!(
            err.to_string()
                .contains("Item type \"profile_9.9\" is not defined")
        );

        let err = svc
            .create(&caller, new_item(json!({"name": "", "x": 1})))
            .await
            .expect_err("400");
        match err {
            CoreError::Invalid {
                code,
                message,
                violations,
            } => {
                assert_eq!(code, ErrorCode::InvalidItemState);
                assert!(message.starts_with("Invalid item_state: "));
                assert_eq!(violations.len(), 2);
            }
            other => panic!("unexpected {other:?}"),
        }

        let mut absent = new_item(json!({}));
        absent.state = None;
        assert!(
            svc.create(&caller, absent)
                .await
                .expect_err("400")
                .to_string()
                .contains("must be object")
        );

        let mut half_geo = new_item(json!({"name": "x"}));
        half_geo.latitude = Some(12.0);
        assert_eq!(
            svc.create(&caller, half_geo).await.expect_err("400").code(),
            ErrorCode::InvalidInput
        );
    }

    #[tokio::test]
    async fn fetch_is_owner_scoped_and_served_from_cache_when_warm() {
        let mut repository = MockItemRepository::new();
        repository
            .expect_find()
            .withf(|filter, _| filter.created_by.as_deref() == Some("u1"))
            .times(1)
            .returning(|_, _| {
                Ok(ItemPage {
                    total: 1,
                    items: vec![stored_item("u1")],
                })
            });
        let cached: Arc<std::sync::Mutex<HashMap<String, Vec<u8>>>> = Arc::default();
        let mut cache = MockCache::new();
        let reads = cached.clone();
        cache.expect_get_many().returning(move |keys| {
            let map = reads.lock().expect("lock");
            Ok(keys.iter().map(|key| map.get(key).cloned()).collect())
        });
        let writes = cached.clone();
        cache
            .expect_set()
            .times(1)
            .returning(move |key, value, ttl| {
                assert_eq!(ttl, Duration::from_secs(1));
                writes
                    .lock()
                    .expect("lock")
                    .insert(key.to_string(), value.to_vec());
                Ok(())
            });
        let svc = service(repository, cache);
        let page = PageRequest::new(None, None).expect("page");
        let first = svc
            .fetch_own(
                &Caller::new("u1"),
                ItemFilter::new("yellow_dot", "student"),
                page,
            )
            .await
            .expect("first");
        let second = svc
            .fetch_own(
                &Caller::new("u1"),
                ItemFilter::new("yellow_dot", "student"),
                page,
            )
            .await
            .expect("second");
        assert_eq!(first, second);
        assert_eq!(second.decode().expect("page").1[0].created_by, "u1");
    }

    #[tokio::test]
    async fn fetch_degrades_to_storage_when_the_cache_is_down() {
        let mut repository = MockItemRepository::new();
        repository.expect_find().times(2).returning(|_, _| {
            Ok(ItemPage {
                total: 0,
                items: vec![],
            })
        });
        let mut cache = MockCache::new();
        cache
            .expect_get_many()
            .returning(|_| Err(CoreError::storage_unavailable()));
        let svc = service(repository, cache);
        for _ in 0..2 {
            let page = svc
                .fetch_own(
                    &Caller::new("u1"),
                    ItemFilter::new("yellow_dot", "student"),
                    PageRequest::new(None, None).expect("page"),
                )
                .await
                .expect("uncached read still works");
            assert_eq!(page.decode().expect("page").0.total, 0);
        }
    }

    #[tokio::test]
    async fn update_validates_state_and_refuses_rewriting_urls() {
        let mut repository = MockItemRepository::new();
        repository
            .expect_find_owned()
            .returning(|_, owner| Ok((owner == "u1").then(|| stored_item("u1"))));
        repository
            .expect_update()
            .withf(|item| item.state == json!({"name": "Ravi"}) && item.latitude == Some(1.0))
            .times(1)
            .returning(|_| Ok(true));
        let mut cache = MockCache::new();
        cache
            .expect_increment_each()
            .returning(|_, _, _| Ok(vec![2, 2]));
        let svc = service(repository, cache);
        let owner = Caller::new("u1");

        let err = svc
            .update_own(&Caller::new("u2"), ID, ItemChanges::default())
            .await
            .expect_err("404");
        assert_eq!(err.code(), ErrorCode::ItemNotFoundOrForbidden);

        let rewrite = ItemChanges {
            schema_url: Some("http://169.254.169.254/latest".into()),
            ..ItemChanges::default()
        };
        assert_eq!(
            svc.update_own(&owner, ID, rewrite)
                .await
                .expect_err("400")
                .code(),
            ErrorCode::ImmutableField
        );

        let invalid = ItemChanges {
            state: Some(json!({"not_in_schema": true})),
            ..ItemChanges::default()
        };
        assert_eq!(
            svc.update_own(&owner, ID, invalid)
                .await
                .expect_err("400")
                .code(),
            ErrorCode::InvalidItemState
        );

        let half_geo = ItemChanges {
            latitude: Some(Some(1.0)),
            ..ItemChanges::default()
        };
        assert_eq!(
            svc.update_own(&owner, ID, half_geo)
                .await
                .expect_err("400")
                .code(),
            ErrorCode::InvalidInput
        );

        let valid = ItemChanges {
            state: Some(json!({"name": "Ravi"})),
            latitude: Some(Some(1.0)),
            longitude: Some(Some(2.0)),
            instance_url: Some("http://127.0.0.1:2742".into()),
            ..ItemChanges::default()
        };
        let updated = svc.update_own(&owner, ID, valid).await.expect("updated");
        assert_eq!(updated.longitude, Some(2.0));
    }

    #[tokio::test]
    async fn delete_is_owner_only() {
        let mut repository = MockItemRepository::new();
        repository
            .expect_find_owned()
            .returning(|_, owner| Ok((owner == "u1").then(|| stored_item("u1"))));
        repository
            .expect_delete_owned()
            .times(1)
            .returning(|_, _| Ok(true));
        let mut cache = MockCache::new();
        cache
            .expect_increment_each()
            .times(1)
            .returning(|_, _, _| Ok(vec![3, 3]));
        let svc = service(repository, cache);
        assert_eq!(
            svc.delete_own(&Caller::new("u2"), ID)
                .await
                .expect_err("404")
                .code(),
            ErrorCode::ItemNotFoundOrForbidden
        );
        svc.delete_own(&Caller::new("u1"), ID)
            .await
            .expect("deleted");
    }
}
