//! `Ledger`: the counter interface (`examples/schema/counter.capnp`) kept in a table of
//! the class's own, which its migration creates, written and read with its context's
//! SQL. Each increment is a row, so the value is their sum. `tick` shows where that SQL
//! stops: it tries to empty the framework's `things` table and is refused (FORBIDDEN)
//! on every host.

use crate::counter_capnp::counter;
use crate::counter_interfaces;
use capnp::capability::Rc;
use do_modules::class::{Class, Context};
use do_modules::host::SqlValue;
use rpc_core::RpcError;
use schema::object_capnp::object;

/// One ledger object.
pub struct Ledger {
    ctx: Context,
}

impl Class for Ledger {
    type Client = counter::Client;
    const INTERFACES: &'static [schema::InterfaceDesc] = counter_interfaces::INTERFACES;
    const MIGRATIONS: &'static [&'static str] =
        &["CREATE TABLE entries (id INTEGER PRIMARY KEY, amount INTEGER NOT NULL, at INTEGER NOT NULL)"];
    // No two of its Things (live ones) name the same account.
    const INDEXES: &'static [&'static str] = &[r#"{"name": "byAccount", "fields": ["account"], "unique": true}"#];

    fn create(ctx: Context) -> Result<Self, RpcError> {
        Ok(Ledger { ctx })
    }
}

impl Ledger {
    /// The sum of the entries.
    fn total(&self) -> Result<i64, RpcError> {
        let rows = self.ctx.sql("SELECT COALESCE(SUM(amount), 0) FROM entries", &[])?;
        Ok(rows.first().and_then(|r| r.first()).and_then(SqlValue::as_i64).unwrap_or(0))
    }
}

impl object::Server for Ledger {}

impl counter::Server for Ledger {
    async fn increment(
        self: Rc<Self>,
        params: counter::IncrementParams,
        mut results: counter::IncrementResults,
    ) -> capnp::Result<()> {
        let by = params.get()?.get_by();
        let value = self.ctx.transaction(|ctx| {
            ctx.execute(
                "INSERT INTO entries (amount, at) VALUES (?, ?)",
                &[SqlValue::Integer(by), SqlValue::Integer(ctx.now_ms())],
            )?;
            self.total()
        })?;
        results.get().set_value(value);
        Ok(())
    }

    async fn get(self: Rc<Self>, _: counter::GetParams, mut results: counter::GetResults) -> capnp::Result<()> {
        results.get().set_value(self.total()?);
        Ok(())
    }

    async fn reset(self: Rc<Self>, _: counter::ResetParams, _: counter::ResetResults) -> capnp::Result<()> {
        self.ctx.execute("DELETE FROM entries", &[])?;
        Ok(())
    }

    async fn tick(self: Rc<Self>, _: counter::TickParams, _: counter::TickResults) -> capnp::Result<()> {
        // Refused: a class's SQL reaches only its own tables.
        self.ctx.execute("DELETE FROM things", &[])?;
        Ok(())
    }
}
