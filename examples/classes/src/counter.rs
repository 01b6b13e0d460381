//! `Counter`, the smallest user class (schema: `examples/schema/counter.capnp`): its
//! value lives in the object's own SQLite file, under the key `value`.

use crate::counter_capnp::counter;
use crate::counter_interfaces;
use capnp::capability::Rc;
use do_modules::class::{Class, Context};
use rpc_core::RpcError;
use schema::object_capnp::object;

/// One counter object.
pub struct Counter {
    ctx: Context,
}

impl Class for Counter {
    type Client = counter::Client;
    const INTERFACES: &'static [schema::InterfaceDesc] = counter_interfaces::INTERFACES;

    fn create(ctx: Context) -> Result<Self, RpcError> {
        Ok(Counter { ctx })
    }
}

// The base `Object` methods (info, storage, events, schedule) are served by dotdo.
impl object::Server for Counter {}

impl counter::Server for Counter {
    async fn increment(
        self: Rc<Self>,
        params: counter::IncrementParams,
        mut results: counter::IncrementResults,
    ) -> capnp::Result<()> {
        let by = params.get()?.get_by();
        let kv = self.ctx.kv();
        let value = kv
            .get::<i64>("value")?
            .unwrap_or(0)
            .checked_add(by)
            .ok_or_else(|| RpcError::invalid_argument(format!("the counter would overflow adding {by}")))?;
        kv.put("value", &value)?;
        results.get().set_value(value);
        Ok(())
    }

    async fn get(self: Rc<Self>, _: counter::GetParams, mut results: counter::GetResults) -> capnp::Result<()> {
        results.get().set_value(self.ctx.kv().get::<i64>("value")?.unwrap_or(0));
        Ok(())
    }

    async fn reset(self: Rc<Self>, _: counter::ResetParams, _: counter::ResetResults) -> capnp::Result<()> {
        self.ctx.kv().delete("value")?;
        Ok(())
    }

    async fn tick(self: Rc<Self>, _: counter::TickParams, _: counter::TickResults) -> capnp::Result<()> {
        let kv = self.ctx.kv();
        kv.put("value", &(kv.get::<i64>("value")?.unwrap_or(0).saturating_add(1)))?;
        Ok(())
    }
}
