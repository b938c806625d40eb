//! Contract suite of the `ItemRepository` port, run against SQLite and PostgreSQL, plus the
//! migration guards. `ItemFilter::matches` is the specification every filter is checked
//! against; a property test compares both databases with it on random items and filters.

use chrono::{DateTime, TimeDelta, Utc};
use dpg_adapters::sql::{SqlDatabase, SqlItemRepository};
use dpg_core::error::{CoreError, ErrorCode};
use dpg_core::model::{GeoRadius, Item, ItemFilter, ItemKey, PageRequest, StateFilter};
use dpg_core::ports::ItemRepository;
use dpg_tests::support::postgres::TestDatabase;
use serde_json::{Value, json};
use uuid::Uuid;

/// A migrated database and a repository on it; the database is dropped with this value.
struct Backend {
    repo: SqlItemRepository,
    db: SqlDatabase,
    _database: TestDatabase,
}

async fn backend(database: TestDatabase) -> Backend {
    let db = database.migrated().await.expect("test database migrates");
    Backend {
        repo: SqlItemRepository::new(&db),
        db,
        _database: database,
    }
}

async fn sqlite_backend() -> Backend {
    backend(TestDatabase::sqlite().expect("temporary SQLite database")).await
}

async fn postgres_backend() -> Backend {
    backend(
        TestDatabase::postgres()
            .await
            .expect("PostgreSQL test database"),
    )
    .await
}

fn at(millis: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(1_750_000_000_000 + millis).expect("valid timestamp")
}

fn item(
    network: &str,
    domain: &str,
    item_type: &str,
    owner: &str,
    created_at: DateTime<Utc>,
) -> Item {
    Item {
        network: network.to_string(),
        domain: domain.to_string(),
        item_type: item_type.to_string(),
        item_id: Uuid::new_v4(),
        instance_url: "https://a.example".to_string(),
        schema_url: format!("https://schemas.example/{item_type}.json"),
        state: json!({"title": "t"}),
        latitude: None,
        longitude: None,
        created_by: owner.to_string(),
        created_at,
        updated_at: created_at,
    }
}

fn page(limit: u32, offset: u32) -> PageRequest {
    PageRequest::new(Some(limit), Some(offset)).expect("valid page")
}

/// What the repository must return: the spec filter, the global order, the slice.
fn expected_page(items: &[Item], filter: &ItemFilter, page: PageRequest) -> (u64, Vec<Item>) {
    let mut matching: Vec<Item> = items
        .iter()
        .filter(|i| filter.matches(i))
        .cloned()
        .collect();
    sort_newest_first(&mut matching);
    let total = matching.len() as u64;
    let slice = matching
        .into_iter()
        .skip(page.offset as usize)
        .take(page.limit as usize)
        .collect();
    (total, slice)
}

fn sort_newest_first(items: &mut [Item]) {
    items.sort_by(|a, b| {
        b.created_at
            .cmp(&a.created_at)
            .then(b.item_id.cmp(&a.item_id))
    });
}

async fn insert_all(repo: &dyn ItemRepository, items: &[Item]) {
    for item in items {
        repo.insert(item).await.expect("insert");
    }
}

/// Every item of (network, domain), all on one page.
async fn find_all(repo: &dyn ItemRepository, filter: &ItemFilter) -> Vec<Item> {
    let found = repo.find(filter, page(100, 0)).await.expect("find");
    assert_eq!(
        found.total as usize,
        found.items.len(),
        "more than one page in a small test"
    );
    found.items
}

fn ids(items: &[Item]) -> Vec<Uuid> {
    items.iter().map(|i| i.item_id).collect()
}

/// The contract, one async fn per behaviour, each on an empty migrated database.
mod suite {
    use super::*;

    pub async fn insert_then_find_returns_the_item_unchanged(repo: &dyn ItemRepository) {
        let mut stored = item("net", "dom", "job", "alice", at(1_234));
        stored.updated_at = at(5_678);
        stored.state = json!({"title": "Nurse", "grade": 10, "ratio": 1.5, "tags": ["a", "b"],
            "nested": {"k": null, "ok": true}, "quote\"key": "it's"});
        stored.latitude = Some(28.6139);
        stored.longitude = Some(-77.209);
        repo.insert(&stored).await.expect("insert");

        let found = repo
            .find(&ItemFilter::new("net", "dom"), page(10, 0))
            .await
            .expect("find");
        assert_eq!(found.total, 1);
        assert_eq!(found.items, vec![stored.clone()]);
        assert_eq!(
            repo.count(&ItemFilter::new("net", "dom"))
                .await
                .expect("count"),
            1
        );
        assert_eq!(
            repo.count(&ItemFilter::new("net", "other"))
                .await
                .expect("count"),
            0
        );
        repo.ping().await.expect("ping");
    }

    pub async fn duplicate_key_is_a_conflict(repo: &dyn ItemRepository) {
        let first = item("net", "dom", "job", "alice", at(0));
        repo.insert(&first).await.expect("insert");
        let mut again = first.clone();
        again.created_by = "bob".to_string();
        let err = repo.insert(&again).await.expect_err("same key twice");
        assert_eq!(
            err,
            CoreError::Conflict {
                code: ErrorCode::ItemAlreadyExists,
                message: "An item with the same type and id already exists".to_string(),
            }
        );
        // The key is (network, domain, type, id): the same id under another type is fine.
        let mut other_type = first.clone();
        other_type.item_type = "course".to_string();
        repo.insert(&other_type)
            .await
            .expect("another type, same id");
        assert_eq!(
            repo.count(&ItemFilter::new("net", "dom"))
                .await
                .expect("count"),
            2
        );
    }

    /// Concurrent creates may be written together; each still gets its own verdict.
    pub async fn concurrent_inserts_each_get_their_own_verdict(repo: &dyn ItemRepository) {
        let first = item("net", "dom", "job", "alice", at(0));
        repo.insert(&first).await.expect("insert");
        let mut batch: Vec<Item> = (1..=60)
            .map(|n| item("net", "dom", "job", "bob", at(n)))
            .collect();
        let twice = batch[30].clone();
        batch.insert(10, first.clone());
        batch.push(twice);

        let verdicts = futures::future::join_all(batch.iter().map(|i| repo.insert(i))).await;

        let conflicts: Vec<usize> = (0..verdicts.len())
            .filter(|&i| verdicts[i].is_err())
            .collect();
        for &i in &conflicts {
            assert_eq!(
                verdicts[i].as_ref().map_err(CoreError::code),
                Err(ErrorCode::ItemAlreadyExists)
            );
        }
        // The pre-existing item, and one of the two copies of `twice`.
        assert_eq!(conflicts.len(), 2, "{verdicts:?}");
        assert!(conflicts.contains(&10));
        assert_eq!(
            repo.count(&ItemFilter::new("net", "dom"))
                .await
                .expect("count"),
            61
        );
    }

    pub async fn find_owned_only_finds_the_owners_item(repo: &dyn ItemRepository) {
        let mine = item("net-x", "dom-y", "job", "alice", at(0));
        let theirs = item("net", "dom", "job", "bob", at(0));
        insert_all(repo, &[mine.clone(), theirs.clone()]).await;

        assert_eq!(
            repo.find_owned(mine.item_id, "alice").await.expect("find"),
            Some(mine.clone())
        );
        assert_eq!(
            repo.find_owned(mine.item_id, "bob").await.expect("find"),
            None
        );
        assert_eq!(
            repo.find_owned(theirs.item_id, "alice")
                .await
                .expect("find"),
            None
        );
        assert_eq!(
            repo.find_owned(Uuid::new_v4(), "alice")
                .await
                .expect("find"),
            None
        );
    }

    pub async fn update_replaces_the_mutable_columns_of_the_owners_item(repo: &dyn ItemRepository) {
        let mut original = item("net", "dom", "job", "alice", at(0));
        original.latitude = Some(10.0);
        original.longitude = Some(20.0);
        repo.insert(&original).await.expect("insert");

        let mut changed = original.clone();
        changed.state = json!({"title": "changed", "list": [1, 2]});
        changed.latitude = None;
        changed.longitude = None;
        changed.updated_at = at(60_000);
        assert!(repo.update(&changed).await.expect("update"));
        assert_eq!(
            repo.find_owned(original.item_id, "alice")
                .await
                .expect("find"),
            Some(changed.clone())
        );
        // Cleared coordinates no longer match a radius around the old point.
        let mut near_old_point = ItemFilter::new("net", "dom");
        near_old_point.geo = Some(GeoRadius::new(10.0, 20.0, 1_000.0).expect("valid"));
        assert_eq!(repo.count(&near_old_point).await.expect("count"), 0);

        let mut moved = changed.clone();
        moved.latitude = Some(-33.5);
        moved.longitude = Some(151.25);
        assert!(repo.update(&moved).await.expect("update"));
        let mut near_new_point = ItemFilter::new("net", "dom");
        near_new_point.geo = Some(GeoRadius::new(-33.5, 151.25, 10.0).expect("valid"));
        assert_eq!(repo.count(&near_new_point).await.expect("count"), 1);

        let mut by_someone_else = moved.clone();
        by_someone_else.created_by = "bob".to_string();
        by_someone_else.state = json!({"title": "hijacked"});
        assert!(!repo.update(&by_someone_else).await.expect("update"));
        let mut missing = moved.clone();
        missing.item_id = Uuid::new_v4();
        assert!(!repo.update(&missing).await.expect("update"));
        assert_eq!(
            repo.find_owned(original.item_id, "alice")
                .await
                .expect("find"),
            Some(moved)
        );
    }

    pub async fn delete_owned_removes_only_the_owners_item(repo: &dyn ItemRepository) {
        let mine = item("net", "dom", "job", "alice", at(0));
        let other = item("net", "dom", "job", "alice", at(1));
        insert_all(repo, &[mine.clone(), other.clone()]).await;

        assert!(
            !repo
                .delete_owned(mine.item_id, "bob")
                .await
                .expect("delete")
        );
        assert!(
            repo.delete_owned(mine.item_id, "alice")
                .await
                .expect("delete")
        );
        assert!(
            !repo
                .delete_owned(mine.item_id, "alice")
                .await
                .expect("delete again")
        );
        assert!(
            !repo
                .delete_owned(Uuid::new_v4(), "alice")
                .await
                .expect("delete missing")
        );
        assert_eq!(
            ids(&find_all(repo, &ItemFilter::new("net", "dom")).await),
            vec![other.item_id]
        );
    }

    pub async fn order_is_newest_first_with_item_id_breaking_ties(repo: &dyn ItemRepository) {
        // Ids chosen so that the first hex digit differs in ways a signed or text-vs-binary
        // comparison would get wrong.
        let mut items = Vec::new();
        for (i, id) in [
            "ffffffff-0000-4000-8000-000000000000",
            "0fffffff-0000-4000-8000-000000000000",
            "80000000-0000-4000-8000-000000000000",
            "7fffffff-ffff-4fff-bfff-ffffffffffff",
            "a0000000-0000-4000-8000-000000000000",
        ]
        .into_iter()
        .enumerate()
        {
            let mut tied = item("net", "dom", "job", "alice", at(1_000));
            tied.item_id = Uuid::parse_str(id).expect("uuid");
            items.push(tied);
            let mut older = item("net", "dom", "job", "alice", at(999 - i as i64));
            older.item_id = Uuid::parse_str(id).expect("uuid");
            older.item_type = "course".to_string();
            items.push(older);
        }
        insert_all(repo, &items).await;

        let found = find_all(repo, &ItemFilter::new("net", "dom")).await;
        let mut expected = items.clone();
        sort_newest_first(&mut expected);
        assert_eq!(ids(&found), ids(&expected));
        let as_strings: Vec<String> = found[..5].iter().map(|i| i.item_id.to_string()).collect();
        let mut descending = as_strings.clone();
        descending.sort_by(|a, b| b.cmp(a));
        assert_eq!(
            as_strings, descending,
            "ties broken by item_id as a lowercase string, descending"
        );
    }

    pub async fn keyset_pages_walk_the_global_order_without_overlap(repo: &dyn ItemRepository) {
        let mut items = Vec::new();
        for i in 0..23 {
            // Groups of four share a timestamp, so the id tie-break matters at page edges.
            items.push(item("net", "dom", "job", "alice", at(i / 4)));
        }
        items.push(item("net", "other", "job", "alice", at(50)));
        insert_all(repo, &items).await;
        let filter = ItemFilter::new("net", "dom");
        let mut expected: Vec<Item> = items
            .iter()
            .filter(|i| i.domain == "dom")
            .cloned()
            .collect();
        sort_newest_first(&mut expected);

        for limit in [1, 3, 4, 5, 30] {
            let mut seen: Vec<Item> = Vec::new();
            let mut after = None;
            loop {
                let found = repo
                    .find_after(&filter, after, limit)
                    .await
                    .expect("find_after");
                assert!(found.len() <= limit as usize);
                let Some(last) = found.last() else { break };
                after = Some(ItemKey::of(last));
                seen.extend(found);
            }
            assert_eq!(ids(&seen), ids(&expected), "limit {limit}");
        }
    }

    pub async fn pages_neither_overlap_nor_leave_gaps(repo: &dyn ItemRepository) {
        let mut items = Vec::new();
        for i in 0..23 {
            // Groups of four share a timestamp.
            items.push(item("net", "dom", "job", "alice", at(i / 4)));
        }
        insert_all(repo, &items).await;
        let filter = ItemFilter::new("net", "dom");

        let mut seen = Vec::new();
        for offset in (0..30).step_by(5) {
            let found = repo.find(&filter, page(5, offset)).await.expect("find");
            assert_eq!(found.total, 23);
            assert!(found.items.len() <= 5);
            seen.extend(found.items);
        }
        let mut expected = items.clone();
        sort_newest_first(&mut expected);
        assert_eq!(ids(&seen), ids(&expected));
        let beyond = repo.find(&filter, page(5, 100)).await.expect("find");
        assert_eq!((beyond.total, beyond.items.len()), (23, 0));
    }

    pub async fn identity_filters_select_exactly(repo: &dyn ItemRepository) {
        let a = item("net", "dom", "job", "alice", at(0));
        let mut b = item("net", "dom", "course", "bob", at(1));
        b.instance_url = "https://b.example".to_string();
        let c = item("net", "other-dom", "job", "alice", at(2));
        let d = item("other-net", "dom", "job", "alice", at(3));
        let all = vec![a.clone(), b.clone(), c.clone(), d.clone()];
        insert_all(repo, &all).await;

        let base = ItemFilter::new("net", "dom");
        let filters = [
            base.clone(),
            ItemFilter {
                item_type: Some("job".into()),
                ..base.clone()
            },
            ItemFilter {
                item_type: Some("none".into()),
                ..base.clone()
            },
            ItemFilter {
                item_id: Some(b.item_id),
                ..base.clone()
            },
            ItemFilter {
                item_id: Some(c.item_id),
                ..base.clone()
            },
            ItemFilter {
                instance_url: Some("https://b.example".into()),
                ..base.clone()
            },
            ItemFilter {
                schema_url: Some(a.schema_url.clone()),
                ..base.clone()
            },
            ItemFilter {
                created_by: Some("alice".into()),
                ..base.clone()
            },
            ItemFilter {
                created_by: Some("carol".into()),
                ..base.clone()
            },
            ItemFilter::new("net", "other-dom"),
            ItemFilter::new("other-net", "dom"),
            ItemFilter::new("NET", "dom"),
        ];
        for filter in filters {
            let (total, expected) = expected_page(&all, &filter, page(100, 0));
            let found = repo.find(&filter, page(100, 0)).await.expect("find");
            assert_eq!(ids(&found.items), ids(&expected), "{filter:?}");
            assert_eq!(found.total, total, "{filter:?}");
            assert_eq!(
                repo.count(&filter).await.expect("count"),
                total,
                "{filter:?}"
            );
        }
    }

    pub async fn state_containment_follows_jsonb(repo: &dyn ItemRepository) {
        let states = [
            json!({"city": "Pune", "grade": 10, "ratio": 1.5, "open": true, "closed": false, "none": null}),
            json!({"city": "Delhi", "grade": "10", "tags": ["rust", "sql"], "loc": {"c": "IN", "z": {"deep": 1}}}),
            json!({"skills": [{"name": "rust", "level": 3}, {"name": "go", "level": 1}], "grade": 10.0}),
            json!({"it's": "q", "a.b": 1, "[0]": "br", "$k": "dollar", "x\"y": "dq", "": "empty", "%_": "like"}),
            json!({"tags": ["rust"], "nested": [[1, 2], [3]], "text": "{\"city\": \"Pune\"}"}),
            json!({}),
        ];
        let mut items = Vec::new();
        for (i, state) in states.iter().enumerate() {
            let mut it = item("net", "dom", "job", "alice", at(i as i64));
            it.state = state.clone();
            items.push(it);
        }
        insert_all(repo, &items).await;

        // (filter, indexes of the states expected to match)
        let cases: Vec<(Value, Vec<usize>)> = vec![
            (json!({}), vec![0, 1, 2, 3, 4, 5]),
            (json!({"city": "Pune"}), vec![0]),
            (json!({"city": "pune"}), vec![]),
            (json!({"grade": 10}), vec![0, 2]),
            (json!({"grade": 10.0}), vec![0, 2]),
            (json!({"grade": "10"}), vec![1]),
            (json!({"ratio": 1.5}), vec![0]),
            (json!({"open": true}), vec![0]),
            (json!({"open": false}), vec![]),
            (json!({"closed": false}), vec![0]),
            (json!({"closed": 0}), vec![]),
            (json!({"none": null}), vec![0]),
            (json!({"missing": null}), vec![]),
            (json!({"tags": ["sql"]}), vec![1]),
            (json!({"tags": ["rust"]}), vec![1, 4]),
            (json!({"tags": ["sql", "rust"]}), vec![1]),
            (json!({"tags": []}), vec![1, 4]),
            (json!({"tags": "rust"}), vec![]),
            (json!({"tags": ["java"]}), vec![]),
            (json!({"loc": {"c": "IN"}}), vec![1]),
            (json!({"loc": {"z": {"deep": 1}}}), vec![1]),
            (json!({"loc": {"c": "IN", "y": 2}}), vec![]),
            (json!({"loc": {}}), vec![1]),
            (json!({"skills": [{"name": "rust"}]}), vec![2]),
            (json!({"skills": [{"name": "rust", "level": 1}]}), vec![]),
            (json!({"skills": [{"name": "go"}, {"level": 3}]}), vec![2]),
            (json!({"nested": [[2]]}), vec![4]),
            (json!({"nested": [[2, 3]]}), vec![]),
            (json!({"it's": "q"}), vec![3]),
            (json!({"a.b": 1}), vec![3]),
            (json!({"[0]": "br"}), vec![3]),
            (json!({"$k": "dollar"}), vec![3]),
            (json!({"x\"y": "dq"}), vec![3]),
            (json!({"": "empty"}), vec![3]),
            (json!({"%_": "like"}), vec![3]),
            (json!({"%": "like"}), vec![]),
            (json!({"a": {"b": 1}}), vec![]),
            (json!({"text": {"city": "Pune"}}), vec![]),
            (json!({"city": "Pune'; DROP TABLE items; --"}), vec![]),
        ];
        for (wanted, expected) in cases {
            let mut filter = ItemFilter::new("net", "dom");
            filter.state = Some(StateFilter::new(wanted.clone()).expect("valid filter"));
            let expected_ids: Vec<Uuid> = {
                let mut matching: Vec<Item> = expected.iter().map(|i| items[*i].clone()).collect();
                sort_newest_first(&mut matching);
                ids(&matching)
            };
            // The cases above are written against the specification itself.
            let (_, by_spec) = expected_page(&items, &filter, page(100, 0));
            assert_eq!(
                ids(&by_spec),
                expected_ids,
                "case disagrees with ItemFilter::matches: {wanted}"
            );
            assert_eq!(
                ids(&find_all(repo, &filter).await),
                expected_ids,
                "{wanted}"
            );
            assert_eq!(
                repo.count(&filter).await.expect("count"),
                expected.len() as u64,
                "{wanted}"
            );
        }
    }

    pub async fn geo_radius_is_inclusive_and_skips_items_without_coordinates(
        repo: &dyn ItemRepository,
    ) {
        let located = |lat: f64, lng: f64, i: i64| {
            let mut it = item("net", "dom", "job", "alice", at(i));
            it.latitude = Some(lat);
            it.longitude = Some(lng);
            it
        };
        let delhi = located(28.6139, 77.2090, 0);
        let gurgaon = located(28.4595, 77.0266, 1);
        let mumbai = located(19.0760, 72.8777, 2);
        let east_of_antimeridian = located(-16.5, -179.95, 3);
        let west_of_antimeridian = located(-16.5, 179.95, 4);
        let near_pole = located(89.99, 10.0, 5);
        let far_side_of_pole = located(89.99, -170.0, 6);
        let nowhere = item("net", "dom", "job", "alice", at(7));
        let all = vec![
            delhi.clone(),
            gurgaon.clone(),
            mumbai.clone(),
            east_of_antimeridian.clone(),
            west_of_antimeridian.clone(),
            near_pole.clone(),
            far_side_of_pole.clone(),
            nowhere.clone(),
        ];
        insert_all(repo, &all).await;

        let centre = GeoRadius::new(28.6139, 77.2090, 1.0).expect("valid");
        let to_gurgaon = centre.distance_to(28.4595, 77.0266);
        let to_mumbai = centre.distance_to(19.0760, 72.8777);
        let radii = [
            (28.6139, 77.2090, 1.0),
            (28.6139, 77.2090, to_gurgaon),
            // One millimetre short: outside (the adapters' slack is far below that).
            (28.6139, 77.2090, to_gurgaon - 0.001),
            (28.6139, 77.2090, to_mumbai),
            (28.6139, 77.2090, to_mumbai - 0.01),
            (-16.5, 180.0, 20_000.0),
            (-16.5, -180.0, 6_000.0),
            (90.0, 0.0, 2_000.0),
            (0.0, 0.0, GeoRadius::MAX_RADIUS_METERS),
        ];
        for (lat, lng, radius) in radii {
            let geo = GeoRadius::new(lat, lng, radius).expect("valid");
            let mut filter = ItemFilter::new("net", "dom");
            filter.geo = Some(geo);
            let (total, expected) = expected_page(&all, &filter, page(100, 0));
            let found = find_all(repo, &filter).await;
            assert_eq!(ids(&found), ids(&expected), "{geo:?}");
            assert_eq!(repo.count(&filter).await.expect("count"), total, "{geo:?}");
            assert!(!ids(&found).contains(&nowhere.item_id));
        }

        // On the circle, as decided by GeoRadius::contains, is inside on both databases.
        let mut on_circle = ItemFilter::new("net", "dom");
        on_circle.geo = Some(GeoRadius::new(28.6139, 77.2090, to_gurgaon).expect("valid"));
        assert!(on_circle.matches(&gurgaon));
        assert_eq!(
            ids(&find_all(repo, &on_circle).await),
            vec![gurgaon.item_id, delhi.item_id]
        );
        let mut across_antimeridian = ItemFilter::new("net", "dom");
        across_antimeridian.geo = Some(GeoRadius::new(-16.5, 180.0, 20_000.0).expect("valid"));
        assert_eq!(
            ids(&find_all(repo, &across_antimeridian).await),
            vec![west_of_antimeridian.item_id, east_of_antimeridian.item_id]
        );
        let mut whole_sphere = ItemFilter::new("net", "dom");
        whole_sphere.geo =
            Some(GeoRadius::new(0.0, 0.0, GeoRadius::MAX_RADIUS_METERS).expect("valid"));
        assert_eq!(repo.count(&whole_sphere).await.expect("count"), 7);
    }

    pub async fn filters_combine_with_and(repo: &dyn ItemRepository) {
        let mut a = item("net", "dom", "job", "alice", at(0));
        a.state = json!({"k": "v"});
        a.latitude = Some(1.0);
        a.longitude = Some(1.0);
        let mut b = a.clone();
        b.item_id = Uuid::new_v4();
        b.created_by = "bob".to_string();
        let mut c = a.clone();
        c.item_id = Uuid::new_v4();
        c.state = json!({"k": "w"});
        let all = vec![a.clone(), b, c];
        insert_all(repo, &all).await;

        let mut filter = ItemFilter::new("net", "dom");
        filter.created_by = Some("alice".into());
        filter.item_type = Some("job".into());
        filter.state = Some(StateFilter::new(json!({"k": "v"})).expect("valid"));
        filter.geo = Some(GeoRadius::new(1.0, 1.0, 10.0).expect("valid"));
        assert_eq!(ids(&find_all(repo, &filter).await), vec![a.item_id]);
        assert_eq!(repo.count(&filter).await.expect("count"), 1);
    }

    /// Timestamps come back exactly as written (milliseconds, UTC), whatever their digits.
    pub async fn timestamps_round_trip(repo: &dyn ItemRepository) {
        let mut items = Vec::new();
        for millis in [0, 1, 10, 100, 999, 1_000, 59_999] {
            let mut it = item("net", "dom", "job", "alice", at(millis));
            it.updated_at = at(millis) + TimeDelta::days(400);
            items.push(it);
        }
        insert_all(repo, &items).await;
        let mut expected = items.clone();
        sort_newest_first(&mut expected);
        assert_eq!(
            find_all(repo, &ItemFilter::new("net", "dom")).await,
            expected
        );
    }
}

/// Runs each suite function against a fresh database of each backend.
macro_rules! contract_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let backend = super::sqlite_backend().await;
                    super::suite::$name(&backend.repo).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let backend = super::postgres_backend().await;
                    super::suite::$name(&backend.repo).await;
                }
            )*
        }
    };
}

contract_tests!(
    insert_then_find_returns_the_item_unchanged,
    duplicate_key_is_a_conflict,
    concurrent_inserts_each_get_their_own_verdict,
    find_owned_only_finds_the_owners_item,
    update_replaces_the_mutable_columns_of_the_owners_item,
    delete_owned_removes_only_the_owners_item,
    order_is_newest_first_with_item_id_breaking_ties,
    pages_neither_overlap_nor_leave_gaps,
    keyset_pages_walk_the_global_order_without_overlap,
    identity_filters_select_exactly,
    state_containment_follows_jsonb,
    geo_radius_is_inclusive_and_skips_items_without_coordinates,
    filters_combine_with_and,
    timestamps_round_trip,
);

/// Failures reach the caller as the port's error variants, without SQL.
mod failures {
    use super::*;

    async fn closed_database_is_unavailable(backend: Backend) {
        backend.db.close().await;
        let repo: &dyn ItemRepository = &backend.repo;
        let unavailable = CoreError::storage_unavailable();
        assert_eq!(repo.ping().await, Err(unavailable.clone()));
        assert_eq!(
            repo.count(&ItemFilter::new("n", "d")).await,
            Err(unavailable.clone())
        );
        let it = item("n", "d", "t", "u", at(0));
        assert_eq!(repo.insert(&it).await, Err(unavailable));
    }

    async fn broken_schema_is_internal_without_sql(backend: Backend, database_sql: &str) {
        backend
            ._database
            .execute(database_sql)
            .await
            .expect("drop the table");
        let err = backend
            .repo
            .find(&ItemFilter::new("n", "d"), page(10, 0))
            .await
            .expect_err("the table is gone");
        let CoreError::Internal(message) = &err else {
            panic!("expected an internal error, got {err:?}");
        };
        for sql_word in ["SELECT", "FROM", "WHERE", "relation", "no such table"] {
            assert!(!message.contains(sql_word), "{message}");
        }
    }

    #[tokio::test]
    async fn sqlite_closed_database_is_unavailable() {
        closed_database_is_unavailable(sqlite_backend().await).await;
    }

    #[tokio::test]
    async fn postgres_closed_database_is_unavailable() {
        closed_database_is_unavailable(postgres_backend().await).await;
    }

    #[tokio::test]
    async fn sqlite_broken_schema_is_internal_without_sql() {
        broken_schema_is_internal_without_sql(sqlite_backend().await, "DROP TABLE items").await;
    }

    #[tokio::test]
    async fn postgres_broken_schema_is_internal_without_sql() {
        broken_schema_is_internal_without_sql(postgres_backend().await, "DROP TABLE items").await;
    }
}

/// Start-up: migrations are repeatable, concurrent replicas are safe, foreign tables refused.
mod migrations {
    use dpg_adapters::sql::SqlSetupError;

    use super::*;

    async fn migrating_twice_is_harmless(database: TestDatabase) {
        let db = database.migrated().await.expect("first migration");
        let repo = SqlItemRepository::new(&db);
        let kept = item("net", "dom", "job", "alice", at(0));
        repo.insert(&kept).await.expect("insert");
        db.migrate().await.expect("second migration");
        let again = database.connect().await.expect("connect");
        again.migrate().await.expect("migration from a new pool");
        assert_eq!(
            repo.find_owned(kept.item_id, "alice").await.expect("find"),
            Some(kept)
        );
        let stats = db.pool_stats();
        assert!(
            stats.max >= 1 && stats.in_use + stats.idle <= stats.max,
            "{stats:?}"
        );
    }

    async fn foreign_items_table_is_refused(
        database: TestDatabase,
        foreign_sql: &str,
        reason: &str,
    ) {
        database
            .execute(foreign_sql)
            .await
            .expect("create the foreign table");
        let db = database.connect().await.expect("connect");
        let err = db
            .migrate()
            .await
            .expect_err("a foreign items table must be refused");
        assert!(matches!(err, SqlSetupError::ForeignSchema(_)), "{err:?}");
        assert!(err.to_string().contains(reason), "{err}");
        // Nothing of ours was created next to it.
        let again = db.migrate().await.expect_err("still refused");
        assert!(
            matches!(again, SqlSetupError::ForeignSchema(_)),
            "{again:?}"
        );
    }

    #[tokio::test]
    async fn sqlite_migrating_twice_is_harmless() {
        migrating_twice_is_harmless(TestDatabase::sqlite().expect("sqlite")).await;
    }

    #[tokio::test]
    async fn postgres_migrating_twice_is_harmless() {
        migrating_twice_is_harmless(TestDatabase::postgres().await.expect("postgres")).await;
    }

    #[tokio::test]
    async fn postgres_replicas_can_migrate_together() {
        let database = TestDatabase::postgres().await.expect("postgres");
        let replicas = futures::future::join_all((0..4).map(|_| async {
            let db = database.connect().await.expect("connect");
            db.migrate().await
        }))
        .await;
        for result in replicas {
            result.expect("every replica migrates");
        }
        let db = database.connect().await.expect("connect");
        let repo = SqlItemRepository::new(&db);
        repo.insert(&item("net", "dom", "job", "alice", at(0)))
            .await
            .expect("insert");
    }

    #[tokio::test]
    async fn sqlite_foreign_items_table_is_refused() {
        foreign_items_table_is_refused(
            TestDatabase::sqlite().expect("sqlite"),
            "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)",
            "not created by this program",
        )
        .await;
    }

    #[tokio::test]
    async fn postgres_partitioned_items_table_is_refused() {
        foreign_items_table_is_refused(
            TestDatabase::postgres().await.expect("postgres"),
            "CREATE TABLE items (item_network text NOT NULL, item_domain text NOT NULL, \
             item_type text NOT NULL, item_id uuid NOT NULL, item_state jsonb NOT NULL DEFAULT '{}', \
             PRIMARY KEY (item_network, item_domain, item_type, item_id)) PARTITION BY LIST (item_type); \
             CREATE TABLE items_job PARTITION OF items FOR VALUES IN ('job')",
            "partitioned",
        )
        .await;
    }

    #[tokio::test]
    async fn postgres_plain_foreign_items_table_is_refused() {
        foreign_items_table_is_refused(
            TestDatabase::postgres().await.expect("postgres"),
            "CREATE TABLE items (id serial PRIMARY KEY)",
            "not created by this program",
        )
        .await;
    }

    #[tokio::test]
    async fn sqlite_unknown_recorded_migration_is_refused() {
        let database = TestDatabase::sqlite().expect("sqlite");
        database.migrated().await.expect("migrate");
        database
            .execute("INSERT INTO dpg_schema_migrations (version, applied_at) VALUES ('m29990101_000001_future', 0)")
            .await
            .expect("record a future migration");
        let db = database.connect().await.expect("connect");
        let err = db.migrate().await.expect_err("unknown migration");
        assert!(err.to_string().contains("m29990101_000001_future"), "{err}");
    }
}

/// Random items and filters: both databases return exactly what the specification returns.
mod agreement {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestCaseError, TestRunner};
    use serde_json::Map;

    use super::*;

    const NETWORKS: [&str; 2] = ["net-a", "net-b"];
    const DOMAINS: [&str; 2] = ["dom-a", "dom-b"];
    const TYPES: [&str; 2] = ["job", "course"];
    const OWNERS: [&str; 2] = ["alice", "bob"];
    const URLS: [&str; 2] = ["https://a.example", "https://b.example"];
    const KEYS: [&str; 8] = ["a", "b", "c.d", "x\"y", "[0]", "$k", "it's", ""];

    #[derive(Debug, Clone)]
    struct GeneratedItem {
        network: usize,
        domain: usize,
        item_type: usize,
        owner: usize,
        instance_url: usize,
        schema_url: usize,
        id: u128,
        created_at: i64,
        state: Map<String, Value>,
        point: Option<(f64, f64)>,
    }

    #[derive(Debug, Clone)]
    enum StateSpec {
        Random(Map<String, Value>),
        /// A pruned copy of one item's state (so that matches happen).
        FromItem(usize, u64),
    }

    #[derive(Debug, Clone)]
    enum GeoSpec {
        Random(f64, f64, f64),
        /// Centred somewhere, with the radius reaching exactly one item.
        ThroughItem(f64, f64, usize),
    }

    #[derive(Debug, Clone)]
    struct GeneratedQuery {
        network: usize,
        domain: usize,
        item_type: Option<usize>,
        item_id_of: Option<usize>,
        instance_url: Option<usize>,
        schema_url: Option<usize>,
        owner: Option<usize>,
        state: Option<StateSpec>,
        geo: Option<GeoSpec>,
        limit: u32,
        offset: u32,
    }

    fn leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            prop::sample::select(vec!["x", "y", "10", ""])
                .prop_map(|s| Value::String(s.to_string())),
            prop::sample::select(vec![0i64, 1, 10, -3]).prop_map(|n| json!(n)),
            prop::sample::select(vec![10.0f64, 1.5, -0.5]).prop_map(|f| json!(f)),
            any::<bool>().prop_map(Value::Bool),
            Just(Value::Null),
        ]
    }

    fn key() -> impl Strategy<Value = String> {
        prop::sample::select(KEYS.to_vec()).prop_map(str::to_string)
    }

    fn json_value() -> impl Strategy<Value = Value> {
        leaf().prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(key(), inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn state() -> impl Strategy<Value = Map<String, Value>> {
        prop::collection::btree_map(key(), json_value(), 0..5).prop_map(|m| m.into_iter().collect())
    }

    /// Two clusters: one around (41, 0), one straddling the antimeridian.
    fn point() -> impl Strategy<Value = Option<(f64, f64)>> {
        prop::option::weighted(
            0.75,
            (any::<bool>(), -1.0f64..1.0, -1.0f64..1.0).prop_map(|(antimeridian, dlat, dlng)| {
                if antimeridian {
                    let lng = 179.5 + dlng;
                    (dlat, if lng > 180.0 { lng - 360.0 } else { lng })
                } else {
                    (41.0 + dlat, dlng)
                }
            }),
        )
    }

    /// Network and domain indexes: most items and queries share one (network, domain), so
    /// that pages are usually non-empty.
    fn mostly_first() -> impl Strategy<Value = usize> {
        prop::sample::select(vec![0usize, 0, 0, 1])
    }

    fn generated_item() -> impl Strategy<Value = GeneratedItem> {
        (
            (
                mostly_first(),
                mostly_first(),
                0..2usize,
                0..2usize,
                0..2usize,
                0..2usize,
            ),
            any::<u128>(),
            (0..5i64, prop::sample::select(vec![0i64, 1, 999])),
            state(),
            point(),
        )
            .prop_map(
                |(
                    (network, domain, item_type, owner, instance_url, schema_url),
                    id,
                    (second, millis),
                    state,
                    point,
                )| {
                    GeneratedItem {
                        network,
                        domain,
                        item_type,
                        owner,
                        instance_url,
                        schema_url,
                        id,
                        created_at: second * 1_000 + millis,
                        state,
                        point,
                    }
                },
            )
    }

    fn generated_query() -> impl Strategy<Value = GeneratedQuery> {
        let state = prop::option::weighted(
            0.5,
            prop_oneof![
                state().prop_map(StateSpec::Random),
                (any::<usize>(), any::<u64>()).prop_map(|(i, seed)| StateSpec::FromItem(i, seed)),
            ],
        );
        let geo = prop::option::weighted(
            0.4,
            prop_oneof![
                (point(), 1.0f64..300_000.0).prop_map(|(p, r)| {
                    let (lat, lng) = p.unwrap_or((41.0, 0.0));
                    GeoSpec::Random(lat, lng, r)
                }),
                (point(), any::<usize>()).prop_map(|(p, i)| {
                    let (lat, lng) = p.unwrap_or((0.0, 179.5));
                    GeoSpec::ThroughItem(lat, lng, i)
                }),
            ],
        );
        (
            (mostly_first(), mostly_first()),
            (
                prop::option::weighted(0.3, 0..2usize),
                prop::option::weighted(0.1, any::<usize>()),
                prop::option::weighted(0.2, 0..2usize),
                prop::option::weighted(0.2, 0..2usize),
                prop::option::weighted(0.3, 0..2usize),
            ),
            state,
            geo,
            (1..8u32, prop_oneof![3 => 0..3u32, 1 => 0..10u32]),
        )
            .prop_map(
                |(
                    (network, domain),
                    (item_type, item_id_of, instance_url, schema_url, owner),
                    state,
                    geo,
                    (limit, offset),
                )| {
                    GeneratedQuery {
                        network,
                        domain,
                        item_type,
                        item_id_of,
                        instance_url,
                        schema_url,
                        owner,
                        state,
                        geo,
                        limit,
                        offset,
                    }
                },
            )
    }

    /// Keeps about two thirds of the object's keys and array elements, recursively: the result is
    /// always contained in the input.
    fn prune(value: &Value, seed: &mut u64) -> Value {
        let mut keep = || {
            *seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            !(*seed >> 33).is_multiple_of(3)
        };
        match value {
            Value::Object(map) => {
                let kept: Vec<(String, Value)> = map
                    .iter()
                    .filter(|_| keep())
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                Value::Object(
                    kept.into_iter()
                        .map(|(k, v)| (k, prune(&v, seed)))
                        .collect(),
                )
            }
            Value::Array(items) => {
                let kept: Vec<Value> = items.iter().filter(|_| keep()).cloned().collect();
                Value::Array(kept.iter().map(|v| prune(v, seed)).collect())
            }
            scalar => scalar.clone(),
        }
    }

    fn to_items(namespace: &str, generated: &[GeneratedItem]) -> Vec<Item> {
        generated
            .iter()
            .map(|g| Item {
                network: format!("{namespace}{}", NETWORKS[g.network]),
                domain: DOMAINS[g.domain].to_string(),
                item_type: TYPES[g.item_type].to_string(),
                item_id: Uuid::from_u128(g.id),
                instance_url: URLS[g.instance_url].to_string(),
                schema_url: format!("{}/schema.json", URLS[g.schema_url]),
                state: Value::Object(g.state.clone()),
                latitude: g.point.map(|p| p.0),
                longitude: g.point.map(|p| p.1),
                created_by: OWNERS[g.owner].to_string(),
                created_at: at(g.created_at),
                updated_at: at(g.created_at),
            })
            .collect()
    }

    fn to_filter(namespace: &str, query: &GeneratedQuery, items: &[Item]) -> ItemFilter {
        let pick = |i: usize| &items[i % items.len()];
        let mut filter = ItemFilter::new(
            format!("{namespace}{}", NETWORKS[query.network]),
            DOMAINS[query.domain],
        );
        filter.item_type = query.item_type.map(|i| TYPES[i].to_string());
        filter.item_id = query
            .item_id_of
            .filter(|_| !items.is_empty())
            .map(|i| pick(i).item_id);
        filter.instance_url = query.instance_url.map(|i| URLS[i].to_string());
        filter.schema_url = query.schema_url.map(|i| format!("{}/schema.json", URLS[i]));
        filter.created_by = query.owner.map(|i| OWNERS[i].to_string());
        filter.state = match &query.state {
            Some(StateSpec::Random(map)) => StateFilter::new(Value::Object(map.clone())).ok(),
            Some(StateSpec::FromItem(i, seed)) if !items.is_empty() => {
                // Prefer an item the other conditions may also select.
                let same_place: Vec<&Item> = items
                    .iter()
                    .filter(|it| it.network == filter.network && it.domain == filter.domain)
                    .collect();
                let source = same_place
                    .get(*i % same_place.len().max(1))
                    .copied()
                    .unwrap_or(pick(*i));
                StateFilter::new(prune(&source.state, &mut seed.clone())).ok()
            }
            _ => None,
        };
        filter.geo = match query.geo {
            Some(GeoSpec::Random(lat, lng, radius)) => GeoRadius::new(lat, lng, radius).ok(),
            Some(GeoSpec::ThroughItem(lat, lng, i)) => {
                let located: Vec<&Item> = items.iter().filter(|it| it.latitude.is_some()).collect();
                located.get(i % located.len().max(1)).and_then(|target| {
                    let (tlat, tlng) = (target.latitude?, target.longitude?);
                    let radius = GeoRadius::new(lat, lng, 1.0).ok()?.distance_to(tlat, tlng);
                    GeoRadius::new(lat, lng, radius.max(1.0)).ok()
                })
            }
            None => None,
        };
        filter
    }

    /// How often the generated filters selected something, so that a generator that stopped
    /// producing matches cannot pass unnoticed.
    #[derive(Debug, Default)]
    struct Coverage {
        state_matches: std::cell::Cell<u64>,
        geo_matches: std::cell::Cell<u64>,
        pages_with_items: std::cell::Cell<u64>,
    }

    impl Coverage {
        fn record(&self, filter: &ItemFilter, total: u64, page_len: usize) {
            let bump = |cell: &std::cell::Cell<u64>| cell.set(cell.get() + 1);
            if total > 0
                && filter
                    .state
                    .as_ref()
                    .is_some_and(|s| !s.as_map().is_empty())
            {
                bump(&self.state_matches);
            }
            if total > 0 && filter.geo.is_some() {
                bump(&self.geo_matches);
            }
            if page_len > 0 {
                bump(&self.pages_with_items);
            }
        }
    }

    async fn check(
        repo: &dyn ItemRepository,
        generated: Vec<GeneratedItem>,
        queries: Vec<GeneratedQuery>,
        coverage: &Coverage,
    ) -> Result<(), TestCaseError> {
        // Every case writes under its own network names, so earlier cases never match.
        let namespace = format!("{}-", Uuid::new_v4().simple());
        let items = to_items(&namespace, &generated);
        for item in &items {
            repo.insert(item)
                .await
                .map_err(|e| TestCaseError::fail(format!("insert failed: {e}")))?;
        }
        for query in &queries {
            let filter = to_filter(&namespace, query, &items);
            let requested = page(query.limit, query.offset);
            let (total, expected) = expected_page(&items, &filter, requested);
            let found = repo
                .find(&filter, requested)
                .await
                .map_err(|e| TestCaseError::fail(format!("find failed: {e}")))?;
            prop_assert_eq!(found.total, total, "total for {:?}", filter);
            prop_assert_eq!(&found.items, &expected, "page for {:?}", filter);
            let counted = repo
                .count(&filter)
                .await
                .map_err(|e| TestCaseError::fail(format!("count failed: {e}")))?;
            prop_assert_eq!(counted, total, "count for {:?}", filter);
            coverage.record(&filter, total, expected.len());
        }
        Ok(())
    }

    #[derive(Debug, Clone, Copy)]
    enum Which {
        Sqlite,
        Postgres,
    }

    fn agree_with_the_specification(which: Which) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let backend = runtime.block_on(async move {
            match which {
                Which::Sqlite => sqlite_backend().await,
                Which::Postgres => postgres_backend().await,
            }
        });
        let mut runner = TestRunner::new(Config {
            // PROPTEST_CASES runs a deeper search (e.g. 2000) when wanted.
            cases: std::env::var("PROPTEST_CASES")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(64),
            failure_persistence: None,
            ..Config::default()
        });
        let scenario = (
            prop::collection::vec(generated_item(), 0..24),
            prop::collection::vec(generated_query(), 1..8),
        );
        let coverage = Coverage::default();
        let result = runner.run(&scenario, |(generated, queries)| {
            runtime.block_on(check(&backend.repo, generated, queries, &coverage))
        });
        if let Err(failure) = result {
            panic!("{which:?} disagrees with ItemFilter::matches: {failure}");
        }
        assert!(
            coverage.state_matches.get() >= 5,
            "too few matching state filters: {coverage:?}"
        );
        assert!(
            coverage.geo_matches.get() >= 5,
            "too few matching radius filters: {coverage:?}"
        );
        assert!(
            coverage.pages_with_items.get() >= 20,
            "too few non-empty pages: {coverage:?}"
        );
        eprintln!("{which:?}: {coverage:?}");
    }

    #[test]
    fn sqlite_agrees_with_the_specification() {
        agree_with_the_specification(Which::Sqlite);
    }

    #[test]
    fn postgres_agrees_with_the_specification() {
        agree_with_the_specification(Which::Postgres);
    }
}
