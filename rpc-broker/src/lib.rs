//! The broker object: mints and checks capability tokens ([`token`]) and turns a
//! valid token into a capability on the target object that can do only what the token
//! allows (a [`membrane`]). Three-party handoff: an auth service mints, the broker passes
//! the token on opaquely, the target side verifies. Also: the [`ring`] that shards keys
//! over objects, [`fanout`] queries over shards, and [`metrics`].

pub mod broker;
pub mod fanout;
pub mod mac;
pub mod membrane;
pub mod metrics;
pub mod revocations;
pub mod ring;
pub mod token;

pub use broker::{BrokerConfig, BrokerServer, BrokerState};
