//! The naming rules, one per kind of name, in one place. Each check answers
//! INVALID_ARGUMENT (LIMIT_EXCEEDED for a field path with too many segments) with a
//! message that states the rule.
//!
//! | kind | rule | used for |
//! |---|---|---|
//! | identifier | `[A-Za-z_][A-Za-z0-9_]*`, 1 to 64 bytes | the base of the next three |
//! | [`class`] | an identifier | an object's class (`Customer`) |
//! | [`noun`] / [`verb`] | an identifier | a Thing's type, an event's `Noun.verb` |
//! | [`field_path`] | 1 to 8 identifiers joined by `.` | query and patch fields (`address.city`) |
//! | [`object_name`] | 1 to 256 bytes of text without `/`, `..` or control characters (NUL included) | an object's name (`acme`, `shard-3`, `Ada Lovelace`) |
//! | [`namespace`] | 1 to 63 of `[a-z0-9-]` (a DNS label, as the Host header gives it) | the namespace |
//!
//! ```
//! use rpc_core::ident;
//! assert!(ident::class("Customer").is_ok());
//! assert!(ident::class("9lives").is_err());
//! assert_eq!(ident::field_path("data.address.city").map(|s| s.len()), Ok(3));
//! assert!(ident::object_name("shard-3").is_ok());
//! assert!(ident::namespace("acme-eu").is_ok());
//! ```

use crate::error::{Code, RpcError};

/// Longest identifier, in bytes.
pub const MAX_IDENTIFIER: usize = 64;
/// Longest object name, in bytes.
pub const MAX_OBJECT_NAME: usize = 256;
/// Most segments in a field path.
pub const MAX_FIELD_SEGMENTS: usize = 8;
/// Longest namespace, in bytes (a DNS label).
pub const MAX_NAMESPACE: usize = 63;

/// Whether `s` is an identifier: `[A-Za-z_][A-Za-z0-9_]*`, 1 to 64 bytes.
pub fn is_identifier(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && s.len() <= MAX_IDENTIFIER
}

fn identifier(kind: &str, s: &str) -> Result<(), RpcError> {
    if is_identifier(s) {
        Ok(())
    } else {
        Err(RpcError::invalid_argument(format!(
            "{kind} {s:?} must be an identifier: a letter or _, then letters, digits or _, at most {MAX_IDENTIFIER} bytes"
        )))
    }
}

/// Checks an object's class.
pub fn class(s: &str) -> Result<(), RpcError> {
    identifier("class", s)
}

/// Checks a noun: a Thing's type, or the first half of an event type.
pub fn noun(s: &str) -> Result<(), RpcError> {
    identifier("type", s)
}

/// Checks a verb: the second half of an event type.
pub fn verb(s: &str) -> Result<(), RpcError> {
    identifier("verb", s)
}

/// Splits and checks a field path (`a.b.c`) into its segments.
pub fn field_path(path: &str) -> Result<Vec<&str>, RpcError> {
    let segments: Vec<&str> = path.split('.').collect();
    if segments.len() > MAX_FIELD_SEGMENTS {
        return Err(RpcError::new(
            Code::LimitExceeded,
            format!("field {path:?} has more than {MAX_FIELD_SEGMENTS} segments"),
        ));
    }
    if !segments.iter().all(|s| is_identifier(s)) {
        return Err(RpcError::invalid_argument(format!(
            "field name {path:?} is not allowed: use identifiers (letters, digits and _) separated by dots"
        )));
    }
    Ok(segments)
}

/// Checks an object's name: 1 to 256 bytes of text with no `/`, no `..` and no control
/// characters (NUL included). Names never become paths (files are named by a hash), but
/// a name that looks like one, or hides characters in logs, is refused all the same.
pub fn object_name(s: &str) -> Result<(), RpcError> {
    if s.is_empty() || s.len() > MAX_OBJECT_NAME {
        return Err(RpcError::invalid_argument(format!("an object name is 1 to {MAX_OBJECT_NAME} bytes")));
    }
    if s.contains('/') || s.contains("..") || s.chars().any(char::is_control) {
        return Err(RpcError::invalid_argument("an object name has no '/', no '..' and no control characters"));
    }
    Ok(())
}

/// Whether `s` is a namespace: 1 to 63 of `[a-z0-9-]`.
pub fn is_namespace(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_NAMESPACE
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Checks a namespace.
pub fn namespace(s: &str) -> Result<(), RpcError> {
    if is_namespace(s) {
        Ok(())
    } else {
        Err(RpcError::invalid_argument(format!("namespace {s:?} must be 1 to {MAX_NAMESPACE} of a-z, 0-9 and -")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn identifiers() {
        for ok in ["a", "_", "Customer", "snake_case", "x9", &"a".repeat(64)] {
            assert!(is_identifier(ok), "{ok}");
        }
        for bad in ["", "9a", "a-b", "a.b", "a b", "é", &"a".repeat(65)] {
            assert!(!is_identifier(bad), "{bad}");
            assert_eq!(class(bad).unwrap_err().code, Code::InvalidArgument, "{bad}");
            assert_eq!(noun(bad).unwrap_err().code, Code::InvalidArgument, "{bad}");
        }
    }

    #[test]
    fn field_paths() {
        assert_eq!(field_path("a.b_c.d9"), Ok(vec!["a", "b_c", "d9"]));
        for bad in ["", "a.", ".a", "a..b", "a.9b", "a-b", "a.$b"] {
            assert_eq!(field_path(bad).unwrap_err().code, Code::InvalidArgument, "{bad}");
        }
        assert_eq!(field_path(&["a"; 9].join(".")).unwrap_err().code, Code::LimitExceeded);
        assert!(field_path(&["a"; 8].join(".")).is_ok());
    }

    #[test]
    fn object_names_and_namespaces() {
        assert!(object_name("shard-3").is_ok());
        assert!(object_name("Ada Lovelace").is_ok());
        for bad in ["a/b", "..", "a..b", "nul\0", "tab\t", "bell\u{7}", "del\u{7f}"] {
            assert_eq!(object_name(bad).unwrap_err().code, Code::InvalidArgument, "{bad:?}");
        }
        assert_eq!(object_name("").unwrap_err().code, Code::InvalidArgument);
        assert_eq!(object_name(&"n".repeat(257)).unwrap_err().code, Code::InvalidArgument);
        assert!(namespace("default").is_ok());
        assert!(namespace("acme-eu-1").is_ok());
        for bad in ["", "Acme", "a_b", "a.b", &"a".repeat(64)] {
            assert_eq!(namespace(bad).unwrap_err().code, Code::InvalidArgument, "{bad}");
        }
    }

    proptest! {
        /// Every namespace the Host header can produce passes the namespace rule.
        #[test]
        fn namespaces_from_hosts_are_valid(label in "[A-Za-z0-9-]{1,63}") {
            let ns = crate::namespace::from_host(Some(&format!("{label}.dotdo.dev")));
            prop_assert!(is_namespace(&ns), "{ns}");
        }

        /// A valid field path is exactly a dot-joined list of identifiers.
        #[test]
        fn field_paths_are_identifiers(segs in proptest::collection::vec("[A-Za-z_][A-Za-z0-9_]{0,10}", 1..=8)) {
            let path = segs.join(".");
            prop_assert_eq!(field_path(&path).map(|s| s.len()), Ok(segs.len()));
        }
    }
}
