//! The demonstration object set (`demo.capnp`, [`rpc_core::demo`]), its `sleep` on
//! tokio's timer.

use rpc_core::layer::Stack;

pub use rpc_core::demo::DirectoryServer;

/// The demo directory of a session whose files are served inside `stack`.
pub fn directory(stack: Stack) -> DirectoryServer {
    DirectoryServer::new(stack, |d| Box::pin(tokio::time::sleep(d)))
}
