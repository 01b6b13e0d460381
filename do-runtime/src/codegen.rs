//! `dotdo codegen`: Rust or TypeScript from `.capnp` files, or from a running server's
//! schemas (`--from URL`, through `describe`; no `capnp` compiler needed then).

use crate::cli::Lang;
use std::path::{Path, PathBuf};

/// Generates `lang` into `out` from `files` (with `imports`), or from the server at
/// `from`; returns the paths written.
pub fn run(
    files: &[PathBuf],
    imports: &[PathBuf],
    out: &Path,
    lang: Lang,
    from: Option<&str>,
) -> Result<Vec<PathBuf>, String> {
    let requests: Vec<Vec<u8>> = match from {
        Some(url) => fetch(url)?,
        None => {
            let mut paths = imports.to_vec();
            paths.push(dotdo_codegen::builtin_schema_dir());
            vec![dotdo_codegen::compile_request(files, &paths).map_err(|e| e.to_string())?]
        }
    };
    let mut written = Vec::new();
    for request in &requests {
        let files = match lang {
            Lang::Rust => dotdo_codegen::configure().out_dir(out).generate_request(request),
            Lang::Ts => dotdo_codegen::typescript::write_request(request, out),
        };
        for f in files.map_err(|e| e.to_string())? {
            if !written.contains(&f) {
                written.push(f);
            }
        }
    }
    Ok(written)
}

/// The schemas a server describes (each a `CodeGeneratorRequest`).
fn fetch(url: &str) -> Result<Vec<Vec<u8>>, String> {
    let url = url.to_string();
    let schemas = rpc_client::run(async move {
        let gateway = rpc_client::bootstrap(&url).await?;
        Ok::<_, rpc_client::RpcError>(rpc_client::describe_all(&gateway).await?.1)
    })
    .map_err(|e| format!("describe on the server failed: [{}] {}", e.code.as_str(), e.message))?;
    if schemas.is_empty() {
        return Err("the server described no schemas".into());
    }
    Ok(schemas)
}
