//! `Storage` as a capability server over the [`Store`]. Every committed write emits
//! `<Type>.created`, `<Type>.updated` or `<Type>.deleted` with the thing as data.

use super::query::Query;
use super::things::{Change, Store, Thing};
use crate::events::EventHub;
use crate::host::{Env, Sql};
use capnp::capability::Rc as CapRc;
use rpc_core::params::text;
use rpc_core::RpcError;
use schema::object_capnp::{storage, thing};
use std::rc::Rc;

/// Serves `Storage` for one object.
pub struct StorageServer {
    sql: Rc<dyn Sql>,
    env: Rc<dyn Env>,
    events: Rc<EventHub>,
}

impl StorageServer {
    /// The storage of an object, migrating its tables.
    pub fn new(sql: Rc<dyn Sql>, env: Rc<dyn Env>, events: Rc<EventHub>) -> Result<Self, RpcError> {
        let server = StorageServer { sql, env, events };
        server.store().migrate()?;
        Ok(server)
    }

    fn store(&self) -> Store<'_> {
        Store { sql: &*self.sql, env: &*self.env }
    }

    fn emit(&self, change: Change, t: &Thing) {
        let data = serde_json::json!({ "id": t.id, "version": t.version, "data": t.data }).to_string();
        // The write has committed; an event that cannot be stored is not worth failing it.
        let _ = self.events.send(&format!("{}.{}", t.type_, change.verb()), &data);
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
        let t = self.store().create(&text(p.get_type())?, &text(p.get_id())?, &text(p.get_data())?)?;
        self.emit(Change::Created, &t);
        t.write(results.get().init_thing());
        Ok(())
    }

    async fn get(self: CapRc<Self>, params: storage::GetParams, mut results: storage::GetResults) -> capnp::Result<()> {
        let t = self.store().get(&text(params.get()?.get_id())?)?;
        t.write(results.get().init_thing());
        Ok(())
    }

    async fn update(
        self: CapRc<Self>,
        params: storage::UpdateParams,
        mut results: storage::UpdateResults,
    ) -> capnp::Result<()> {
        let p = params.get()?;
        let t = self.store().update(&text(p.get_id())?, &text(p.get_patch())?, p.get_expected_version())?;
        self.emit(Change::Updated, &t);
        t.write(results.get().init_thing());
        Ok(())
    }

    async fn replace(
        self: CapRc<Self>,
        params: storage::ReplaceParams,
        mut results: storage::ReplaceResults,
    ) -> capnp::Result<()> {
        let p = params.get()?;
        let t = self.store().replace(&text(p.get_id())?, &text(p.get_data())?, p.get_expected_version())?;
        self.emit(Change::Updated, &t);
        t.write(results.get().init_thing());
        Ok(())
    }

    async fn delete(
        self: CapRc<Self>,
        params: storage::DeleteParams,
        mut results: storage::DeleteResults,
    ) -> capnp::Result<()> {
        let p = params.get()?;
        let gone = self.store().delete(&text(p.get_id())?, p.get_soft())?;
        if let Some(t) = &gone {
            self.emit(Change::Deleted, t);
        }
        results.get().set_deleted(gone.is_some());
        Ok(())
    }

    async fn restore(
        self: CapRc<Self>,
        params: storage::RestoreParams,
        mut results: storage::RestoreResults,
    ) -> capnp::Result<()> {
        let t = self.store().restore(&text(params.get()?.get_id())?)?;
        self.emit(Change::Updated, &t);
        t.write(results.get().init_thing());
        Ok(())
    }

    async fn query(
        self: CapRc<Self>,
        params: storage::QueryParams,
        mut results: storage::QueryResults,
    ) -> capnp::Result<()> {
        let q = Query::parse(&text(params.get()?.get_query())?)?;
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
        let mut q = Query::parse(&text(params.get()?.get_query())?)?;
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
        let q = Query::parse(&text(params.get()?.get_query())?)?;
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
        let things = self.store().bulk_create(&items)?;
        let mut list = results.get().init_things(things.len() as u32);
        for (i, t) in things.iter().enumerate() {
            self.emit(Change::Created, t);
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
        let q = Query::parse(&text(p.get_query())?)?;
        let things = self.store().bulk_update(&q, &text(p.get_patch())?)?;
        things.iter().for_each(|t| self.emit(Change::Updated, t));
        results.get().set_count(things.len() as u64);
        Ok(())
    }

    async fn bulk_delete(
        self: CapRc<Self>,
        params: storage::BulkDeleteParams,
        mut results: storage::BulkDeleteResults,
    ) -> capnp::Result<()> {
        let p = params.get()?;
        let q = Query::parse(&text(p.get_query())?)?;
        let things = self.store().bulk_delete(&q, p.get_soft())?;
        things.iter().for_each(|t| self.emit(Change::Deleted, t));
        results.get().set_count(things.len() as u64);
        Ok(())
    }

    async fn upsert(
        self: CapRc<Self>,
        params: storage::UpsertParams,
        mut results: storage::UpsertResults,
    ) -> capnp::Result<()> {
        let p = params.get()?;
        let (t, created) = self.store().upsert(&text(p.get_type())?, &text(p.get_id())?, &text(p.get_data())?)?;
        self.emit(if created { Change::Created } else { Change::Updated }, &t);
        let mut r = results.get();
        r.set_created(created);
        t.write(r.init_thing());
        Ok(())
    }
}
