//! The discovery table (`schema::INTERFACES`): every interface of the built-in schema
//! with its methods and their `$scope` annotations.

use crate::CodegenError;
use capnp::schema_capnp::node;
use std::fmt::Write as _;

/// The file, next to the built-in table, holding the built-in schema's request.
pub const SCHEMA_FILE: &str = "schema.bin";

/// One method: name, ordinal, scope, and the Rust modules of its params and results.
type MethodRow = (String, usize, Option<String>, String, String);
/// One interface: display name, id, methods, the ids it extends.
type Row = (String, u64, Vec<MethodRow>, Vec<u64>);

fn fail(e: capnp::Error) -> CodegenError {
    CodegenError::Failed(e.to_string())
}

fn read(request: &[u8]) -> Result<capnp::message::Reader<capnp::serialize::OwnedSegments>, CodegenError> {
    capnp::serialize::read_message(&mut &request[..], capnp::message::ReaderOptions::new()).map_err(fail)
}

/// Every interface of the request whose display name starts with `prefix`, with its
/// methods and their `$scope`, sorted by name so the output is stable.
/// `provided`: files whose code is in the `schema` crate (their modules are
/// `::schema::...` rather than `crate::...`).
fn rows(
    message: &capnp::message::Reader<capnp::serialize::OwnedSegments>,
    prefix: &str,
    provided: &[String],
) -> Result<Vec<Row>, CodegenError> {
    let req: capnp::schema_capnp::code_generator_request::Reader = message.get_root().map_err(fail)?;
    let ctx = capnpc::codegen::GeneratorContext::new(message).map_err(fail)?;
    // A method's implicit params and results structs are not in capnpc's scope map: it
    // names them `<interface>::<method>_params` / `_results`.
    let module = |id: u64, implicit: (u64, &str)| -> Result<String, CodegenError> {
        let path = match ctx.scope_map.get(&id) {
            Some(p) => p.join("::"),
            None => {
                let iface = ctx
                    .scope_map
                    .get(&implicit.0)
                    .ok_or_else(|| CodegenError::Failed(format!("no Rust path for node {:#x}", implicit.0)))?;
                format!("{}::{}", iface.join("::"), implicit.1)
            }
        };
        Ok(match provided.iter().find(|m| path.starts_with(&format!("crate::{m}::"))) {
            Some(_) => format!("::schema::{}", &path["crate::".len()..]),
            None => path,
        })
    };
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
            if !name.starts_with(prefix) {
                continue;
            }
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
                let snake = crate::model::snake(&mname);
                let params = module(m.get_param_struct_type(), (n.get_id(), &format!("{snake}_params")))?;
                let results = module(m.get_result_struct_type(), (n.get_id(), &format!("{snake}_results")))?;
                methods.push((mname, ordinal, scope, params, results));
            }
            let extends = iface
                .get_superclasses()
                .map_err(fail)?
                .iter()
                .map(capnp::schema_capnp::superclass::Reader::get_id)
                .collect();
            rows.push((name, n.get_id(), methods, extends));
        }
    }
    rows.sort();
    Ok(rows)
}

fn render(rows: Vec<Row>, path: &str, s: &mut String) {
    const TYPE: &str = "as ::capnp::introspect::Introspect>::introspect";
    for (name, id, methods, extends) in rows {
        let _ = writeln!(
            s,
            "    {path}InterfaceDesc {{\n        name: {name:?},\n        id: {id:#018x},\n        methods: &["
        );
        for (mname, ordinal, scope, params, results) in methods {
            let _ = writeln!(
                s,
                "            {path}MethodDesc {{\n                name: {mname:?},\n                ordinal: {ordinal},\n                \
                 scope: {scope:?},\n                params: <{params}::Owned {TYPE},\n                \
                 results: <{results}::Owned {TYPE},\n            }},"
            );
        }
        let extends: Vec<String> = extends.iter().map(|e| format!("{e:#018x}")).collect();
        let _ =
            writeln!(s, "        ],\n        extends: &[{}],\n        schema: SCHEMA,\n    }},", extends.join(", "));
    }
    s.push_str("];\n");
}

/// Renders the discovery table (`INTERFACES`) for every interface in a
/// `CodeGeneratorRequest`, sorted by name so the output is stable.
pub fn interfaces_table(request: &[u8]) -> Result<String, CodegenError> {
    let message = read(request)?;
    let mut s = format!(
        "// @generated by schema-regen from the schema files. DO NOT EDIT.\n\n\
         /// The schema files' `CodeGeneratorRequest`, for `describe`.\n\
         const SCHEMA: &[u8] = include_bytes!(\"{SCHEMA_FILE}\");\n\n\
         /// Every interface declared in the schema, with its methods, for discovery.\n\
         pub static INTERFACES: &[InterfaceDesc] = &[\n",
    );
    render(rows(&message, "", &[])?, "", &mut s);
    Ok(s)
}

/// The ids of dotdo's built-in files ([`crate::BUILTIN_FILES`]) that a request imports:
/// their code is in the `schema` crate.
pub fn builtin_file_ids(request: &[u8]) -> Result<Vec<u64>, CodegenError> {
    let message = read(request)?;
    let req: capnp::schema_capnp::code_generator_request::Reader = message.get_root().map_err(fail)?;
    let mut ids = Vec::new();
    for f in req.get_requested_files().map_err(fail)? {
        for import in f.get_imports().map_err(fail)? {
            let name = import.get_name().map_err(fail)?.to_str().map_err(|e| fail(e.into()))?;
            let file = name.rsplit('/').next().unwrap_or(name);
            if crate::BUILTIN_FILES.contains(&file) && !ids.contains(&import.get_id()) {
                ids.push(import.get_id());
            }
        }
    }
    Ok(ids)
}

/// The table of the interfaces one requested file declares (`INTERFACES`, of the
/// `schema` crate's types, which the generated capnp code needs anyway, so a crate of
/// classes builds without the client runtime: for wasm32, say), which a server
/// registers so its tokens' scopes and its method names cover them.
pub fn file_interfaces_table(request: &[u8], file: u64, schema_file: &str) -> Result<String, CodegenError> {
    let message = read(request)?;
    let req: capnp::schema_capnp::code_generator_request::Reader = message.get_root().map_err(fail)?;
    let mut display = None;
    for n in req.get_nodes().map_err(fail)? {
        if n.get_id() == file {
            display = Some(n.get_display_name().map_err(fail)?.to_str().map_err(|e| fail(e.into()))?.to_string());
        }
    }
    let display = display.ok_or_else(|| CodegenError::Failed(format!("file {file:#x} is not in the request")))?;
    let mut s = format!(
        "// @generated by dotdo codegen from {display}. DO NOT EDIT.\n\n\
         /// The schema's `CodeGeneratorRequest` (for `describe` and `dotdo codegen --from`).\n\
         const SCHEMA: &[u8] = include_bytes!(\"{schema_file}\");\n\n\
         /// The interfaces {display} declares, with their methods and `$scope`s: register them\n\
         /// (a server's `App::class` does) so tokens and method names cover them.\n\
         pub const INTERFACES: &[::schema::InterfaceDesc] = &[\n"
    );
    let provided: Vec<String> = crate::BUILTIN_FILES.iter().map(|f| f.replace(".capnp", "_capnp")).collect();
    render(rows(&message, &format!("{display}:"), &provided)?, "::schema::", &mut s);
    Ok(s)
}
