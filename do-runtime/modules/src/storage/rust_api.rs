//! The storage module as plain Rust calls, for a class running inside the object: the
//! same store, the same events written in the same transaction as each change, no RPC.

use super::aggregate::Aggregate;
use super::precondition::parse_if_match;
use super::server::StorageServer;
use super::things::{Change, Thing};
use rpc_core::RpcError;

/// An object's Things, called in-process (from its class).
#[derive(Clone)]
pub struct Things {
    server: StorageServer,
}

impl Things {
    /// The Things that `server` serves.
    pub fn new(server: StorageServer) -> Self {
        Things { server }
    }

    /// Creates a thing of `type_` with JSON `data`; an empty `id` is generated, an
    /// existing one is CONFLICT. Records `<Type>.created`.
    pub fn create(&self, type_: &str, id: &str, data: &serde_json::Value) -> Result<Thing, RpcError> {
        let data = data.to_string();
        self.server.write(|s| s.create(type_, id, &data), |t| vec![(Change::Created, t)])
    }

    /// The live thing `id`, or NOT_FOUND.
    pub fn get(&self, id: &str) -> Result<Thing, RpcError> {
        self.server.get(id)
    }

    /// Applies a JSON merge patch (with `$inc`); `expected_version` 0 means any.
    pub fn update(&self, id: &str, patch: &serde_json::Value, expected_version: u64) -> Result<Thing, RpcError> {
        let patch = patch.to_string();
        self.server.write(|s| s.update(id, &patch, expected_version), |t| vec![(Change::Updated, t)])
    }

    /// Deletes `id` (soft: restorable); whether it was there.
    pub fn delete(&self, id: &str, soft: bool) -> Result<bool, RpcError> {
        let gone =
            self.server.write(|s| s.delete(id, soft), |gone| gone.iter().map(|t| (Change::Deleted, t)).collect())?;
        Ok(gone.is_some())
    }

    /// [`Things::update`] only if the thing matches `if_match` (a query's `where`
    /// filter) when it runs; CONFLICT, and no change, if it does not.
    pub fn update_if(
        &self,
        id: &str,
        patch: &serde_json::Value,
        if_match: &serde_json::Value,
    ) -> Result<Thing, RpcError> {
        let (patch, filter) = (patch.to_string(), parse_if_match(&if_match.to_string())?);
        self.server.write(
            |s| {
                s.check_precondition(id, filter.as_ref())?;
                s.update(id, &patch, 0)
            },
            |t| vec![(Change::Updated, t)],
        )
    }

    /// [`Things::delete`] only if the thing matches `if_match`; CONFLICT if it does not.
    pub fn delete_if(&self, id: &str, soft: bool, if_match: &serde_json::Value) -> Result<bool, RpcError> {
        let filter = parse_if_match(&if_match.to_string())?;
        let gone = self.server.write(
            |s| {
                s.check_precondition(id, filter.as_ref())?;
                s.delete(id, soft)
            },
            |gone| gone.iter().map(|t| (Change::Deleted, t)).collect(),
        )?;
        Ok(gone.is_some())
    }

    /// Aggregates (`count/sum/avg/min/max`, `groupBy`) over the things a filter matches;
    /// the query and answer are those of the `Storage` capability's `aggregate`.
    pub fn aggregate(&self, query: &str) -> Result<serde_json::Value, RpcError> {
        Aggregate::parse(query)?.run(self.server.sql())
    }

    /// A page of things matching the query (JSON, as the `Storage` capability takes it)
    /// and the cursor of the next page (`None` on the last).
    pub fn query(&self, query: &str) -> Result<(Vec<Thing>, Option<String>), RpcError> {
        self.server.store().query(&self.server.parse_query(query)?)
    }

    /// How many things match the query.
    pub fn count(&self, query: &str) -> Result<u64, RpcError> {
        self.server.store().count(&self.server.parse_query(query)?)
    }

    /// Creates an index (a spec as `storage.index` takes it); whether it is new.
    pub fn index(&self, spec: &str) -> Result<bool, RpcError> {
        self.server.create_index(&super::indexes::IndexSpec::parse(spec)?)
    }

    /// Drops the index `name`; whether there was one.
    pub fn drop_index(&self, name: &str) -> Result<bool, RpcError> {
        self.server.remove_index(name)
    }

    /// SQLite's plan for a page of `query`, one line per step.
    pub fn explain(&self, query: &str) -> Result<Vec<String>, RpcError> {
        super::indexes::explain(self.server.sql(), &self.server.parse_query(query)?)
    }

    /// Relates `from` to `to` by `verb` (any form; kept in the past form) with JSON
    /// `data`, recording `<FromType>.<verb>`; the relationship and whether it is new.
    pub fn relate(
        &self,
        from: &str,
        verb: &str,
        to: &str,
        data: &serde_json::Value,
    ) -> Result<(super::graph::Relationship, bool), RpcError> {
        let data = data.to_string();
        self.server.write_events(|s, event| super::graph::relate(s, from, verb, to, &data, event))
    }

    /// Removes a relationship; whether there was one.
    pub fn unrelate(&self, from: &str, verb: &str, to: &str) -> Result<bool, RpcError> {
        self.server.write_events(|s, event| super::graph::unrelate(s, from, verb, to, event))
    }

    /// A page of relationships of a Thing with the Things at their other ends (the
    /// query of the `Storage` capability's `related`), and the next page's cursor.
    pub fn related(&self, query: &str) -> Result<super::graph::RelatedPage, RpcError> {
        super::graph::Related::parse(query)?.run(&self.server.store())
    }

    /// The Things a traversal reaches (the query of `Storage.traverse`).
    pub fn traverse(&self, query: &str) -> Result<Vec<super::graph::Reached>, RpcError> {
        super::graph::Traverse::parse(query)?.run(&self.server.store())
    }

    /// The Thing `id`, falling through to the archive if it was archived (see
    /// [`super::archive`]); [`Things::get`] reads SQLite (and the hot tier) only.
    pub async fn get_any(&self, id: &str) -> Result<Thing, RpcError> {
        self.server.get_any(id).await
    }

    /// Moves the Things `request` selects to the cold tier (the request of
    /// `Storage.archive`, e.g. `{"idleMs": 86400000}`); how many moved. A class can run
    /// it from a schedule to archive idle Things regularly.
    pub async fn archive(&self, request: &str) -> Result<u64, RpcError> {
        self.server.archive(request).await
    }

    /// Brings the archived Things among `ids` back into SQLite, so this API's writes
    /// (which see SQLite only) reach them.
    pub async fn revive(&self, ids: &[&str]) -> Result<(), RpcError> {
        self.server.revive(ids).await
    }

    /// Takes a snapshot of the whole object (`Storage.snapshot`).
    pub async fn snapshot(&self) -> Result<crate::snapshot::Manifest, RpcError> {
        self.server.snapshot().await
    }
}
