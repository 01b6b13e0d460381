//! Generating Rust code from `.capnp` files: the checked-in code of this crate and the
//! clients of users' own schemas (`dotdo codegen`).
//!
//! Generation needs the `capnp` compiler; everything else (building, running, testing
//! against the checked-in code) does not.

use capnp::schema_capnp::node;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What can go wrong while generating code.
#[derive(Debug, thiserror::Error)]
pub enum CodegenError {
    /// The `capnp` compiler is not installed.
    #[error(
        "the Cap'n Proto compiler `capnp` was not found on PATH; install it with \
         `apt-get install capnproto` (Debian/Ubuntu), `brew install capnp` (macOS) \
         or from https://capnproto.org/install.html"
    )]
    CompilerMissing,
    /// The schema file does not exist.
    #[error("schema file not found: {0}")]
    SchemaMissing(PathBuf),
    /// The compiler rejected the schema or generation failed.
    #[error("code generation failed: {0}")]
    Failed(String),
    /// Reading or writing files failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// Returns the `capnp` compiler's version line, or [`CodegenError::CompilerMissing`].
pub fn compiler_version() -> Result<String, CodegenError> {
    match Command::new("capnp").arg("--version").output() {
        Ok(out) if out.status.success() => Ok(String::from_utf8_lossy(&out.stdout).trim().to_string()),
        _ => Err(CodegenError::CompilerMissing),
    }
}

/// Runs `capnp compile -o-` on `files` and returns the raw `CodeGeneratorRequest`.
pub fn compile_request(files: &[PathBuf], import_paths: &[PathBuf]) -> Result<Vec<u8>, CodegenError> {
    compiler_version()?;
    for f in files {
        if !f.is_file() {
            return Err(CodegenError::SchemaMissing(f.clone()));
        }
    }
    let mut cmd = Command::new("capnp");
    cmd.arg("compile").arg("-o-");
    for dir in import_paths {
        cmd.arg(format!("--import-path={}", dir.display()));
    }
    for f in files {
        if let Some(parent) = f.parent().filter(|p| !p.as_os_str().is_empty()) {
            cmd.arg(format!("--src-prefix={}", parent.display()));
        }
    }
    cmd.args(files);
    let out = cmd.output()?;
    if !out.status.success() {
        return Err(CodegenError::Failed(String::from_utf8_lossy(&out.stderr).trim().to_string()));
    }
    Ok(out.stdout)
}

/// Generates Rust modules (`<name>_capnp.rs`) for `files` into `out_dir` and returns the
/// paths written. The code works with `capnp-rpc` and with every dotdo transport.
pub fn generate(files: &[PathBuf], import_paths: &[PathBuf], out_dir: &Path) -> Result<Vec<PathBuf>, CodegenError> {
    let request = compile_request(files, import_paths)?;
    std::fs::create_dir_all(out_dir)?;
    capnpc::codegen::CodeGenerationCommand::new()
        .output_directory(out_dir)
        .run(&request[..])
        .map_err(|e| CodegenError::Failed(e.to_string()))?;
    let written = files
        .iter()
        .filter_map(|f| f.file_stem())
        .map(|stem| out_dir.join(format!("{}_capnp.rs", stem.to_string_lossy().replace('-', "_"))))
        .collect();
    Ok(written)
}

/// Renders the discovery table (`INTERFACES`) for every interface in a
/// `CodeGeneratorRequest`, sorted by name so the output is stable.
pub fn interfaces_table(request: &[u8]) -> Result<String, CodegenError> {
    let fail = |e: capnp::Error| CodegenError::Failed(e.to_string());
    let message =
        capnp::serialize::read_message(&mut &request[..], capnp::message::ReaderOptions::new()).map_err(fail)?;
    let req: capnp::schema_capnp::code_generator_request::Reader = message.get_root().map_err(fail)?;
    // Methods declare the token scope they need with the `scope` annotation.
    let mut scope_ids = Vec::new();
    for n in req.get_nodes().map_err(fail)? {
        if let (Ok(node::Annotation(_)), Ok(name)) = (n.which(), n.get_display_name()) {
            if name.to_str().is_ok_and(|s| s.ends_with(":scope")) {
                scope_ids.push(n.get_id());
            }
        }
    }
    let mut rows = Vec::new();
    for n in req.get_nodes().map_err(fail)? {
        if let Ok(node::Interface(iface)) = n.which() {
            let name = n.get_display_name().map_err(fail)?.to_str().map_err(|e| fail(e.into()))?.to_string();
            let mut methods = Vec::new();
            for (ordinal, m) in iface.get_methods().map_err(fail)?.iter().enumerate() {
                let mname = m.get_name().map_err(fail)?.to_str().map_err(|e| fail(e.into()))?.to_string();
                let mut scope = None;
                for a in m.get_annotations().map_err(fail)? {
                    if scope_ids.contains(&a.get_id()) {
                        if let Ok(capnp::schema_capnp::value::Text(Ok(t))) = a.get_value().map_err(fail)?.which() {
                            scope = t.to_str().ok().map(str::to_string);
                        }
                    }
                }
                methods.push((mname, ordinal, scope));
            }
            rows.push((name, n.get_id(), methods));
        }
    }
    rows.sort();
    let mut s = String::from(
        "// @generated by schema-regen from the schema files. DO NOT EDIT.\n\n\
         /// Every interface declared in the schema, with its methods, for discovery.\n\
         pub static INTERFACES: &[InterfaceDesc] = &[\n",
    );
    for (name, id, methods) in rows {
        let _ =
            writeln!(s, "    InterfaceDesc {{\n        name: {name:?},\n        id: {id:#018x},\n        methods: &[");
        for (mname, ordinal, scope) in methods {
            let _ = writeln!(s, "            MethodDesc {{ name: {mname:?}, ordinal: {ordinal}, scope: {scope:?} }},");
        }
        s.push_str("        ],\n    },\n");
    }
    s.push_str("];\n");
    Ok(s)
}

/// Regenerates this crate's checked-in code (the two schema modules and the
/// discovery table) into `out_dir`.
pub fn regenerate_builtin(out_dir: &Path) -> Result<(), CodegenError> {
    let dir = crate::schema_dir();
    let files: Vec<PathBuf> =
        ["session.capnp", "demo.capnp", "object.capnp", "broker.capnp"].iter().map(|f| dir.join(f)).collect();
    let request = compile_request(&files, std::slice::from_ref(&dir))?;
    std::fs::create_dir_all(out_dir)?;
    capnpc::codegen::CodeGenerationCommand::new()
        .output_directory(out_dir)
        .run(&request[..])
        .map_err(|e| CodegenError::Failed(e.to_string()))?;
    std::fs::write(out_dir.join("interfaces.rs"), interfaces_table(&request)?)?;
    Ok(())
}
