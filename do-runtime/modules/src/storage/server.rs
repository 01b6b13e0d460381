//! `Storage` as a capability server over the [`Store`]. Every write records
//! `<Type>.created`, `<Type>.updated` or `<Type>.deleted` with the thing as data in the
//! same transaction as the change (both commit, or neither), and delivers the events to
//! subscribers once that has committed.

use super::aggregate::Aggregate;
use super::archive::{Archive, ArchiveRequest};
use super::graph;
use super::hot::{HotCache, HotConfig};
use super::indexes::{self, IndexSpec};
use super::precondition::parse_if_match;
use super::query::Query;
use super::things::{Change, Store, Thing};
use crate::events::{EventHub, Outbox};
use crate::host::{Cold, Env, Sql};
use capnp::capability::Rc as CapRc;
use rpc_core::params::text;
use rpc_core::RpcError;
use schema::object_capnp::{storage, thing};
use std::cell::RefCell;
use std::rc::Rc;

/// Serves `Storage` for one object (a clone serves the same object).
#[derive(Clone)]
pub struct StorageServer {
    sql: Rc<dyn Sql>,
    env: Rc<dyn Env>,
    events: Rc<EventHub>,
    /// The SQL expressions leading the object's indexes, once read.
    leading: Rc<RefCell<Option<Vec<String>>>>,
    /// Recently read Things.
    hot: Rc<HotCache>,
    /// The host's cold tier and the object's id in it, for snapshots.
    cold: Option<(Rc<dyn Cold>, Rc<str>)>,
    /// Its archive in the cold tier, if the host has one.
    archive: Option<Rc<Archive>>,
}

impl StorageServer {
    /// The storage of an object, migrating its tables, with a hot tier as `hot` says.
    pub fn new(sql: Rc<dyn Sql>, env: Rc<dyn Env>, events: Rc<EventHub>, hot: HotConfig) -> Result<Self, RpcError> {
        let server = StorageServer {
            sql,
            env,
            events,
            leading: Rc::default(),
            hot: Rc::new(HotCache::new(hot)),
            cold: None,
            archive: None,
        };
        server.store().migrate()?;
        Ok(server)
    }

    pub(super) fn sql(&self) -> &dyn Sql {
        &*self.sql
    }

    /// The live Thing `id` (or NOT_FOUND): from the hot tier, or read from SQLite and
    /// kept there.
    pub fn get(&self, id: &str) -> Result<Thing, RpcError> {
        if let Some(t) = self.hot.get(id, self.sql.rollbacks()) {
            return Ok((*t).clone());
        }
        let (t, text_bytes) = self.store().get_sized(id)?;
        let t = Rc::new(t);
        self.hot.put(t.clone(), text_bytes, self.sql.rollbacks());
        Ok(Rc::unwrap_or_clone(t))
    }

    /// Things and bytes in the hot tier now.
    pub fn hot_size(&self) -> (usize, usize) {
        self.hot.size()
    }

    /// The same server with snapshots to `cold` (if any) as the object `object_id`.
    pub fn with_cold(mut self, cold: Option<Rc<dyn Cold>>, object_id: &str) -> Self {
        self.archive = cold.as_ref().map(|c| Rc::new(Archive::new(c.clone(), object_id)));
        self.cold = cold.map(|c| (c, Rc::from(object_id)));
        self
    }

    /// The Thing `id`: from SQLite (or the hot tier), else from the archive.
    pub async fn get_any(&self, id: &str) -> Result<Thing, RpcError> {
        match self.get(id) {
            Err(e) if e.code == rpc_core::Code::NotFound => match &self.archive {
                Some(a) => a.get(&*self.sql, id).await?.ok_or(e),
                None => Err(e),
            },
            other => other,
        }
    }

    /// Brings back the archived Things among `ids` (before a write to them).
    pub async fn revive(&self, ids: &[&str]) -> Result<(), RpcError> {
        if let Some(a) = &self.archive {
            let ids: Vec<String> = ids.iter().map(|s| (*s).to_string()).collect();
            a.revive(&self.store(), &ids).await?;
        }
        Ok(())
    }

    /// For a query with `includeCold`: brings back the archived Things it matches.
    pub async fn revive_for(&self, q: &Query) -> Result<(), RpcError> {
        if let (true, Some(a)) = (q.include_cold, &self.archive) {
            a.revive_matching(&self.store(), q).await?;
        }
        Ok(())
    }

    /// Moves the Things `request` selects to the archive ([`super::archive`]); how many.
    pub async fn archive(&self, request: &str) -> Result<u64, RpcError> {
        let req = ArchiveRequest::parse(request)?;
        let Some(a) = &self.archive else { return Err(super::archive::no_cold_tier()) };
        let hot = self.hot.clone();
        a.archive(&self.store(), &req, &move |id| hot.forget(id)).await
    }

    /// Takes a snapshot of the whole object ([`crate::snapshot`]).
    pub async fn snapshot(&self) -> Result<crate::snapshot::Manifest, RpcError> {
        let Some((cold, id)) = self.cold.clone() else { return Err(super::archive::no_cold_tier()) };
        let nonce = self.env.random_u64() as u32;
        crate::snapshot::snapshot(&*self.sql, &*cold, &id, self.env.now_ms(), nonce).await
    }

    /// Parses a query and lets it use the object's indexes ([`Query::use_indexes`]).
    pub(super) fn parse_query(&self, text: &str) -> Result<Query, RpcError> {
        let mut q = Query::parse(text)?;
        if self.leading.borrow().is_none() {
            let leading = indexes::list(&*self.sql)?
                .iter()
                .filter_map(|i| i.fields.first().and_then(|(f, _)| super::query::Field::parse(f).ok()))
                .map(|f| f.index_expr())
                .collect();
            *self.leading.borrow_mut() = Some(leading);
        }
        q.use_indexes(self.leading.borrow().as_deref().unwrap_or_default());
        Ok(q)
    }

    /// Creates an index; whether it is new.
    pub fn create_index(&self, spec: &IndexSpec) -> Result<bool, RpcError> {
        self.leading.borrow_mut().take();
        indexes::create(&*self.sql, spec, self.env.now_ms())
    }

    /// Drops the index `name`; whether there was one.
    pub fn remove_index(&self, name: &str) -> Result<bool, RpcError> {
        self.leading.borrow_mut().take();
        indexes::drop(&*self.sql, name)
    }

    /// Makes the indexes a class declares exist ([`indexes::declare`]).
    pub fn declare_indexes(&self, specs: &[&str]) -> Result<(), RpcError> {
        self.leading.borrow_mut().take();
        indexes::declare(&*self.sql, specs, self.env.now_ms())
    }

    /// The object's indexes.
    pub fn list_indexes(&self) -> Result<Vec<IndexSpec>, RpcError> {
        indexes::list(&*self.sql)
    }

    pub(super) fn store(&self) -> Store<'_> {
        Store { sql: &*self.sql, env: &*self.env }
    }

    /// Runs `write` and records the event of every thing it changed (as `changed` lists
    /// them) in one transaction, then delivers the events. A write whose event cannot be
    /// stored fails and is rolled back.
    pub(super) fn write<R>(
        &self,
        mut write: impl FnMut(&Store<'_>) -> Result<R, RpcError>,
        changed: impl Fn(&R) -> Vec<(Change, &Thing)>,
    ) -> Result<R, RpcError> {
        self.write_each(|s, record| {
            let r = write(s)?;
            for (change, t) in changed(&r) {
                record(change, t)?;
            }
            Ok(r)
        })
    }

    /// Runs `write`, which calls `record` with every thing it changes as it goes (a
    /// bulk operation, one thing at a time), in one transaction with the events
    /// `record` stores; then delivers the events, held in bounded memory meanwhile
    /// (an [`Outbox`]).
    fn write_each<R>(
        &self,
        mut write: impl FnMut(&Store<'_>, &mut dyn FnMut(Change, &Thing) -> Result<(), RpcError>) -> Result<R, RpcError>,
    ) -> Result<R, RpcError> {
        self.write_events(|s, event| {
            let mut record = |change: Change, t: &Thing| {
                self.hot.forget(&t.id);
                let data = serde_json::json!({ "id": t.id, "version": t.version, "data": t.data }).to_string();
                event(&t.type_, change.verb(), data)
            };
            write(s, &mut record)
        })
    }

    /// Runs `write`, which calls `event(noun, verb, data)` for each event it emits, in
    /// one transaction with those events; then delivers them.
    pub(super) fn write_events<R>(
        &self,
        mut write: impl FnMut(&Store<'_>, &mut dyn FnMut(&str, &str, String) -> Result<(), RpcError>) -> Result<R, RpcError>,
    ) -> Result<R, RpcError> {
        let mut outbox = Outbox::new(&self.events);
        let out = self
            .store()
            .atomically(|s| {
                outbox.clear();
                let mut event = |noun: &str, verb: &str, data: String| {
                    outbox.keep(self.events.record_change(noun, verb, data)?);
                    Ok(())
                };
                write(s, &mut event)
            })
            .map_err(|e| {
                // Rolled back (the host counts it), or swallowed by a class's outer
                // transaction that goes on: either way, nothing cached is trusted.
                self.hot.clear();
                indexes::explain_conflict(e)
            })?;
        if let Err(e) = outbox.deliver(&self.events) {
            tracing::warn!(code = e.code.as_str(), error = %e.message, "cannot deliver the events of a committed write");
        }
        Ok(out)
    }
}

impl Thing {
    /// Writes the thing as the wire's `Thing` (`deletedAt` 0 when live).
    pub fn write(&self, mut b: thing::Builder<'_>) {
        b.set_id(&self.id);
        b.set_type(&self.type_);
        b.set_data(self.data.to_string());
        b.set_created_at(self.created_at);
        b.set_updated_at(self.updated_at);
        b.set_deleted_at(self.deleted_at.unwrap_or(0));
        b.set_version(u64::try_from(self.version).unwrap_or(0));
    }

    /// Reads a wire `Thing`, e.g. one another object returned.
    pub fn read(t: thing::Reader<'_>) -> Result<Thing, RpcError> {
        let deleted_at = t.get_deleted_at();
        Ok(Thing {
            id: text(t.get_id())?,
            type_: text(t.get_type())?,
            data: serde_json::from_str(&text(t.get_data())?)
                .map_err(|e| RpcError::invalid_argument(format!("a thing's data is not JSON: {e}")))?,
            created_at: t.get_created_at(),
            updated_at: t.get_updated_at(),
            deleted_at: (deleted_at != 0).then_some(deleted_at),
            version: i64::try_from(t.get_version()).unwrap_or(i64::MAX),
        })
    }
}

impl storage::Server for StorageServer {
    async fn create(
        self: CapRc<Self>,
        params: storage::CreateParams,
        mut results: storage::CreateResults,
    ) -> capnp::Result<()> {
        let p = params.get()?;
        let (type_, id, data) = (text(p.get_type())?, text(p.get_id())?, text(p.get_data())?);
        if !id.is_empty() {
            // An archived Thing's id is taken: back in SQLite, the create is CONFLICT.
            self.revive(&[&id]).await?;
        }
        let t = self.write(|s| s.create(&type_, &id, &data), |t| vec![(Change::Created, t)])?;
        t.write(results.get().init_thing());
        Ok(())
    }

    async fn get(self: CapRc<Self>, params: storage::GetParams, mut results: storage::GetResults) -> capnp::Result<()> {
        let t = self.get_any(&text(params.get()?.get_id())?).await?;
        t.write(results.get().init_thing());
        Ok(())
    }

    async fn update(
        self: CapRc<Self>,
        params: storage::UpdateParams,
        mut results: storage::UpdateResults,
    ) -> capnp::Result<()> {
        let p = params.get()?;
        let (id, patch) = (text(p.get_id())?, text(p.get_patch())?);
        let if_match = parse_if_match(&text(p.get_if_match())?)?;
        self.revive(&[&id]).await?;
        let t = self.write(
            |s| {
                s.check_precondition(&id, if_match.as_ref())?;
                s.update(&id, &patch, p.get_expected_version())
            },
            |t| vec![(Change::Updated, t)],
        )?;
        t.write(results.get().init_thing());
        Ok(())
    }

    async fn replace(
        self: CapRc<Self>,
        params: storage::ReplaceParams,
        mut results: storage::ReplaceResults,
    ) -> capnp::Result<()> {
        let p = params.get()?;
        let (id, data) = (text(p.get_id())?, text(p.get_data())?);
        let if_match = parse_if_match(&text(p.get_if_match())?)?;
        self.revive(&[&id]).await?;
        let t = self.write(
            |s| {
                s.check_precondition(&id, if_match.as_ref())?;
                s.replace(&id, &data, p.get_expected_version())
            },
            |t| vec![(Change::Updated, t)],
        )?;
        t.write(results.get().init_thing());
        Ok(())
    }

    async fn delete(
        self: CapRc<Self>,
        params: storage::DeleteParams,
        mut results: storage::DeleteResults,
    ) -> capnp::Result<()> {
        let p = params.get()?;
        let id = text(p.get_id())?;
        let if_match = parse_if_match(&text(p.get_if_match())?)?;
        self.revive(&[&id]).await?;
        let gone = self.write(
            |s| {
                if if_match.is_some() {
                    s.check_precondition(&id, if_match.as_ref())?;
                }
                s.delete(&id, p.get_soft())
            },
            |gone| gone.iter().map(|t| (Change::Deleted, t)).collect(),
        )?;
        results.get().set_deleted(gone.is_some());
        Ok(())
    }

    async fn restore(
        self: CapRc<Self>,
        params: storage::RestoreParams,
        mut results: storage::RestoreResults,
    ) -> capnp::Result<()> {
        let id = text(params.get()?.get_id())?;
        self.revive(&[&id]).await?;
        let t = self.write(|s| s.restore(&id), |t| vec![(Change::Updated, t)])?;
        t.write(results.get().init_thing());
        Ok(())
    }

    async fn query(
        self: CapRc<Self>,
        params: storage::QueryParams,
        mut results: storage::QueryResults,
    ) -> capnp::Result<()> {
        let q = self.parse_query(&text(params.get()?.get_query())?)?;
        self.revive_for(&q).await?;
        let (things, cursor) = self.store().query(&q)?;
        let mut r = results.get();
        r.set_cursor(cursor.unwrap_or_default());
        let mut list = r.init_things(things.len() as u32);
        for (i, t) in things.iter().enumerate() {
            t.write(list.reborrow().get(i as u32));
        }
        Ok(())
    }

    async fn find_first(
        self: CapRc<Self>,
        params: storage::FindFirstParams,
        mut results: storage::FindFirstResults,
    ) -> capnp::Result<()> {
        let mut q = self.parse_query(&text(params.get()?.get_query())?)?;
        self.revive_for(&q).await?;
        q.limit = 1;
        let (things, _) = self.store().query(&q)?;
        let mut r = results.get();
        r.set_found(!things.is_empty());
        if let Some(t) = things.first() {
            t.write(r.init_thing());
        }
        Ok(())
    }

    async fn count(
        self: CapRc<Self>,
        params: storage::CountParams,
        mut results: storage::CountResults,
    ) -> capnp::Result<()> {
        let q = self.parse_query(&text(params.get()?.get_query())?)?;
        self.revive_for(&q).await?;
        results.get().set_count(self.store().count(&q)?);
        Ok(())
    }

    async fn bulk_create(
        self: CapRc<Self>,
        params: storage::BulkCreateParams,
        mut results: storage::BulkCreateResults,
    ) -> capnp::Result<()> {
        let mut items = Vec::new();
        for n in params.get()?.get_things()? {
            items.push((text(n.get_type())?, text(n.get_id())?, text(n.get_data())?));
        }
        let things = self.write(|s| s.bulk_create(&items), |ts| ts.iter().map(|t| (Change::Created, t)).collect())?;
        let mut list = results.get().init_things(things.len() as u32);
        for (i, t) in things.iter().enumerate() {
            t.write(list.reborrow().get(i as u32));
        }
        Ok(())
    }

    async fn bulk_update(
        self: CapRc<Self>,
        params: storage::BulkUpdateParams,
        mut results: storage::BulkUpdateResults,
    ) -> capnp::Result<()> {
        let p = params.get()?;
        let q = self.parse_query(&text(p.get_query())?)?;
        self.revive_for(&q).await?;
        let patch = text(p.get_patch())?;
        let n = self.write_each(|s, record| s.bulk_update(&q, &patch, &mut |t| record(Change::Updated, t)))?;
        results.get().set_count(n);
        Ok(())
    }

    async fn bulk_delete(
        self: CapRc<Self>,
        params: storage::BulkDeleteParams,
        mut results: storage::BulkDeleteResults,
    ) -> capnp::Result<()> {
        let p = params.get()?;
        let q = self.parse_query(&text(p.get_query())?)?;
        self.revive_for(&q).await?;
        let soft = p.get_soft();
        let n = self.write_each(|s, record| s.bulk_delete(&q, soft, &mut |t| record(Change::Deleted, t)))?;
        results.get().set_count(n);
        Ok(())
    }

    async fn upsert(
        self: CapRc<Self>,
        params: storage::UpsertParams,
        mut results: storage::UpsertResults,
    ) -> capnp::Result<()> {
        let p = params.get()?;
        let (type_, id, data) = (text(p.get_type())?, text(p.get_id())?, text(p.get_data())?);
        self.revive(&[&id]).await?;
        let (t, created) = self.write(
            |s| s.upsert(&type_, &id, &data),
            |(t, created)| vec![(if *created { Change::Created } else { Change::Updated }, t)],
        )?;
        let mut r = results.get();
        r.set_created(created);
        t.write(r.init_thing());
        Ok(())
    }

    async fn aggregate(
        self: CapRc<Self>,
        params: storage::AggregateParams,
        mut results: storage::AggregateResults,
    ) -> capnp::Result<()> {
        let aggregate = Aggregate::parse(&text(params.get()?.get_query())?)?;
        results.get().set_rows(aggregate.run(&*self.sql)?.to_string());
        Ok(())
    }

    async fn index(
        self: CapRc<Self>,
        params: storage::IndexParams,
        mut results: storage::IndexResults,
    ) -> capnp::Result<()> {
        let spec = IndexSpec::parse(&text(params.get()?.get_spec())?)?;
        let created = self.create_index(&spec)?;
        let mut r = results.get();
        r.set_index(spec.to_json().to_string());
        r.set_created(created);
        Ok(())
    }

    async fn drop_index(
        self: CapRc<Self>,
        params: storage::DropIndexParams,
        mut results: storage::DropIndexResults,
    ) -> capnp::Result<()> {
        let dropped = self.remove_index(&text(params.get()?.get_name())?)?;
        results.get().set_dropped(dropped);
        Ok(())
    }

    async fn indexes(
        self: CapRc<Self>,
        _: storage::IndexesParams,
        mut results: storage::IndexesResults,
    ) -> capnp::Result<()> {
        let all: Vec<serde_json::Value> = self.list_indexes()?.iter().map(IndexSpec::to_json).collect();
        results.get().set_indexes(serde_json::Value::from(all).to_string());
        Ok(())
    }

    async fn explain(
        self: CapRc<Self>,
        params: storage::ExplainParams,
        mut results: storage::ExplainResults,
    ) -> capnp::Result<()> {
        let plan = indexes::explain(&*self.sql, &self.parse_query(&text(params.get()?.get_query())?)?)?;
        let mut list = results.get().init_plan(u32::try_from(plan.len()).unwrap_or(u32::MAX));
        for (i, step) in plan.iter().enumerate() {
            list.set(u32::try_from(i).unwrap_or(u32::MAX), step);
        }
        Ok(())
    }

    async fn relate(
        self: CapRc<Self>,
        params: storage::RelateParams,
        mut results: storage::RelateResults,
    ) -> capnp::Result<()> {
        let p = params.get()?;
        let (from, verb, to, data) = (text(p.get_from())?, text(p.get_verb())?, text(p.get_to())?, text(p.get_data())?);
        self.revive(&[&from, &to]).await?;
        let (r, created) = self.write_events(|s, event| graph::relate(s, &from, &verb, &to, &data, event))?;
        let mut out = results.get();
        out.set_created(created);
        r.write(out.init_relationship());
        Ok(())
    }

    async fn unrelate(
        self: CapRc<Self>,
        params: storage::UnrelateParams,
        mut results: storage::UnrelateResults,
    ) -> capnp::Result<()> {
        let p = params.get()?;
        let (from, verb, to) = (text(p.get_from())?, text(p.get_verb())?, text(p.get_to())?);
        let removed = self.write_events(|s, event| graph::unrelate(s, &from, &verb, &to, event))?;
        results.get().set_removed(removed);
        Ok(())
    }

    async fn related(
        self: CapRc<Self>,
        params: storage::RelatedParams,
        mut results: storage::RelatedResults,
    ) -> capnp::Result<()> {
        let q = graph::Related::parse(&text(params.get()?.get_query())?)?;
        let (found, cursor) = q.run(&self.store())?;
        let n = u32::try_from(found.len()).unwrap_or(u32::MAX);
        let mut out = results.get();
        let mut rels = out.reborrow().init_relationships(n);
        for (i, (r, _)) in found.iter().enumerate() {
            r.write(rels.reborrow().get(i as u32));
        }
        let mut things = out.reborrow().init_things(n);
        for (i, (_, t)) in found.iter().enumerate() {
            t.write(things.reborrow().get(i as u32));
        }
        out.set_cursor(cursor.unwrap_or_default());
        Ok(())
    }

    async fn traverse(
        self: CapRc<Self>,
        params: storage::TraverseParams,
        mut results: storage::TraverseResults,
    ) -> capnp::Result<()> {
        let q = graph::Traverse::parse(&text(params.get()?.get_query())?)?;
        let found = q.run(&self.store())?;
        let mut out = results.get();
        let mut things = out.reborrow().init_things(u32::try_from(found.len()).unwrap_or(u32::MAX));
        for (i, r) in found.iter().enumerate() {
            r.thing.write(things.reborrow().get(i as u32));
        }
        let paths: Vec<serde_json::Value> =
            found.iter().map(|r| serde_json::json!({ "depth": r.depth, "path": r.path })).collect();
        out.set_paths(serde_json::Value::from(paths).to_string());
        Ok(())
    }

    async fn snapshot(
        self: CapRc<Self>,
        _: storage::SnapshotParams,
        mut results: storage::SnapshotResults,
    ) -> capnp::Result<()> {
        let manifest = StorageServer::snapshot(&self).await?;
        let json =
            serde_json::to_string(&manifest).map_err(|e| RpcError::new(rpc_core::Code::Internal, e.to_string()))?;
        results.get().set_manifest(json);
        Ok(())
    }

    async fn archive(
        self: CapRc<Self>,
        params: storage::ArchiveParams,
        mut results: storage::ArchiveResults,
    ) -> capnp::Result<()> {
        let n = StorageServer::archive(&self, &text(params.get()?.get_request())?).await?;
        results.get().set_archived(n);
        Ok(())
    }
}
