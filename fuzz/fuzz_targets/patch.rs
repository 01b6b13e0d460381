//! Patch JSON: the storage update operators (`$inc`, `$set`, `$push`, `$unset`, and a
//! JSON merge patch) applied to a document. The input is the patch, or a document and a
//! patch on two lines. A patch that applies must leave a JSON object that survives
//! being stored (serialised and read back unchanged).
#![no_main]

use do_modules::storage::patch::apply;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const DOC: &str =
    r#"{"name":"Ann","visits":1,"score":1.5,"tags":["a"],"address":{"city":"Oslo","zip":"0150"},"n":null}"#;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (doc, patch) = match text.split_once('\n') {
        Some((d, p)) => (d, p),
        None => (DOC, text),
    };
    let Ok(mut doc) = serde_json::from_str::<Value>(doc) else { return };
    if !doc.is_object() {
        return;
    }
    let Ok(patch) = serde_json::from_str::<Value>(patch) else { return };
    if apply(&mut doc, &patch).is_ok() {
        assert!(doc.is_object(), "a patched document is an object: {doc}");
        let stored = doc.to_string();
        let back: Value = serde_json::from_str(&stored).expect("a patched document serialises to JSON");
        assert_eq!(back, doc, "the patched document changes when stored: {stored}");
    }
});
