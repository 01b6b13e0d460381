//! The walk-through's generated code must be what `dotdo codegen` makes from its schema:
//! capnpc's module and the typed client layer. Needs the `capnp` compiler (required when
//! DOTDO_REQUIRE_CAPNP=1, as in CI).

use std::path::Path;

#[test]
fn greeter_code_matches_its_schema() {
    if let Err(e) = dotdo_codegen::compiler_version() {
        assert!(std::env::var("DOTDO_REQUIRE_CAPNP").is_err(), "DOTDO_REQUIRE_CAPNP=1 but: {e}");
        eprintln!("skipping: {e}");
        return;
    }
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::env::temp_dir().join(format!("dotdo-greeter-{}", std::process::id()));
    let written = dotdo_codegen::generate(&[here.join("schema/greeter.capnp")], &[], &out).expect("codegen");
    assert_eq!(written, vec![out.join("greeter_capnp.rs"), out.join("greeter_client.rs")]);
    for name in ["greeter_capnp.rs", "greeter_client.rs"] {
        let fresh = std::fs::read_to_string(out.join(name)).expect("generated file");
        let checked_in = std::fs::read_to_string(here.join("generated").join(name)).expect("checked-in file");
        assert!(fresh == checked_in, "examples/generated/{name} is stale: rerun dotdo codegen");
    }
    let _ = std::fs::remove_dir_all(out);
}
