//! The classes a host serves: user classes by name, and what an unregistered name gets
//! (the built-in class, for the zero-code `dotdo serve`, or NOT_FOUND). Shared by the
//! native host and the Cloudflare one.

use super::{builtin, factory, Class, ClassFactory};
use rpc_core::{ident, Code, RpcError};
use std::collections::BTreeMap;

/// Class names and their factories.
#[derive(Clone)]
pub struct Classes {
    by_name: BTreeMap<String, ClassFactory>,
    fallback: Option<ClassFactory>,
}

impl std::fmt::Debug for Classes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Classes")
            .field("names", &self.by_name.keys().collect::<Vec<_>>())
            .field("any_name_is_builtin", &self.fallback.is_some())
            .finish()
    }
}

impl Default for Classes {
    /// What `dotdo serve` hosts: every valid class name is the built-in class.
    fn default() -> Self {
        Classes { by_name: BTreeMap::new(), fallback: Some(builtin) }
    }
}

impl Classes {
    /// No classes at all: every name is NOT_FOUND until registered.
    pub fn none() -> Self {
        Classes { by_name: BTreeMap::new(), fallback: None }
    }

    /// Registers `C` under `name` (a class identifier); INVALID_ARGUMENT for a bad name,
    /// CONFLICT for one already taken.
    /// The interfaces of its schema ([`Class::INTERFACES`]) are registered too, so
    /// discovery, tokens' scopes and method names cover them.
    pub fn add<C: Class>(&mut self, name: &str) -> Result<(), RpcError> {
        schema::register(C::INTERFACES);
        self.add_factory(name, factory::<C>())
    }

    /// Registers the built-in class (`Object` and its modules) under `name`.
    pub fn add_builtin(&mut self, name: &str) -> Result<(), RpcError> {
        self.add_factory(name, builtin)
    }

    fn add_factory(&mut self, name: &str, f: ClassFactory) -> Result<(), RpcError> {
        ident::class(name)?;
        if self.by_name.contains_key(name) {
            return Err(RpcError::new(Code::Conflict, format!("class {name:?} is registered twice")));
        }
        self.by_name.insert(name.to_string(), f);
        Ok(())
    }

    /// Whether names nobody registered are served by the built-in class.
    pub fn set_builtin_fallback(&mut self, on: bool) {
        self.fallback = on.then_some(builtin as ClassFactory);
    }

    /// The registered class names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    /// The factory of `class`: INVALID_ARGUMENT for a name that is not an identifier,
    /// NOT_FOUND for one not served here.
    pub fn resolve(&self, class: &str) -> Result<ClassFactory, RpcError> {
        ident::class(class)?;
        match self.by_name.get(class).copied().or(self.fallback) {
            Some(f) => Ok(f),
            None => Err(RpcError::new(Code::NotFound, format!("no class {class:?} is served here"))),
        }
    }
}
