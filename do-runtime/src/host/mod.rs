//! The native object host: SQLite files, object threads, in-process connections.

pub mod channel;
pub mod clock;
pub mod fds;
pub mod peers;
pub mod registry;
pub mod sqlite;
