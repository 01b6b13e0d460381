//! The examples' generated code must be what `dotdo codegen` makes from their schemas:
//! capnpc's module, the typed client layer, the interfaces table and the schema's request. Needs the `capnp`
//! compiler (required when DOTDO_REQUIRE_CAPNP=1, as in CI).

use std::path::Path;

fn check(stem: &str) {
    if let Err(e) = dotdo_codegen::compiler_version() {
        assert!(std::env::var("DOTDO_REQUIRE_CAPNP").is_err(), "DOTDO_REQUIRE_CAPNP=1 but: {e}");
        eprintln!("skipping: {e}");
        return;
    }
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::env::temp_dir().join(format!("dotdo-{stem}-{}", std::process::id()));
    let written = dotdo_codegen::generate(&[here.join(format!("schema/{stem}.capnp"))], &[], &out).expect("codegen");
    let names = [
        format!("{stem}_capnp.rs"),
        format!("{stem}_schema.bin"),
        format!("{stem}_interfaces.rs"),
        format!("{stem}_client.rs"),
    ];
    assert_eq!(written, names.iter().map(|n| out.join(n)).collect::<Vec<_>>());
    for name in &names {
        let fresh = std::fs::read(out.join(name)).expect("generated file");
        let checked_in = std::fs::read(here.join("generated").join(name)).expect("checked-in file");
        assert!(fresh == checked_in, "examples/generated/{name} is stale: rerun dotdo codegen");
    }
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn greeter_code_matches_its_schema() {
    check("greeter");
}

#[test]
fn counter_code_matches_its_schema() {
    check("counter");
}
