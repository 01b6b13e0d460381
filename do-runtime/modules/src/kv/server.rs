//! `Kv` as a capability server over an object's [`Kv`] entries.

use super::{Kv, MAX_LIST};
use capnp::capability::Rc as CapRc;
use rpc_core::params::text;
use schema::object_capnp::kv;

/// Serves `Kv` for one object.
pub struct KvServer {
    kv: Kv,
}

impl KvServer {
    /// Serves `kv`.
    pub fn new(kv: Kv) -> Self {
        KvServer { kv }
    }
}

impl kv::Server for KvServer {
    async fn get(self: CapRc<Self>, params: kv::GetParams, mut results: kv::GetResults) -> capnp::Result<()> {
        let value = self.kv.get::<serde_json::Value>(&text(params.get()?.get_key())?)?;
        let mut r = results.get();
        r.set_found(value.is_some());
        r.set_value(value.map(|v| v.to_string()).unwrap_or_default());
        Ok(())
    }

    async fn put(self: CapRc<Self>, params: kv::PutParams, _: kv::PutResults) -> capnp::Result<()> {
        let p = params.get()?;
        self.kv.put_json(&text(p.get_key())?, &text(p.get_value())?)?;
        Ok(())
    }

    async fn delete(self: CapRc<Self>, params: kv::DeleteParams, mut results: kv::DeleteResults) -> capnp::Result<()> {
        let deleted = self.kv.delete(&text(params.get()?.get_key())?)?;
        results.get().set_deleted(deleted);
        Ok(())
    }

    async fn list(self: CapRc<Self>, params: kv::ListParams, mut results: kv::ListResults) -> capnp::Result<()> {
        let p = params.get()?;
        let limit = usize::try_from(p.get_limit()).unwrap_or(MAX_LIST);
        let entries = self.kv.list::<serde_json::Value>(&text(p.get_prefix())?, limit)?;
        let mut list = results.get().init_entries(entries.len() as u32);
        for (i, (k, v)) in entries.iter().enumerate() {
            let mut e = list.reborrow().get(i as u32);
            e.set_key(k);
            e.set_value(v.to_string());
        }
        Ok(())
    }
}
