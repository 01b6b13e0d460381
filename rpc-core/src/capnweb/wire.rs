//! The Cap'n Web wire format: top-level messages and expressions, parsed from JSON
//! text into plain values, and values encoded back (no I/O, no session state).
//!
//! Ids are always from the sender's point of view: in a message from the peer, an
//! `import`/`pipeline` id names one of our exports, an `export`/`promise` id one of the
//! peer's (our imports).

use super::value::{Cap, PathKey, Value};
use crate::{Code, RpcError};
use base64::Engine as _;

/// One top-level message.
#[derive(Debug)]
pub enum Message {
    /// `["push", expr]`: evaluate; the result is the peer's next import id.
    Push(Expr),
    /// `["stream", expr]`: a push that is pulled and released by itself.
    Stream(Expr),
    /// `["pull", id]`: send the resolution of export `id`.
    Pull(i64),
    /// `["resolve", id, expr]`: the peer's export `id` (our import) resolved.
    Resolve(i64, Expr),
    /// `["reject", id, expr]`: the peer's export `id` failed.
    Reject(i64, Expr),
    /// `["release", id, refcount]`: the peer drops `refcount` references to export `id`.
    Release(i64, u64),
    /// `["abort", expr]`: the peer ends the session.
    Abort(Expr),
}

/// A reference to a capture in a remap: the sender's import (our export) or export.
#[derive(Debug, Clone, Copy)]
pub enum Capture {
    /// `["import", id]`: one of our exports.
    Import(i64),
    /// `["export", id]`: one of the peer's exports.
    Export(i64),
}

/// An expression, evaluated by the receiver.
#[derive(Debug)]
pub enum Expr {
    /// A value with nothing to evaluate inside.
    Value(Value),
    /// `[[...]]`: an array of expressions.
    Array(Vec<Expr>),
    /// An object whose properties are expressions.
    Object(Vec<(String, Expr)>),
    /// `["import"|"pipeline", id, path?, args?]`: a property of, or a call on, export `id`.
    Get {
        /// The export.
        id: i64,
        /// The property path.
        path: Vec<PathKey>,
        /// Call arguments: when present, the last path element is called.
        args: Option<Vec<Expr>>,
    },
    /// `["remap", id, path, captures, instructions]`: `.map()` over a value.
    Remap {
        /// The export.
        id: i64,
        /// The property path to the value mapped.
        path: Vec<PathKey>,
        /// Stubs the mapper captured.
        captures: Vec<Capture>,
        /// The mapper's body.
        instructions: Vec<Expr>,
    },
    /// `["export", id]`: a stub the peer exports.
    Export(i64),
    /// `["promise", id]`: a promise the peer exports (it resolves it by itself).
    Promise(i64),
}

fn bad(message: impl Into<String>) -> RpcError {
    RpcError::new(Code::InvalidArgument, message)
}

/// Parses one message of at most `max_depth` nesting.
pub fn parse_message(text: &str, max_depth: usize) -> Result<Message, RpcError> {
    let json: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        // serde_json's own nesting limit (128) is reached before ours when a message
        // is deeper still: the same LIMIT_EXCEEDED either way.
        if e.to_string().contains("recursion limit") {
            RpcError::new(Code::LimitExceeded, "the message is nested too deeply")
        } else {
            bad(format!("a message is not valid JSON: {e}"))
        }
    })?;
    message(json, max_depth)
}

fn id_of(v: Option<&serde_json::Value>, what: &str) -> Result<i64, RpcError> {
    v.and_then(serde_json::Value::as_i64).ok_or_else(|| bad(format!("{what}: expected an integer id")))
}

fn message(json: serde_json::Value, max_depth: usize) -> Result<Message, RpcError> {
    let serde_json::Value::Array(mut items) = json else {
        return Err(bad("a message must be a JSON array"));
    };
    let tag = items.first().and_then(serde_json::Value::as_str).unwrap_or("").to_string();
    let arity = |n: usize| -> Result<(), RpcError> {
        if items.len() == n {
            Ok(())
        } else {
            Err(bad(format!("`{tag}` takes {} element(s), got {}", n - 1, items.len() - 1)))
        }
    };
    match tag.as_str() {
        "push" | "stream" | "abort" => {
            arity(2)?;
            let e = expr(items.pop().unwrap_or_default(), max_depth)?;
            Ok(match tag.as_str() {
                "push" => Message::Push(e),
                "stream" => Message::Stream(e),
                _ => Message::Abort(e),
            })
        }
        "pull" => {
            arity(2)?;
            Ok(Message::Pull(id_of(items.get(1), "pull")?))
        }
        "resolve" | "reject" => {
            arity(3)?;
            let id = id_of(items.get(1), &tag)?;
            let e = expr(items.pop().unwrap_or_default(), max_depth)?;
            Ok(if tag == "resolve" { Message::Resolve(id, e) } else { Message::Reject(id, e) })
        }
        "release" => {
            arity(3)?;
            let id = id_of(items.get(1), "release")?;
            let n =
                items.get(2).and_then(serde_json::Value::as_u64).ok_or_else(|| bad("release: expected a refcount"))?;
            Ok(Message::Release(id, n))
        }
        "pipe" => Err(RpcError::new(Code::Unsupported, "streams (`pipe`) are not supported by this server")),
        "" => Err(bad("a message must start with its type, e.g. [\"push\", ...]")),
        other => Err(bad(format!("unknown message type `{other}`"))),
    }
}

fn path(v: Option<serde_json::Value>) -> Result<Vec<PathKey>, RpcError> {
    match v {
        None | Some(serde_json::Value::Null) => Ok(Vec::new()),
        Some(serde_json::Value::Array(keys)) => keys
            .into_iter()
            .map(|k| match k {
                serde_json::Value::String(s) => Ok(PathKey::Name(s)),
                serde_json::Value::Number(n) => {
                    n.as_u64().map(PathKey::Index).ok_or_else(|| bad("a property path index must be a whole number"))
                }
                _ => Err(bad("a property path holds strings and numbers")),
            })
            .collect(),
        Some(_) => Err(bad("a property path must be an array")),
    }
}

/// Parses an expression of at most `depth` nesting.
pub fn expr(json: serde_json::Value, depth: usize) -> Result<Expr, RpcError> {
    let Some(depth) = depth.checked_sub(1) else {
        return Err(RpcError::new(Code::LimitExceeded, "the message is nested too deeply"));
    };
    match json {
        serde_json::Value::Array(items) => special(items, depth),
        serde_json::Value::Object(fields) => {
            let mut out = Vec::with_capacity(fields.len());
            let mut plain = true;
            for (k, v) in fields {
                let e = expr(v, depth)?;
                plain &= matches!(e, Expr::Value(_));
                out.push((k, e));
            }
            if plain {
                let values = out
                    .into_iter()
                    .map(|(k, e)| match e {
                        Expr::Value(v) => (k, v),
                        _ => (k, Value::Undefined),
                    })
                    .collect();
                Ok(Expr::Value(Value::Object(values)))
            } else {
                Ok(Expr::Object(out))
            }
        }
        scalar => Ok(Expr::Value(Value::from_json(scalar))),
    }
}

fn special(mut items: Vec<serde_json::Value>, depth: usize) -> Result<Expr, RpcError> {
    if items.first().is_some_and(serde_json::Value::is_array) {
        if items.len() != 1 {
            return Err(bad("an array expression is [[...]]: one inner array"));
        }
        let serde_json::Value::Array(inner) = items.remove(0) else { return Err(bad("unreachable")) };
        let exprs: Vec<Expr> = inner.into_iter().map(|e| expr(e, depth)).collect::<Result<_, _>>()?;
        if exprs.iter().all(|e| matches!(e, Expr::Value(_))) {
            let values = exprs
                .into_iter()
                .map(|e| match e {
                    Expr::Value(v) => v,
                    _ => Value::Undefined,
                })
                .collect();
            return Ok(Expr::Value(Value::Array(values)));
        }
        return Ok(Expr::Array(exprs));
    }
    let tag = items.first().and_then(serde_json::Value::as_str).unwrap_or("").to_string();
    let n = items.len();
    let arg = |i: usize| items.get(i);
    Ok(match (tag.as_str(), n) {
        ("undefined", 1) => Expr::Value(Value::Undefined),
        ("inf", 1) => Expr::Value(Value::Float(f64::INFINITY)),
        ("-inf", 1) => Expr::Value(Value::Float(f64::NEG_INFINITY)),
        ("nan", 1) => Expr::Value(Value::Float(f64::NAN)),
        ("date", 2) => Expr::Value(Value::Date(
            arg(1).and_then(serde_json::Value::as_f64).ok_or_else(|| bad("date: expected a number"))?,
        )),
        ("bigint", 2) => {
            let s = arg(1).and_then(serde_json::Value::as_str).ok_or_else(|| bad("bigint: expected a string"))?;
            let digits = s.strip_prefix('-').unwrap_or(s);
            if digits.is_empty() || digits.len() > 400 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad("bigint: expected a decimal integer"));
            }
            Expr::Value(Value::BigInt(s.to_string()))
        }
        ("bytes", 2 | 3) => {
            let s = arg(1).and_then(serde_json::Value::as_str).ok_or_else(|| bad("bytes: expected base64"))?;
            let b = base64::engine::general_purpose::STANDARD
                .decode(s)
                .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(s))
                .map_err(|_| bad("bytes: not valid base64"))?;
            Expr::Value(Value::Bytes(b))
        }
        ("error", 3..=5) => {
            let message = arg(2).and_then(serde_json::Value::as_str).unwrap_or("").to_string();
            let code = arg(4)
                .and_then(|p| p.get("code"))
                .and_then(serde_json::Value::as_str)
                .and_then(Code::parse)
                .unwrap_or(Code::Internal);
            Expr::Value(Value::Error(RpcError::new(code, message)))
        }
        ("import" | "pipeline", 2..=4) => {
            let id = id_of(arg(1), &tag)?;
            let mut rest = items.split_off(2).into_iter();
            let path = path(rest.next())?;
            let args = match rest.next() {
                None => None,
                Some(serde_json::Value::Array(args)) => {
                    Some(args.into_iter().map(|a| expr(a, depth)).collect::<Result<Vec<_>, _>>()?)
                }
                Some(_) => return Err(bad(format!("{tag}: call arguments must be an array"))),
            };
            Expr::Get { id, path, args }
        }
        ("remap", 5) => {
            let id = id_of(arg(1), "remap")?;
            let mut rest = items.split_off(2).into_iter();
            let path = path(rest.next())?;
            let captures = match rest.next() {
                Some(serde_json::Value::Array(c)) => c
                    .into_iter()
                    .map(|c| {
                        let kind = c.get(0).and_then(serde_json::Value::as_str).unwrap_or("");
                        let id = id_of(c.get(1), "remap capture")?;
                        match kind {
                            "import" => Ok(Capture::Import(id)),
                            "export" => Ok(Capture::Export(id)),
                            _ => Err(bad("remap: a capture is [\"import\", id] or [\"export\", id]")),
                        }
                    })
                    .collect::<Result<Vec<_>, _>>()?,
                _ => return Err(bad("remap: captures must be an array")),
            };
            let instructions = match rest.next() {
                Some(serde_json::Value::Array(i)) => {
                    i.into_iter().map(|e| expr(e, depth)).collect::<Result<Vec<_>, _>>()?
                }
                _ => return Err(bad("remap: instructions must be an array")),
            };
            Expr::Remap { id, path, captures, instructions }
        }
        ("export", 2) => Expr::Export(id_of(arg(1), "export")?),
        ("promise", 2) => Expr::Promise(id_of(arg(1), "promise")?),
        ("writable" | "readable" | "blob", _) => {
            return Err(RpcError::new(Code::Unsupported, format!("`{tag}` (streams) is not supported by this server")))
        }
        ("url" | "headers" | "request" | "response", _) => {
            return Err(RpcError::new(Code::Unsupported, format!("`{tag}` values are not supported by this server")))
        }
        _ => return Err(bad(format!("unknown expression `{tag}` with {} argument(s)", n.saturating_sub(1)))),
    })
}

/// An error as an expression: `["error", "Error", message, null, {"code": CODE}]`,
/// so a JavaScript client reads `e.code`.
pub fn error_expr(e: &RpcError) -> serde_json::Value {
    serde_json::json!(["error", "Error", e.message, null, { "code": e.code.as_str() }])
}

/// Encodes a value; `export` turns each capability into a new export id.
pub fn encode(v: &Value, export: &mut dyn FnMut(Cap) -> i64) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::Null => J::Null,
        Value::Undefined => serde_json::json!(["undefined"]),
        Value::Bool(b) => J::Bool(*b),
        Value::Number(n) => J::Number(n.clone()),
        Value::Float(f) if f.is_nan() => serde_json::json!(["nan"]),
        Value::Float(f) if *f > 0.0 => serde_json::json!(["inf"]),
        Value::Float(_) => serde_json::json!(["-inf"]),
        Value::String(s) => J::String(s.clone()),
        Value::Bytes(b) => serde_json::json!(["bytes", base64::engine::general_purpose::STANDARD.encode(b)]),
        Value::BigInt(s) => serde_json::json!(["bigint", s]),
        Value::Date(ms) => serde_json::json!(["date", ms]),
        Value::Array(items) => J::Array(vec![J::Array(items.iter().map(|i| encode(i, export)).collect())]),
        Value::Object(fields) => J::Object(fields.iter().map(|(k, v)| (k.clone(), encode(v, export))).collect()),
        Value::Cap(cap) => serde_json::json!(["export", export(cap.clone())]),
        Value::Error(e) => error_expr(e),
    }
}

/// Encodes a message with no capabilities in it.
pub fn message_text(tag: &str, id: i64, value: serde_json::Value) -> String {
    serde_json::json!([tag, id, value]).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_pipelined_call() {
        let m = parse_message(r#"["push",["pipeline",1,["storage"],[]]]"#, 64).unwrap();
        let Message::Push(Expr::Get { id, path, args }) = m else { panic!("{m:?}") };
        assert_eq!((id, path, args.map(|a| a.len())), (1, vec![PathKey::Name("storage".into())], Some(0)));
    }

    #[test]
    fn array_expressions_are_wrapped_and_escaped() {
        let e = expr(serde_json::json!([[1, ["date", 5], [[2]]]]), 64).unwrap();
        let Expr::Value(Value::Array(items)) = e else { panic!() };
        assert!(matches!(items[1], Value::Date(d) if d == 5.0));
        assert!(matches!(&items[2], Value::Array(inner) if inner.len() == 1));
    }

    #[test]
    fn malformed_messages_are_typed_errors() {
        for bad in ["{", "{}", "[]", r#"["push"]"#, r#"["pull","x"]"#, r#"["nope",1]"#, r#"["push",["what"]]"#] {
            assert_eq!(parse_message(bad, 64).unwrap_err().code, Code::InvalidArgument, "{bad}");
        }
        assert_eq!(parse_message(r#"["pipe"]"#, 64).unwrap_err().code, Code::Unsupported);
    }

    #[test]
    fn depth_is_limited() {
        let mut deep = serde_json::json!(1);
        for _ in 0..40 {
            deep = serde_json::json!({ "a": deep });
        }
        let text = serde_json::json!(["push", deep]).to_string();
        assert_eq!(parse_message(&text, 16).unwrap_err().code, Code::LimitExceeded);
        assert!(parse_message(&text, 64).is_ok());
    }

    #[test]
    fn depth_past_the_json_parser_limit_is_limit_exceeded_too() {
        let text = format!("[\"push\",{}1{}]", "[[".repeat(200), "]]".repeat(200));
        assert_eq!(parse_message(&text, 64).unwrap_err().code, Code::LimitExceeded);
    }

    #[test]
    fn errors_carry_their_code() {
        let e = RpcError::new(Code::InsufficientScope, "no");
        let Expr::Value(Value::Error(back)) = expr(error_expr(&e), 8).unwrap() else { panic!() };
        assert_eq!(back, e);
    }
}
