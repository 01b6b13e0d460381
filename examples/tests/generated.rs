//! The walk-through's generated client must be what `dotdo codegen` makes from its
//! schema. Needs the `capnp` compiler (required when DOTDO_REQUIRE_CAPNP=1).

use std::path::Path;

#[test]
fn greeter_code_matches_its_schema() {
    if let Err(e) = schema::codegen::compiler_version() {
        assert!(std::env::var("DOTDO_REQUIRE_CAPNP").is_err(), "{e}");
        eprintln!("skipping: {e}");
        return;
    }
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::env::temp_dir().join(format!("dotdo-greeter-{}", std::process::id()));
    let written = schema::codegen::generate(&[here.join("schema/greeter.capnp")], &[], &out).expect("codegen");
    assert_eq!(written, vec![out.join("greeter_capnp.rs")]);
    let fresh = std::fs::read_to_string(&written[0]).expect("generated file");
    let checked_in = std::fs::read_to_string(here.join("generated/greeter_capnp.rs")).expect("checked-in file");
    assert!(fresh == checked_in, "examples/generated/greeter_capnp.rs is stale: rerun dotdo codegen");
    let _ = std::fs::remove_dir_all(out);
}
