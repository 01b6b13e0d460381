//! The values a Cap'n Web session moves: JSON plus the types Cap'n Web adds (bytes,
//! big integers, dates, `undefined`, errors) and capabilities.

use crate::{Code, RpcError};

/// A capability with the interface the schema says it has.
#[derive(Clone)]
pub struct Cap {
    /// The Cap'n Proto capability.
    pub client: capnp::capability::Client,
    /// Its interface id (from the field or result type that carried it).
    pub interface: u64,
}

impl std::fmt::Debug for Cap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Cap({:#x})", self.interface)
    }
}

/// One value of a session.
#[derive(Clone, Debug)]
pub enum Value {
    /// `null`.
    Null,
    /// `undefined`.
    Undefined,
    /// A boolean.
    Bool(bool),
    /// A JSON number (integers stay exact).
    Number(serde_json::Number),
    /// A float JSON cannot carry (`Infinity`, `-Infinity`, `NaN`).
    Float(f64),
    /// A string.
    String(String),
    /// Bytes (`Uint8Array`).
    Bytes(Vec<u8>),
    /// A `bigint`, in decimal.
    BigInt(String),
    /// A `Date`, in milliseconds since the epoch.
    Date(f64),
    /// An array.
    Array(Vec<Value>),
    /// An object, its keys in order.
    Object(Vec<(String, Value)>),
    /// A capability (a stub on the JavaScript side).
    Cap(Cap),
    /// An `Error`.
    Error(RpcError),
}

impl Value {
    /// The property `key` of an object, or element of an array.
    pub fn get(&self, key: &PathKey) -> Result<Value, RpcError> {
        match (self, key) {
            (Value::Object(fields), PathKey::Name(name)) => {
                Ok(fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).unwrap_or(Value::Undefined))
            }
            (Value::Array(items), PathKey::Index(i)) => {
                Ok(usize::try_from(*i).ok().and_then(|i| items.get(i)).cloned().unwrap_or(Value::Undefined))
            }
            (Value::Array(items), PathKey::Name(n)) if n == "length" => Ok(Value::Number(items.len().into())),
            (Value::Cap(_), _) => Err(RpcError::invalid_argument(format!(
                "`{key}` is a method of the capability: call it (properties of capabilities are not readable)"
            ))),
            (v, key) => Err(RpcError::invalid_argument(format!("cannot read `{key}` of {}", v.kind()))),
        }
    }

    /// What kind of value this is, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Undefined => "undefined",
            Value::Bool(_) => "a boolean",
            Value::Number(_) | Value::Float(_) => "a number",
            Value::String(_) => "a string",
            Value::Bytes(_) => "bytes",
            Value::BigInt(_) => "a bigint",
            Value::Date(_) => "a date",
            Value::Array(_) => "an array",
            Value::Object(_) => "an object",
            Value::Cap(_) => "a capability",
            Value::Error(_) => "an error",
        }
    }

    /// The value as plain JSON (for `$json` fields): no capabilities or errors;
    /// bytes, bigints and dates become their usual JSON forms.
    pub fn to_json(&self) -> Result<serde_json::Value, RpcError> {
        use base64::Engine as _;
        Ok(match self {
            Value::Null | Value::Undefined => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Number(n) => serde_json::Value::Number(n.clone()),
            Value::Float(_) => serde_json::Value::Null,
            Value::String(s) | Value::BigInt(s) => serde_json::Value::String(s.clone()),
            Value::Bytes(b) => serde_json::Value::String(base64::engine::general_purpose::STANDARD.encode(b)),
            Value::Date(ms) => {
                serde_json::Number::from_f64(*ms).map_or(serde_json::Value::Null, serde_json::Value::Number)
            }
            Value::Array(items) => {
                serde_json::Value::Array(items.iter().map(Value::to_json).collect::<Result<_, _>>()?)
            }
            Value::Object(fields) => serde_json::Value::Object(
                fields
                    .iter()
                    .filter(|(_, v)| !matches!(v, Value::Undefined))
                    .map(|(k, v)| Ok((k.clone(), v.to_json()?)))
                    .collect::<Result<_, RpcError>>()?,
            ),
            Value::Cap(_) | Value::Error(_) => {
                return Err(RpcError::invalid_argument(format!("{} cannot be stored as JSON", self.kind())))
            }
        })
    }

    /// A plain JSON value as a session value.
    pub fn from_json(v: serde_json::Value) -> Value {
        match v {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(b),
            serde_json::Value::Number(n) => Value::Number(n),
            serde_json::Value::String(s) => Value::String(s),
            serde_json::Value::Array(items) => Value::Array(items.into_iter().map(Value::from_json).collect()),
            serde_json::Value::Object(fields) => {
                Value::Object(fields.into_iter().map(|(k, v)| (k, Value::from_json(v))).collect())
            }
        }
    }
}

/// One step of a property path: a name, or an array index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathKey {
    /// A property name (or a method name, at the end of a call's path).
    Name(String),
    /// An array index.
    Index(u64),
}

impl std::fmt::Display for PathKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PathKey::Name(n) => f.write_str(n),
            PathKey::Index(i) => write!(f, "{i}"),
        }
    }
}

/// A typed error for a value that does not fit where it is used.
pub(crate) fn mismatch(what: &str, expected: &str, got: &Value) -> RpcError {
    RpcError::new(Code::InvalidArgument, format!("{what}: expected {expected}, got {}", got.kind()))
}
