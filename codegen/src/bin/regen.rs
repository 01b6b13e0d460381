//! Regenerates the checked-in code of the built-in schema (`schema/capnp/*.capnp`):
//! capnpc's modules and the discovery table into `schema/src/generated/`, the typed
//! client layer into `rpc-client/src/generated/`; then the examples' schemas
//! (`examples/schema/*.capnp`, which import the built-in one) into
//! `examples/generated/`. Needs the `capnp` compiler.
//!
//! Usage: `cargo run -p dotdo-codegen --bin dotdo-regen` (or `schema/regen`).

fn main() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let schema_out = root.join("schema/src/generated");
    let client_out = root.join("rpc-client/src/generated");
    match dotdo_codegen::regenerate_builtin(&schema_out, &client_out) {
        Ok(()) => println!("regenerated {} and {}", schema_out.display(), client_out.display()),
        Err(e) => {
            eprintln!("dotdo-regen: {e}");
            std::process::exit(1);
        }
    }
    let examples = root.join("examples");
    for stem in ["greeter", "counter", "shop"] {
        let schema = examples.join(format!("schema/{stem}.capnp"));
        if let Err(e) = dotdo_codegen::generate(&[schema], &[], &examples.join("generated")) {
            eprintln!("dotdo-regen: examples/schema/{stem}.capnp: {e}");
            std::process::exit(1);
        }
    }
    println!("regenerated {}", examples.join("generated").display());
}
