//! The checked-in generated code must be exactly what the schema produces.
//!
//! Needs the `capnp` compiler. Without it the test says so and passes, unless
//! `DOTDO_REQUIRE_CAPNP=1` (set by `.ci/run`), where a missing compiler fails it.

use std::path::Path;

#[test]
fn generated_matches_schema() {
    if let Err(e) = schema::codegen::compiler_version() {
        assert!(std::env::var("DOTDO_REQUIRE_CAPNP").is_err(), "{e}");
        eprintln!("skipping the generated-code check: {e}");
        return;
    }
    let tmp = std::env::temp_dir().join(format!("dotdo-regen-{}", std::process::id()));
    schema::codegen::regenerate_builtin(&tmp).expect("regenerate into a temporary directory");
    let checked_in = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/generated");
    for name in ["session_capnp.rs", "demo_capnp.rs", "object_capnp.rs", "broker_capnp.rs", "interfaces.rs"] {
        let fresh = std::fs::read_to_string(tmp.join(name)).expect("fresh file");
        let old = std::fs::read_to_string(checked_in.join(name)).expect("checked-in file");
        assert!(fresh == old, "{name} is stale: run schema/regen and commit the result");
    }
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn codegen_reports_missing_schema() {
    let err = schema::codegen::generate(&[Path::new("/nonexistent/x.capnp").to_path_buf()], &[], &std::env::temp_dir());
    let msg = err.expect_err("a missing file must fail").to_string();
    assert!(msg.contains("capnp") || msg.contains("not found"), "{msg}");
}
