//! The checked-in generated code must be exactly what the schema produces: capnpc's
//! modules and the discovery table in `schema/src/generated/`, the typed client layer in
//! `rpc-client/src/generated/`.
//!
//! Needs the `capnp` compiler. Without it the check says so and passes, unless
//! `DOTDO_REQUIRE_CAPNP=1` (set by `.ci/run`, which installs the compiler), where a
//! missing compiler fails it.

use std::path::{Path, PathBuf};

fn compiler_or_skip() -> bool {
    match dotdo_codegen::compiler_version() {
        Ok(_) => true,
        Err(e) => {
            assert!(std::env::var("DOTDO_REQUIRE_CAPNP").is_err(), "DOTDO_REQUIRE_CAPNP=1 but: {e}");
            eprintln!("skipping the generated-code check: {e}");
            false
        }
    }
}

fn compare(fresh_dir: &Path, checked_in: &Path, names: &[String]) {
    for name in names {
        let fresh = std::fs::read(fresh_dir.join(name)).expect("a freshly generated file");
        let old = std::fs::read(checked_in.join(name)).expect("a checked-in file");
        assert!(fresh == old, "{} is stale: run schema/regen and commit the result", checked_in.join(name).display());
    }
}

#[test]
fn generated_matches_schema() {
    if !compiler_or_skip() {
        return;
    }
    let tmp = std::env::temp_dir().join(format!("dotdo-regen-{}", std::process::id()));
    let (schema_out, client_out) = (tmp.join("schema"), tmp.join("client"));
    dotdo_codegen::regenerate_builtin(&schema_out, &client_out).expect("regenerate into a temporary directory");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let stems: Vec<&str> = dotdo_codegen::BUILTIN_FILES.iter().map(|f| f.trim_end_matches(".capnp")).collect();
    let mut raw: Vec<String> = stems.iter().map(|s| format!("{s}_capnp.rs")).collect();
    raw.push("interfaces.rs".into());
    raw.push(dotdo_codegen::interfaces::SCHEMA_FILE.into());
    compare(&schema_out, &root.join("schema/src/generated"), &raw);
    let typed: Vec<String> = stems.iter().map(|s| format!("{s}_client.rs")).collect();
    compare(&client_out, &root.join("rpc-client/src/generated"), &typed);
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn a_missing_schema_file_is_named() {
    if !compiler_or_skip() {
        return;
    }
    let missing = PathBuf::from("/nonexistent/x.capnp");
    let err = dotdo_codegen::generate(std::slice::from_ref(&missing), &[], &std::env::temp_dir());
    match err {
        Err(dotdo_codegen::CodegenError::SchemaMissing(p)) => assert_eq!(p, missing),
        other => panic!("expected SchemaMissing, got {other:?}"),
    }
}

#[test]
fn a_bad_schema_is_a_compiler_error_with_its_message() {
    if !compiler_or_skip() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("dotdo-bad-schema-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let file = dir.join("bad.capnp");
    std::fs::write(&file, "@0xe5f3a1c2b4d60719;\ninterface Broken { m @0 (x :NoSuchType) -> (); }\n").expect("write");
    match dotdo_codegen::generate(std::slice::from_ref(&file), &[], &dir.join("out")) {
        Err(dotdo_codegen::CodegenError::Failed(msg)) => assert!(msg.contains("NoSuchType"), "{msg}"),
        other => panic!("expected a compiler error, got {other:?}"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_build_script_path_writes_what_dotdo_codegen_writes() {
    if !compiler_or_skip() {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = std::env::temp_dir().join(format!("dotdo-build-rs-{}", std::process::id()));
    // As a build script would call it (with out_dir standing in for $OUT_DIR).
    let written = dotdo_codegen::configure()
        .out_dir(&out)
        .compile(&[root.join("examples/schema/greeter.capnp")])
        .expect("compile");
    let names = ["greeter_capnp.rs", "greeter_schema.bin", "greeter_interfaces.rs", "greeter_client.rs"];
    assert_eq!(written, names.iter().map(|n| out.join(n)).collect::<Vec<_>>());
    compare(&out, &root.join("examples/generated"), &names.map(String::from));
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn without_out_dir_outside_a_build_script_the_error_says_so() {
    // Cargo sets OUT_DIR only for crates with a build script; this one has none.
    assert!(std::env::var_os("OUT_DIR").is_none());
    let err = dotdo_codegen::configure().compile(&["whatever.capnp"]).expect_err("no output directory");
    assert!(matches!(err, dotdo_codegen::CodegenError::NoOutDir), "{err}");
}
