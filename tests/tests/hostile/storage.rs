//! Things CRUD, query and patch through RPC; nothing changes the sentinel thing.

use super::*;
use schema::object_capnp::storage;
use serde_json::{json, Value};

/// One storage call.
enum Op {
    Create(&'static str, &'static str, String),
    Get(&'static str),
    Update(&'static str, String, u64),
    /// `update(id, patch, 0, ifMatch)`.
    UpdateIf(&'static str, String, String),
    /// `delete(id, soft: false, ifMatch)`.
    DeleteIf(&'static str, String),
    Aggregate(String),
    Replace(&'static str, &'static str),
    Restore(&'static str),
    Upsert(&'static str, &'static str),
    Query(String),
    Count(String),
    BulkUpdate(String, String),
    /// `gateway.object(class, name).storage().count("{}")`.
    Open(&'static str, &'static str),
}

/// The sentinel written before the cases; every case must leave it as it was.
pub(crate) const KEEP: &str = "keep";

pub(crate) fn keep_data() -> Value {
    json!({"n": 1, "s": "text", "big": i64::MAX, "f": 1.0e308})
}

fn storage_cases() -> Vec<(&'static str, Op, Code)> {
    let q = |v: Value| v.to_string();
    let mut deep = json!({"a": 1});
    for _ in 0..12 {
        deep = json!({ "$and": [deep] });
    }
    use Code::*;
    use Op::*;
    vec![
        ("query: unknown operator", Query(q(json!({"where": {"n": {"$where": "1"}}}))), InvalidArgument),
        ("query: $gt with an object", Query(q(json!({"where": {"n": {"$gt": {"x": 1}}}}))), InvalidArgument),
        ("query: $in with a number", Query(q(json!({"where": {"n": {"$in": 5}}}))), InvalidArgument),
        ("query: $exists with a string", Query(q(json!({"where": {"n": {"$exists": "yes"}}}))), InvalidArgument),
        ("query: $and with an object", Query(q(json!({"where": {"$and": {"n": 1}}}))), InvalidArgument),
        ("query: unclosed regex", Query(q(json!({"where": {"s": {"$regex": "(unclosed"}}}))), InvalidArgument),
        ("query: nesting too deep", Query(q(json!({ "where": deep }))), LimitExceeded),
        ("query: not JSON", Query("{\"where\": ".into()), InvalidArgument),
        ("query: an array", Query("[1, 2]".into()), InvalidArgument),
        ("query: unknown field", Query(q(json!({"bogus": 1}))), InvalidArgument),
        ("query: limit 5000", Query(q(json!({"limit": 5000}))), LimitExceeded),
        ("query: limit -1", Query(q(json!({"limit": -1}))), InvalidArgument),
        ("query: limit 2^64", Query("{\"limit\": 18446744073709551616}".into()), InvalidArgument),
        ("query: cursor garbage", Query(q(json!({"cursor": "bm9uc2Vuc2U"}))), InvalidArgument),
        ("query: cursor not base64", Query(q(json!({"cursor": "!!!"}))), InvalidArgument),
        ("query: sort by a number", Query(q(json!({"sort": [5]}))), InvalidArgument),
        ("query: field with SQL", Query(q(json!({"where": {"a'); DROP TABLE things; --": 1}}))), InvalidArgument),
        ("count: unknown operator", Count(q(json!({"where": {"n": {"$bogus": 1}}}))), InvalidArgument),
        ("create: data not JSON", Create("Note", "", "{nope".into()), InvalidArgument),
        ("create: data an array", Create("Note", "", "[1]".into()), InvalidArgument),
        ("create: data over 1 MiB", Create("Note", "", json!({"x": "y".repeat(1 << 20)}).to_string()), LimitExceeded),
        ("create: duplicate id", Create("Note", KEEP, "{}".into()), Conflict),
        ("create: empty type", Create("", "", "{}".into()), InvalidArgument),
        ("create: id with NUL", Create("Note", "a\0b", "{}".into()), InvalidArgument),
        (
            "create: id of 200 bytes",
            Create("Note", Box::leak("i".repeat(200).into_boxed_str()), "{}".into()),
            InvalidArgument,
        ),
        ("get: missing id", Get("missing"), NotFound),
        ("get: empty id", Get(""), NotFound),
        ("update: missing id", Update("missing", "{}".into(), 0), NotFound),
        ("update: unknown patch operator", Update(KEEP, q(json!({"$bogus": {"n": 1}})), 0), InvalidArgument),
        ("update: patch not JSON", Update(KEEP, "{$set".into(), 0), InvalidArgument),
        ("update: patch an array", Update(KEEP, "[1]".into(), 0), InvalidArgument),
        ("update: $inc on a string", Update(KEEP, q(json!({"$inc": {"s": 1}})), 0), InvalidArgument),
        ("update: $inc integer overflow", Update(KEEP, q(json!({"$inc": {"big": 1}})), 0), InvalidArgument),
        ("update: $inc float overflow", Update(KEEP, q(json!({"$inc": {"f": 1.0e308}})), 0), InvalidArgument),
        ("update: $set of version", Update(KEEP, q(json!({"$set": {"version": 9}})), 0), InvalidArgument),
        ("update: stale expected version", Update(KEEP, q(json!({"$set": {"n": 2}})), 99), Conflict),
        ("update: ifMatch that fails", UpdateIf(KEEP, q(json!({"n": 5})), q(json!({"n": 2}))), Conflict),
        ("update: ifMatch not JSON", UpdateIf(KEEP, q(json!({"n": 5})), "{\"n\"".into()), InvalidArgument),
        ("update: ifMatch an array", UpdateIf(KEEP, q(json!({"n": 5})), "[1]".into()), InvalidArgument),
        ("update: ifMatch field with SQL", UpdateIf(KEEP, "{}".into(), q(json!({"n') OR 1 --": 1}))), InvalidArgument),
        ("delete: ifMatch that fails", DeleteIf(KEEP, q(json!({"s": {"$ne": "text"}}))), Conflict),
        ("delete: ifMatch unknown operator", DeleteIf(KEEP, q(json!({"n": {"$drop": 1}}))), InvalidArgument),
        ("query: select with SQL", Query(q(json!({"select": ["n'), data) --"]}))), InvalidArgument),
        ("query: select and exclude", Query(q(json!({"select": ["n"], "exclude": ["s"]}))), InvalidArgument),
        (
            "query: select of 40 fields",
            Query(q(json!({"select": (0..40).map(|i| format!("f{i}")).collect::<Vec<_>>()}))),
            LimitExceeded,
        ),
        (
            "aggregate: groupBy with SQL",
            Aggregate(q(json!({"aggregate": {"n": {"count": "*"}}, "groupBy": ["a; DROP TABLE things"]}))),
            InvalidArgument,
        ),
        (
            "aggregate: sum of SQL",
            Aggregate(q(json!({"aggregate": {"n": {"sum": "n) FROM things; --"}}}))),
            InvalidArgument,
        ),
        ("aggregate: unknown function", Aggregate(q(json!({"aggregate": {"n": {"exec": "n"}}}))), InvalidArgument),
        ("aggregate: none given", Aggregate(q(json!({"where": {"n": 1}}))), InvalidArgument),
        (
            "aggregate: limit 5000",
            Aggregate(q(json!({"aggregate": {"n": {"count": "*"}}, "limit": 5000}))),
            LimitExceeded,
        ),
        (
            "aggregate: groupBy of 5 fields",
            Aggregate(q(json!({"aggregate": {"n": {"count": "*"}}, "groupBy": ["a", "b", "c", "d", "e"]}))),
            LimitExceeded,
        ),
        ("replace: data an array", Replace(KEEP, "[1]"), InvalidArgument),
        ("restore: missing id", Restore("missing"), NotFound),
        ("upsert: the id as another type", Upsert("Other", KEEP), Conflict),
        ("bulkUpdate: $inc on a string", BulkUpdate(q(json!({})), q(json!({"$inc": {"s": 1}}))), InvalidArgument),
        ("object: class with ..", Open("../../escape", "x"), InvalidArgument),
        ("object: class with a slash", Open("Vault/x", "x"), InvalidArgument),
        ("object: class with NUL", Open("Va\0lt", "x"), InvalidArgument),
        ("object: empty class", Open("", "x"), InvalidArgument),
        ("object: empty name", Open("Vault", ""), InvalidArgument),
        ("object: name of 64 KiB", Open("Vault", Box::leak("n".repeat(64 << 10).into_boxed_str())), InvalidArgument),
    ]
}

async fn run_op(g: &schema::session_capnp::gateway::Client, st: &storage::Client, op: &Op) -> Result<(), RpcError> {
    match op {
        Op::Create(t, id, data) => {
            let mut r = st.create_request();
            r.get().set_type(*t);
            r.get().set_id(*id);
            r.get().set_data(data.as_str());
            r.send().promise.await?;
        }
        Op::Get(id) => {
            let mut r = st.get_request();
            r.get().set_id(*id);
            r.send().promise.await?;
        }
        Op::Update(id, patch, version) => {
            let mut r = st.update_request();
            r.get().set_id(*id);
            r.get().set_patch(patch.as_str());
            r.get().set_expected_version(*version);
            r.send().promise.await?;
        }
        Op::UpdateIf(id, patch, if_match) => {
            let mut r = st.update_request();
            r.get().set_id(*id);
            r.get().set_patch(patch.as_str());
            r.get().set_if_match(if_match.as_str());
            r.send().promise.await?;
        }
        Op::DeleteIf(id, if_match) => {
            let mut r = st.delete_request();
            r.get().set_id(*id);
            r.get().set_if_match(if_match.as_str());
            r.send().promise.await?;
        }
        Op::Aggregate(q) => {
            let mut r = st.aggregate_request();
            r.get().set_query(q.as_str());
            r.send().promise.await?;
        }
        Op::Replace(id, data) => {
            let mut r = st.replace_request();
            r.get().set_id(*id);
            r.get().set_data(*data);
            r.send().promise.await?;
        }
        Op::Restore(id) => {
            let mut r = st.restore_request();
            r.get().set_id(*id);
            r.send().promise.await?;
        }
        Op::Upsert(t, id) => {
            let mut r = st.upsert_request();
            r.get().set_type(*t);
            r.get().set_id(*id);
            r.get().set_data("{}");
            r.send().promise.await?;
        }
        Op::Query(q) => {
            let mut r = st.query_request();
            r.get().set_query(q.as_str());
            r.send().promise.await?;
        }
        Op::Count(q) => {
            let mut r = st.count_request();
            r.get().set_query(q.as_str());
            r.send().promise.await?;
        }
        Op::BulkUpdate(q, patch) => {
            let mut r = st.bulk_update_request();
            r.get().set_query(q.as_str());
            r.get().set_patch(patch.as_str());
            r.send().promise.await?;
        }
        Op::Open(class, name) => {
            let mut r = storage_of(g, class, name).count_request();
            r.get().set_query("{}");
            r.send().promise.await?;
        }
    }
    Ok(())
}

/// (data, version) of the sentinel, and the number of things in the object.
pub(crate) async fn sentinel(st: &storage::Client) -> Result<(Value, u64, u64), RpcError> {
    // Both calls are sent before either is awaited: over HTTP they are one batch.
    let mut get = st.get_request();
    get.get().set_id(KEEP);
    let get = get.send().promise;
    let mut count = st.count_request();
    count.get().set_query("{}");
    let count = count.send().promise;
    let r = get.await?;
    let t = r.get()?.get_thing()?;
    let internal = |e: String| RpcError::new(Code::Internal, e);
    let text = t.get_data()?.to_str().map_err(|e| internal(e.to_string()))?;
    let data = serde_json::from_str(text).map_err(|e| internal(e.to_string()))?;
    let n = count.await?.get()?.get_count();
    Ok((data, t.get_version(), n))
}

#[test]
fn hostile_storage_calls_get_typed_errors_and_change_nothing() {
    let dir = data_dir("hostile-storage");
    let (s, _) = object_server(&dir, Duration::from_secs(60));
    let [ws, ..] = urls(&s);
    let mut failures = Vec::new();
    let cases = storage_cases();
    rpc_client::run(async {
        let session = connect_any(&ws).await.expect("connect");
        let g = &session.bootstrap;
        let st = storage_of(g, "Vault", "v1");
        let mut create = st.create_request();
        create.get().set_type("Note");
        create.get().set_id(KEEP);
        create.get().set_data(keep_data().to_string());
        create.send().promise.await.expect("the sentinel is written");
        let before = sentinel(&st).await.expect("the sentinel reads back");
        assert_eq!(before.0, keep_data());
        for (name, op, want) in &cases {
            let got = match within(name, run_op(g, &st, op)).await {
                Ok(()) => Err("the call succeeded".to_string()),
                Err(e) => Ok(e.code),
            };
            let intact = match sentinel(&st).await {
                Ok(now) if now == before => Ok(()),
                Ok(now) => Err(format!("the object changed: {now:?}, was {before:?}")),
                Err(e) => Err(format!("the session no longer answers: {e}")),
            };
            check(&mut failures, name, got, *want, intact);
        }
    });
    // The data is on disk: a new session after the cases sees the same.
    rpc_client::run(async {
        let session = connect_any(&urls(&s)[2]).await.expect("connect");
        let (data, version, n) = sentinel(&storage_of(&session.bootstrap, "Vault", "v1")).await.expect("sentinel");
        assert_eq!((data, version, n), (keep_data(), 1, 1));
    });
    report("storage", failures, cases.len());
    s.stop();
    let _ = std::fs::remove_dir_all(dir);
}
