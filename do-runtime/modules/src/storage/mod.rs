//! The storage module: Things with CRUD, a query language, optimistic concurrency.

pub mod aggregate;
pub mod archive;
pub mod graph;
pub mod hot;
pub mod indexes;
pub mod order;
pub mod patch;
pub mod precondition;
pub mod query;
pub mod rust_api;
pub mod server;
pub mod things;
pub mod verbs;
