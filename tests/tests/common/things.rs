//! Things through the storage capability, as the tests create, query and read them.

use schema::object_capnp::storage;
use serde_json::Value;

/// A Thing as the tests look at it.
#[derive(Debug, Clone)]
pub struct Thing {
    /// Its `id`.
    pub id: String,
    /// Its `data`.
    pub data: Value,
    /// Its `version`.
    pub version: u64,
    /// Its `deleted_at`.
    pub deleted_at: i64,
}

/// A Thing from its capnp form.
pub fn thing(t: schema::object_capnp::thing::Reader<'_>) -> Thing {
    Thing {
        id: t.get_id().unwrap().to_string().unwrap(),
        data: serde_json::from_str(t.get_data().unwrap().to_str().unwrap()).unwrap(),
        version: t.get_version(),
        deleted_at: t.get_deleted_at(),
    }
}

/// Creates a Thing.
pub async fn create(s: &storage::Client, type_: &str, id: &str, data: Value) -> Result<Thing, rpc_core::RpcError> {
    let mut req = s.create_request();
    req.get().set_type(type_);
    req.get().set_id(id);
    req.get().set_data(data.to_string());
    let r = req.send().promise.await?;
    Ok(thing(r.get()?.get_thing()?))
}

/// Runs a query: the Things and the cursor.
pub async fn query(s: &storage::Client, q: Value) -> Result<(Vec<Thing>, String), rpc_core::RpcError> {
    let mut req = s.query_request();
    req.get().set_query(q.to_string());
    let r = req.send().promise.await?;
    let r = r.get()?;
    Ok((r.get_things()?.iter().map(thing).collect(), r.get_cursor()?.to_string().unwrap()))
}

/// The sorted ids a query returns.
pub async fn ids(s: &storage::Client, q: Value) -> Vec<String> {
    let (things, _) = query(s, q.clone()).await.unwrap_or_else(|e| panic!("query {q}: {e}"));
    let mut ids: Vec<String> = things.into_iter().map(|t| t.id).collect();
    ids.sort();
    ids
}

/// What a count query counts.
pub async fn count(s: &storage::Client, q: Value) -> u64 {
    let mut req = s.count_request();
    req.get().set_query(q.to_string());
    req.send().promise.await.expect("count").get().unwrap().get_count()
}

/// Creates an index from its JSON spec: the spec as stored, and whether it is new.
pub async fn index(s: &storage::Client, spec: Value) -> Result<(Value, bool), rpc_core::RpcError> {
    let mut req = s.index_request();
    req.get().set_spec(spec.to_string());
    let r = req.send().promise.await?;
    let r = r.get()?;
    Ok((serde_json::from_str(r.get_index()?.to_str().unwrap_or("")).unwrap_or(Value::Null), r.get_created()))
}

/// The object's indexes (their names).
pub async fn index_names(s: &storage::Client) -> Vec<String> {
    let r = s.indexes_request().send().promise.await.expect("indexes");
    let list: Value = serde_json::from_str(r.get().unwrap().get_indexes().unwrap().to_str().unwrap()).unwrap();
    list.as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap().to_string()).collect()
}

/// Drops an index: whether it was there.
pub async fn drop_index(s: &storage::Client, name: &str) -> bool {
    let mut req = s.drop_index_request();
    req.get().set_name(name);
    req.send().promise.await.expect("dropIndex").get().unwrap().get_dropped()
}

/// SQLite's plan for a query, its steps joined by newlines.
pub async fn explain(s: &storage::Client, q: &Value) -> String {
    let mut req = s.explain_request();
    req.get().set_query(q.to_string());
    let r = req.send().promise.await.expect("explain");
    let plan: Vec<String> =
        r.get().unwrap().get_plan().unwrap().iter().map(|l| l.unwrap().to_string().unwrap()).collect();
    plan.join("\n")
}

/// The ids a query returns, in its order.
pub async fn ordered_ids(s: &storage::Client, q: Value) -> Vec<String> {
    let (things, _) = query(s, q.clone()).await.unwrap_or_else(|e| panic!("query {q}: {e}"));
    things.into_iter().map(|t| t.id).collect()
}

/// Relates two Things: the verb as stored and whether the relationship is new.
pub async fn relate(
    s: &storage::Client,
    from: &str,
    verb: &str,
    to: &str,
    data: Value,
) -> Result<(String, bool), rpc_core::RpcError> {
    let mut req = s.relate_request();
    req.get().set_from(from);
    req.get().set_verb(verb);
    req.get().set_to(to);
    req.get().set_data(data.to_string());
    let r = req.send().promise.await?;
    let r = r.get()?;
    Ok((r.get_relationship()?.get_verb()?.to_string().unwrap_or_default(), r.get_created()))
}

/// Removes a relationship: whether there was one.
pub async fn unrelate(s: &storage::Client, from: &str, verb: &str, to: &str) -> bool {
    let mut req = s.unrelate_request();
    req.get().set_from(from);
    req.get().set_verb(verb);
    req.get().set_to(to);
    req.send().promise.await.expect("unrelate").get().unwrap().get_removed()
}

/// A page of `related`: (the other Thing's id, the relationship's data) in order, and
/// the cursor.
pub async fn related(s: &storage::Client, q: Value) -> Result<(Vec<(String, Value)>, String), rpc_core::RpcError> {
    let mut req = s.related_request();
    req.get().set_query(q.to_string());
    let r = req.send().promise.await?;
    let r = r.get()?;
    let things: Vec<Thing> = r.get_things()?.iter().map(thing).collect();
    let data: Vec<Value> = r
        .get_relationships()?
        .iter()
        .map(|rel| serde_json::from_str(rel.get_data().unwrap().to_str().unwrap()).unwrap())
        .collect();
    Ok((things.into_iter().map(|t| t.id).zip(data).collect(), r.get_cursor()?.to_string().unwrap_or_default()))
}

/// The ids of `related`'s Things.
pub async fn related_ids(s: &storage::Client, q: Value) -> Vec<String> {
    related(s, q.clone()).await.unwrap_or_else(|e| panic!("related {q}: {e}")).0.into_iter().map(|(id, _)| id).collect()
}

/// A traversal: each Thing reached as (id, depth, path).
pub async fn traverse(s: &storage::Client, q: Value) -> Result<Vec<(String, u64, Vec<String>)>, rpc_core::RpcError> {
    let mut req = s.traverse_request();
    req.get().set_query(q.to_string());
    let r = req.send().promise.await?;
    let r = r.get()?;
    let things: Vec<Thing> = r.get_things()?.iter().map(thing).collect();
    let paths: Value = serde_json::from_str(r.get_paths()?.to_str().unwrap_or("[]")).unwrap_or(Value::Null);
    Ok(things
        .into_iter()
        .zip(paths.as_array().cloned().unwrap_or_default())
        .map(|(t, p)| {
            let path = p["path"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect();
            (t.id, p["depth"].as_u64().unwrap(), path)
        })
        .collect())
}
