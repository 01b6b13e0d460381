//! dotdo's Cap'n Proto contract: the `.capnp` files under `schema/capnp/` and the Rust code
//! generated from them with `capnpc`.
//!
//! The generated code is checked in (`src/generated/`), so building needs no `capnp`
//! compiler. `schema/regen` regenerates it (with the `dotdo-codegen` crate), and that crate's
//! `generated_matches_schema` test fails when the checked-in code differs from what the
//! schema produces.
//!
//! ```
//! use schema::{demo_capnp::directory, INTERFACES};
//! // Every interface of the schema is listed with its methods, for discovery.
//! use capnp::traits::HasTypeId;
//! let dir = INTERFACES.iter().find(|i| i.id == directory::Client::TYPE_ID).unwrap();
//! assert!(dir.methods.iter().any(|m| m.name == "open" && m.ordinal == 0));
//! ```

/// Generated from `capnp/session.capnp`: the bootstrap `Gateway` interface and negotiation.
#[allow(clippy::all, clippy::pedantic, missing_docs, unused)]
pub mod session_capnp {
    include!("generated/session_capnp.rs");
}

/// Generated from `capnp/demo.capnp`: the demonstration objects used for pipelining.
#[allow(clippy::all, clippy::pedantic, missing_docs, unused)]
pub mod demo_capnp {
    include!("generated/demo_capnp.rs");
}

/// Generated from `capnp/object.capnp`: Durable Objects and their modules.
#[allow(clippy::all, clippy::pedantic, missing_docs, unused)]
pub mod object_capnp {
    include!("generated/object_capnp.rs");
}

/// Generated from `capnp/broker.capnp`: the broker and capability tokens.
#[allow(clippy::all, clippy::pedantic, missing_docs, unused)]
pub mod broker_capnp {
    include!("generated/broker_capnp.rs");
}

/// One method of an interface, as declared in the schema.
#[derive(Debug, Clone, Copy)]
pub struct MethodDesc {
    /// The method's name as written in the schema (camelCase).
    pub name: &'static str,
    /// The method's ordinal (`@N`), which is its method id on the wire.
    pub ordinal: u16,
    /// The least token scope the method needs (its `$scope` annotation), if declared.
    pub scope: Option<&'static str>,
    /// The params struct's type, for bridges that build calls from the schema (the
    /// Cap'n Web gateway).
    pub params: fn() -> capnp::introspect::Type,
    /// The results struct's type.
    pub results: fn() -> capnp::introspect::Type,
}

/// Methods are equal when their names, ordinals and scopes are (the type functions
/// follow from those).
impl PartialEq for MethodDesc {
    fn eq(&self, other: &Self) -> bool {
        (self.name, self.ordinal, self.scope) == (other.name, other.ordinal, other.scope)
    }
}

impl Eq for MethodDesc {}

/// One interface of the schema with its methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InterfaceDesc {
    /// The interface's display name, e.g. `session.capnp:Gateway`.
    pub name: &'static str,
    /// The interface's 64-bit type id, which is its interface id on the wire.
    pub id: u64,
    /// The methods in ordinal order.
    pub methods: &'static [MethodDesc],
    /// The ids of the interfaces it extends (directly).
    pub extends: &'static [u64],
    /// The `CodeGeneratorRequest` (`capnp compile -o-`) of the schema files it was
    /// generated from: every type, with doc comments, so a client can generate code from
    /// a live server (`describe`, `dotdo codegen --from`).
    pub schema: &'static [u8],
}

include!("generated/interfaces.rs");

/// Interfaces declared outside this crate (users' classes), registered at start-up.
static REGISTERED: std::sync::RwLock<Vec<&'static InterfaceDesc>> = std::sync::RwLock::new(Vec::new());

/// Registers the interfaces of another schema file (the `INTERFACES` table `dotdo
/// codegen` writes for it), so [`method`] and [`interfaces`] know them: token scopes,
/// method names in logs and metrics, discovery. Registering one twice is harmless.
pub fn register(table: &'static [InterfaceDesc]) {
    let mut registered = REGISTERED.write().unwrap_or_else(std::sync::PoisonError::into_inner);
    for i in table {
        if !registered.iter().any(|r| r.id == i.id) && !INTERFACES.iter().any(|b| b.id == i.id) {
            registered.push(i);
        }
    }
}

/// Every interface known: the built-in ones, then the registered ones.
pub fn interfaces() -> Vec<&'static InterfaceDesc> {
    let registered = REGISTERED.read().unwrap_or_else(std::sync::PoisonError::into_inner);
    INTERFACES.iter().chain(registered.iter().copied()).collect()
}

/// The interface with this id, built in or registered.
pub fn interface(interface_id: u64) -> Option<&'static InterfaceDesc> {
    INTERFACES.iter().find(|i| i.id == interface_id).or_else(|| {
        let registered = REGISTERED.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        registered.iter().copied().find(|i| i.id == interface_id)
    })
}

/// The interface and method with these ids, if the schema declares them (or a
/// [`register`]ed table does).
pub fn method(interface_id: u64, method_id: u16) -> Option<(&'static InterfaceDesc, &'static MethodDesc)> {
    let i = interface(interface_id)?;
    Some((i, i.methods.get(usize::from(method_id))?))
}

/// The directory holding the schema's `.capnp` files in the source tree.
pub fn schema_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("capnp")
}
