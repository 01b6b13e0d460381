//! The schedule module: specs (cron or readable) persisted in the object's SQLite,
//! fired by the object's one alarm.

pub mod server;
pub mod spec;
