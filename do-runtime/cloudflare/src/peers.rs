//! How an object reaches the other objects of its namespace on Cloudflare
//! (`Context::object`, durable calls): a WebSocket to each peer's Durable Object, kept
//! while the calling object is loaded (at most 64; the least recently used is closed).

use crate::hop::{self, Hop, Key};
use do_modules::class::Peers;
use rpc_core::RpcError;
use schema::object_capnp::object;
use std::cell::RefCell;
use worker::ObjectNamespace;

/// Most peers one object keeps connections to.
const MAX_PEERS: usize = 64;

/// One object's connections to its peers.
pub struct CfPeers {
    namespace: String,
    objects: ObjectNamespace,
    /// Most recently used last.
    open: RefCell<Vec<(Key, Hop)>>,
}

impl CfPeers {
    /// The peers of an object in `namespace`, reached through `objects`.
    pub fn new(namespace: String, objects: ObjectNamespace) -> CfPeers {
        CfPeers { namespace, objects, open: RefCell::default() }
    }
}

impl Peers for CfPeers {
    fn object(&self, class: &str, name: &str) -> Result<object::Client, RpcError> {
        let key = Key::new(&self.namespace, class, name)?;
        crate::classes().resolve(class)?;
        let mut open = self.open.borrow_mut();
        if let Some(i) = open.iter().position(|(k, _)| *k == key) {
            let entry = open.remove(i);
            let client = entry.1.object();
            open.push(entry);
            return Ok(client);
        }
        if open.len() >= MAX_PEERS {
            let (_, oldest) = open.remove(0);
            oldest.close();
        }
        let hop = hop::connect(self.objects.clone(), key.clone());
        open.push((key, hop.clone()));
        Ok(hop.object())
    }
}

impl Drop for CfPeers {
    fn drop(&mut self) {
        for (_, hop) in self.open.get_mut().drain(..) {
            hop.close();
        }
    }
}
