//! The output gate as a layer: a call's answer leaves the object only once the writes
//! made so far are durable ([`Sql::durable`]), so nothing a caller was told is lost if
//! the process dies, while the writes of calls running together share one commit.

use crate::host::Sql;
use capnp::capability::Promise;
use rpc_core::layer::{Call, Layer, Service, Stack};
use rpc_core::{Code, RpcError};
use std::rc::Rc;

/// Holds every answer until the object's database has made its writes durable.
#[derive(Clone)]
pub struct OutputGate {
    sql: Rc<dyn Sql>,
}

impl OutputGate {
    /// The gate of the object whose database is `sql`.
    pub fn new(sql: Rc<dyn Sql>) -> Self {
        OutputGate { sql }
    }
}

impl Layer for OutputGate {
    fn layer(&self, inner: Rc<dyn Service>, _: &Stack) -> Rc<dyn Service> {
        Rc::new(Gated { inner, sql: self.sql.clone() })
    }
}

struct Gated {
    inner: Rc<dyn Service>,
    sql: Rc<dyn Sql>,
}

impl Service for Gated {
    fn call(&self, call: Call) -> Promise<(), capnp::Error> {
        let answer = self.inner.call(call);
        let sql = self.sql.clone();
        Promise::from_future(async move {
            let result = answer.await;
            if let Err(e) = sql.durable().await {
                tracing::error!(code = e.code.as_str(), error = %e.message, "a commit failed: its calls fail");
                return Err(RpcError::new(Code::Internal, "the object's writes could not be made durable").into());
            }
            result
        })
    }

    fn inner(&self) -> Option<&dyn Service> {
        Some(&*self.inner)
    }
}
