//! `Counter`, the smallest user class (schema: `examples/schema/counter.capnp`): its
//! value lives in the object's own SQLite file, under the key `value`. Its one
//! workflow, `addLater`, adds after a durable pause.

use crate::counter_capnp::counter;
use crate::counter_interfaces;
use capnp::capability::Rc;
use do_modules::class::{Class, Context};
use do_modules::workflow::{Flow, Workflows};
use rpc_core::RpcError;
use schema::object_capnp::object;
use serde_json::{json, Value};
use std::time::Duration;

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

    fn workflows(w: &mut Workflows<Self>) {
        // `object.workflow().start("addLater", r#"{"by": 2, "ms": 1000}"#, id)`: a durable
        // pause (the object's alarm wakes the run, across restarts too), then the add.
        w.add("addLater", |counter: Rc<Counter>, flow: Flow, input: Value| async move {
            let pause = Duration::from_millis(input["ms"].as_u64().unwrap_or(0));
            let by = input["by"].as_i64().unwrap_or(1);
            flow.sleep("pause", pause).await?;
            let value = flow.step("add", || async move { counter.add(by) }).await?;
            Ok(json!({ "value": value }))
        });
    }
}

impl Counter {
    /// Adds `by` to the value and returns the new value; INVALID_ARGUMENT on overflow.
    fn add(&self, by: i64) -> Result<i64, RpcError> {
        let kv = self.ctx.kv();
        let value = kv
            .get::<i64>("value")?
            .unwrap_or(0)
            .checked_add(by)
            .ok_or_else(|| RpcError::invalid_argument(format!("the counter would overflow adding {by}")))?;
        kv.put("value", &value)?;
        Ok(value)
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
        let value = self.add(params.get()?.get_by())?;
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
