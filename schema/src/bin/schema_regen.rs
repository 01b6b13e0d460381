//! Regenerates `schema/src/generated/` from `schema/capnp/*.capnp`.
//!
//! Usage: `cargo run -p schema --bin schema-regen [OUT_DIR]` (or `schema/regen`).

fn main() {
    let out = std::env::args_os()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/generated"));
    match schema::codegen::regenerate_builtin(&out) {
        Ok(()) => println!("regenerated {}", out.display()),
        Err(e) => {
            eprintln!("schema-regen: {e}");
            std::process::exit(1);
        }
    }
}
