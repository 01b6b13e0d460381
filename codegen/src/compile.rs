//! Running the `capnp` compiler: `capnp compile -o-` turns schema files into the
//! `CodeGeneratorRequest` every generator here reads.

use crate::CodegenError;
use std::path::PathBuf;
use std::process::Command;

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
