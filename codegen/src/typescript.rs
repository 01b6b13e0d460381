//! TypeScript declarations of what the Cap'n Web (JSON) gateway shows JavaScript, from
//! the schema: `dotdo codegen --lang ts` ([`crate::generate_typescript`]).
//!
//! Each schema file becomes `<stem>.ts` (`object.capnp` -> `object.ts`) holding only
//! type declarations (`interface`, `type`, `import type`), so it compiles to nothing and
//! costs nothing at run time. With them, `capnweb`'s own types check a client:
//!
//! ```ts
//! import { newWebSocketRpcSession, RpcTarget, type RpcPromise } from "capnweb";
//! import type { Gateway } from "./gen/session.js";
//! import type { Event, Handler } from "./gen/object.js";
//! import type { Counter } from "./gen/counter.js";
//! const api = newWebSocketRpcSession<Gateway>("ws://127.0.0.1:8787/capnweb");
//! const t = await api.object("Customer", "acme").storage().create({ type: "Customer", data: { name: "Ada" } });
//! // A callback: a class extending `RpcTarget` that implements the interface.
//! class H extends RpcTarget implements Handler { handle(e: Event) { console.log(e.type, e.data); } }
//! await api.object("Customer", "acme").events().subscribe("Customer.*", new H());
//! // A class's own methods: `object()` returns an `Object`; cast it to the class's interface
//! // (through `unknown` when the class redefines a method of `Object`).
//! const n: number = await (api.object("Counter", "c1") as RpcPromise<Counter>).increment(1);
//! ```
//!
//! # The mapping
//!
//! - **Interfaces** are TypeScript interfaces extending `capnweb`'s `RpcTarget` (or the
//!   interfaces they extend in the schema, so `Counter extends Object` has `Object`'s
//!   methods). The brand is what `capnweb` needs: `RpcStub<T>` turns the methods of a
//!   branded `T` into pipelined calls returning `RpcPromise`s, a capability in a result
//!   becomes a stub, and a class `extends RpcTarget implements Handler` can be passed
//!   where the schema takes a `Handler` (a callback). A method returns
//!   `Awaitable<R>` (`R | Promise<R>`): a stub awaits to `R`, and a JavaScript
//!   implementation may be `async` or not.
//! - **Arguments**, as the gateway maps them: positional in the params' field order, each
//!   optional (the gateway leaves a missing one at its default); with two or more params,
//!   also one object naming them (`create({ type, data })`). When the first param takes
//!   an object (a struct, `$json` text), a single object argument would be read as the
//!   named form, so the positional form then needs at least two arguments.
//! - **Results**: no field is `void`, one field is that field's value (so calls chain:
//!   `api.object(..).storage().create(..)`), more an object of them.
//! - **Values**: `Bool` -> `boolean`; numbers -> `number` (`Int64`/`UInt64` also take a
//!   `bigint`; beyond 2^53 the gateway sends a `bigint`, which the types do not show);
//!   `Text` -> `string`; `Text` marked `$json` -> `Json`, the JSON value itself (`any`,
//!   so `thing.data.name` reads as it does in JavaScript); `Data` -> `Uint8Array`; an enum
//!   -> the union of its enumerant names; `List(T)` -> `T[]` (`readonly T[]` as input);
//!   `Void` -> `null`; `AnyPointer` and generic parameters -> `unknown`.
//! - **Structs** are an `interface` of what the gateway returns (every field present; a
//!   union's members optional, only the set one present; a group a nested object), and a
//!   `type <Name>Init` of what it takes (every field optional, inputs widened as above).
//!
//! # Names and modules
//!
//! Declarations keep their schema names (`Object` shadows the global `Object` inside the
//! module, which type-checks); a nested one is its scope's name and its own
//! (`Outer.Inner` -> `OuterInner`). A name that would clash with what the files use
//! (`Json`, `Awaitable`, `RpcTarget`, `Promise`, `Uint8Array`) gets a trailing `_`.
//! Files import each other as `import type { Thing } from "./object.js"`: the `.js`
//! suffix resolves the `.ts` file under `moduleResolution` `bundler`, `node16` and
//! `nodenext` alike, so the output directory needs only `capnweb` resolvable. An imported
//! name that clashes with a local one is aliased `<stem>_<Name>`. `Json` lives in the file
//! that declares the `$json` annotation (`object.ts`); the others import it.
//!
//! Every requested file is written, and with it every file its declarations use
//! (transitively: `session.capnp` brings `object`, `demo`, `broker`) and every file it
//! imports directly that declares a type.

use crate::model::{Decl, Kind, Member, MemberTy, Method, Model, Ty, JSON_ANNOTATION};
use crate::CodegenError;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// One generated file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TsFile {
    /// Its name in the output directory (`object.ts`).
    pub name: String,
    /// The schema file it comes from, as the compiler names it (`object.capnp`).
    pub schema: String,
    /// Its text.
    pub source: String,
}

/// Names the files use for their own purposes: a schema declaration with one of them
/// gets a trailing `_`.
const RESERVED: &[&str] = &["Json", "Awaitable", "RpcTarget", "Promise", "Uint8Array"];

/// Words that cannot label a tuple element (`[class?: string]` does not parse).
const JS_RESERVED: &[&str] = &[
    "await",
    "break",
    "case",
    "catch",
    "class",
    "const",
    "continue",
    "debugger",
    "default",
    "delete",
    "do",
    "else",
    "enum",
    "export",
    "extends",
    "false",
    "finally",
    "for",
    "function",
    "if",
    "implements",
    "import",
    "in",
    "instanceof",
    "interface",
    "let",
    "new",
    "null",
    "package",
    "private",
    "protected",
    "public",
    "return",
    "static",
    "super",
    "switch",
    "this",
    "throw",
    "true",
    "try",
    "typeof",
    "var",
    "void",
    "while",
    "with",
    "yield",
];

/// The label of a positional argument: the param's name, with `_` after a reserved word.
pub fn label(name: &str) -> String {
    if JS_RESERVED.contains(&name) {
        format!("{name}_")
    } else {
        name.to_string()
    }
}

/// The stem of a schema file: `dir/my-file.capnp` -> `my-file`.
pub fn stem(file_name: &str) -> String {
    let base = file_name.rsplit('/').next().unwrap_or(file_name);
    base.strip_suffix(".capnp").unwrap_or(base).to_string()
}

/// `text` as a JSDoc comment at `indent` (nothing when it is blank).
fn jsdoc(out: &mut String, indent: &str, text: Option<&str>) {
    let Some(text) = text else { return };
    let lines: Vec<String> = text.replace("*/", "*\\/").lines().map(|l| l.trim_end().to_string()).collect();
    let start = lines.iter().position(|l| !l.is_empty());
    let end = lines.iter().rposition(|l| !l.is_empty());
    let (Some(start), Some(end)) = (start, end) else { return };
    let lines = &lines[start..=end];
    if let [one] = lines {
        let _ = writeln!(out, "{indent}/** {one} */");
        return;
    }
    let _ = writeln!(out, "{indent}/**");
    for l in lines {
        if l.is_empty() {
            let _ = writeln!(out, "{indent} *");
        } else {
            let _ = writeln!(out, "{indent} * {l}");
        }
    }
    let _ = writeln!(out, "{indent} */");
}

/// Wraps a union type in parentheses where an array suffix follows.
fn paren(t: String) -> String {
    if t.contains(" | ") && !t.starts_with('{') {
        format!("({t})")
    } else {
        t
    }
}

/// Writes the declarations of a `CodeGeneratorRequest` (what `capnp compile -o-` writes)
/// into `out_dir`, one `<stem>.ts` a file ([`render`]), and returns the paths written.
pub fn write_request(request: &[u8], out_dir: &Path) -> Result<Vec<PathBuf>, CodegenError> {
    let files = render(&Model::read(request)?)?;
    std::fs::create_dir_all(out_dir)?;
    let mut written = Vec::new();
    for f in files {
        let path = out_dir.join(&f.name);
        std::fs::write(&path, f.source)?;
        written.push(path);
    }
    Ok(written)
}

/// Renders the TypeScript declarations of every requested file of `model` and of the
/// files they use or import.
pub fn render(model: &Model) -> Result<Vec<TsFile>, CodegenError> {
    let gen = Generator::new(model);
    let files = gen.files();
    let mut stems: BTreeMap<u64, String> = BTreeMap::new();
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for (id, schema) in &files {
        let s = stem(schema);
        if let Some(other) = seen.insert(s.clone(), schema.clone()) {
            return Err(CodegenError::Failed(format!(
                "{other} and {schema} would both be written as {s}.ts: rename one of them"
            )));
        }
        stems.insert(*id, s);
    }
    let mut out = Vec::new();
    for (id, schema) in &files {
        let s = stems.get(id).cloned().unwrap_or_default();
        let source = FileWriter::new(&gen, *id, &stems).write(schema);
        out.push(TsFile { name: format!("{s}.ts"), schema: schema.clone(), source });
    }
    Ok(out)
}

/// What is common to all files of one request: names and the dependency walk.
struct Generator<'a> {
    model: &'a Model,
    /// Group nodes (emitted inline, never by name).
    groups: HashSet<u64>,
    /// TypeScript names of the declarations emitted by name.
    names: BTreeMap<u64, String>,
    /// Names of the input types of structs.
    inits: BTreeMap<u64, String>,
    /// The file declaring the `$json` annotation.
    json_file: Option<u64>,
}

impl<'a> Generator<'a> {
    fn new(model: &'a Model) -> Self {
        let groups = model
            .members
            .values()
            .flatten()
            .filter_map(|m| match m.ty {
                MemberTy::Group(g) => Some(g),
                MemberTy::Slot(_) => None,
            })
            .collect();
        let mut gen = Generator {
            model,
            groups,
            names: BTreeMap::new(),
            inits: BTreeMap::new(),
            json_file: model.decl(JSON_ANNOTATION).map(|d| d.file).filter(|f| *f != 0),
        };
        let mut by_file: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
        for d in model.decls.values() {
            if gen.emitted(d) {
                let mut name = d.plain.clone();
                if RESERVED.contains(&name.as_str()) {
                    name.push('_');
                }
                gen.names.insert(d.id, name);
                by_file.entry(d.file).or_default().push(d.id);
            }
        }
        for ids in by_file.values() {
            let taken: HashSet<&str> = ids.iter().filter_map(|i| gen.names.get(i)).map(String::as_str).collect();
            let mut inits = Vec::new();
            for id in ids {
                if let (Some(Kind::Struct { .. }), Some(name)) = (model.decl(*id).map(|d| &d.kind), gen.names.get(id)) {
                    let mut init = format!("{name}Init");
                    while taken.contains(init.as_str()) {
                        init.insert(init.len() - "Init".len(), '_');
                    }
                    inits.push((*id, init));
                }
            }
            gen.inits.extend(inits);
        }
        gen
    }

    /// Whether `d` is written as a declaration of its own.
    fn emitted(&self, d: &Decl) -> bool {
        match &d.kind {
            Kind::Struct { implicit, .. } => !implicit && !self.groups.contains(&d.id),
            Kind::Enum | Kind::Interface { .. } => true,
            Kind::Other => false,
        }
    }

    /// The declarations of `file` written by name, in the order the schema nests them.
    fn decls_of(&self, file: u64) -> Vec<&'a Decl> {
        let mut out = Vec::new();
        let mut stack: Vec<u64> =
            self.model.nested.get(&file).map(|v| v.iter().rev().copied().collect()).unwrap_or_default();
        let mut seen = HashSet::new();
        while let Some(id) = stack.pop() {
            if !seen.insert(id) {
                continue;
            }
            if let Some(d) = self.model.decl(id) {
                if self.emitted(d) && d.file == file {
                    out.push(d);
                }
            }
            if let Some(n) = self.model.nested.get(&id) {
                stack.extend(n.iter().rev());
            }
        }
        out
    }

    /// The files to write: (id, schema file name), the requested ones first.
    fn files(&self) -> Vec<(u64, String)> {
        let mut order: Vec<(u64, String)> = self.model.files.clone();
        for (f, _) in &self.model.files {
            for i in self.model.imports.get(f).into_iter().flatten() {
                if !self.decls_of(*i).is_empty() && !order.iter().any(|(o, _)| o == i) {
                    order.push((*i, self.file_name(*i)));
                }
            }
        }
        let mut next = 0;
        while next < order.len() {
            let deps = self.deps(order[next].0);
            for d in deps {
                if !order.iter().any(|(o, _)| *o == d) {
                    order.push((d, self.file_name(d)));
                }
            }
            next += 1;
        }
        order
    }

    fn file_name(&self, file: u64) -> String {
        self.model.decl(file).map_or_else(|| format!("{file:016x}.capnp"), |d| d.display.clone())
    }

    /// The other files whose declarations `file` uses.
    fn deps(&self, file: u64) -> BTreeSet<u64> {
        let mut refs = BTreeSet::new();
        let mut json = false;
        let visit = |members: &[Member], refs: &mut BTreeSet<u64>, json: &mut bool| {
            self.member_refs(members, refs, json, &mut HashSet::new());
        };
        for d in self.decls_of(file) {
            match &d.kind {
                Kind::Struct { .. } => visit(self.members(d.id), &mut refs, &mut json),
                Kind::Interface { methods, superclasses } => {
                    refs.extend(superclasses);
                    for m in methods {
                        for s in [m.params, m.results] {
                            if self.is_implicit(s) {
                                visit(self.members(s), &mut refs, &mut json);
                            } else {
                                refs.insert(s);
                            }
                        }
                    }
                }
                Kind::Enum | Kind::Other => {}
            }
        }
        let mut files: BTreeSet<u64> = refs.iter().filter_map(|r| self.model.decl(*r)).map(|d| d.file).collect();
        if json {
            files.extend(self.json_file);
        }
        files.remove(&file);
        files.remove(&0);
        files
    }

    fn member_refs(&self, members: &[Member], refs: &mut BTreeSet<u64>, json: &mut bool, seen: &mut HashSet<u64>) {
        for m in members {
            *json |= m.json;
            match &m.ty {
                MemberTy::Slot(t) => ty_refs(t, refs),
                MemberTy::Group(g) => {
                    if seen.insert(*g) {
                        self.member_refs(self.members(*g), refs, json, seen);
                    }
                }
            }
        }
    }

    fn members(&self, id: u64) -> &'a [Member] {
        self.model.members.get(&id).map_or(&[], Vec::as_slice)
    }

    fn is_implicit(&self, id: u64) -> bool {
        matches!(self.model.decl(id).map(|d| &d.kind), Some(Kind::Struct { implicit: true, .. }) | None)
    }

    /// The names of the methods `iface` has, its superclasses' included.
    fn all_methods(&self, iface: u64, seen: &mut HashSet<u64>, out: &mut BTreeSet<String>) {
        if !seen.insert(iface) {
            return;
        }
        if let Some(Kind::Interface { methods, superclasses }) = self.model.decl(iface).map(|d| &d.kind) {
            out.extend(methods.iter().map(|m| m.name.clone()));
            for s in superclasses {
                self.all_methods(*s, seen, out);
            }
        }
    }
}

fn ty_refs(t: &Ty, refs: &mut BTreeSet<u64>) {
    match t {
        Ty::Enum(id) | Ty::Struct(id) | Ty::Interface(id) => {
            refs.insert(*id);
        }
        Ty::List(inner) => ty_refs(inner, refs),
        Ty::Void | Ty::Prim(_) | Ty::Text | Ty::Data | Ty::Unsupported => {}
    }
}

/// Which way a value goes: out of the gateway (results, what a callback receives) or
/// into it (arguments, what a callback returns).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Dir {
    /// As the gateway sends it: every field present, numbers as `number`.
    Out,
    /// As the gateway takes it: fields optional, 64-bit integers also as `bigint`.
    In,
}

/// Writes one file, collecting the imports it needs on the way.
struct FileWriter<'g, 'a> {
    gen: &'g Generator<'a>,
    file: u64,
    stems: &'g BTreeMap<u64, String>,
    /// (file, exported name) -> local name.
    imports: BTreeMap<(u64, String), String>,
    taken: HashSet<String>,
    json: JsonUse,
    awaitable: bool,
    rpc_target: bool,
}

#[derive(PartialEq, Eq)]
enum JsonUse {
    None,
    /// Declared here (this file declares the annotation, or none does).
    Local,
    /// Imported from the file declaring the annotation.
    Import(u64),
}

impl<'g, 'a> FileWriter<'g, 'a> {
    fn new(gen: &'g Generator<'a>, file: u64, stems: &'g BTreeMap<u64, String>) -> Self {
        let mut taken: HashSet<String> = RESERVED.iter().map(|s| (*s).to_string()).collect();
        for d in gen.decls_of(file) {
            taken.extend(gen.names.get(&d.id).cloned());
            taken.extend(gen.inits.get(&d.id).cloned());
        }
        let json = if gen.json_file == Some(file) { JsonUse::Local } else { JsonUse::None };
        FileWriter { gen, file, stems, imports: BTreeMap::new(), taken, json, awaitable: false, rpc_target: false }
    }

    fn write(mut self, schema: &str) -> String {
        let mut body = String::new();
        for d in self.gen.decls_of(self.file) {
            body.push('\n');
            match &d.kind {
                Kind::Struct { .. } => self.structure(&mut body, d),
                Kind::Enum => self.enumeration(&mut body, d),
                Kind::Interface { methods, superclasses } => self.interface(&mut body, d, methods, superclasses),
                Kind::Other => {}
            }
        }
        let mut out = String::new();
        let base = schema.rsplit('/').next().unwrap_or(schema);
        let _ = writeln!(out, "// Generated by `dotdo codegen --lang ts` from {base}: do not edit.");
        let _ = writeln!(out, "// Types of the Cap'n Web gateway's JSON view of the schema, for `capnweb` clients;");
        let _ = writeln!(out, "// declarations only (this file compiles to nothing).");
        if let Some(doc) = self.gen.model.decl(self.file).and_then(|d| d.doc.as_deref()) {
            jsdoc(&mut out, "", Some(&format!("{}\n\n@module", doc.trim_end())));
        }
        let mut import_lines = Vec::new();
        if self.rpc_target {
            import_lines.push("import type { RpcTarget } from \"capnweb\";".to_string());
        }
        let mut by_file: BTreeMap<String, Vec<String>> = BTreeMap::new();
        if let JsonUse::Import(f) = self.json {
            by_file.entry(self.stems.get(&f).cloned().unwrap_or_default()).or_default().push("Json".into());
        }
        for ((f, name), alias) in &self.imports {
            let spec = if name == alias { name.clone() } else { format!("{name} as {alias}") };
            by_file.entry(self.stems.get(f).cloned().unwrap_or_default()).or_default().push(spec);
        }
        for (s, names) in by_file {
            import_lines.push(format!("import type {{ {} }} from \"./{s}.js\";", names.join(", ")));
        }
        if !import_lines.is_empty() {
            out.push('\n');
            for l in import_lines {
                let _ = writeln!(out, "{l}");
            }
        }
        if self.json == JsonUse::Local {
            out.push('\n');
            jsdoc(
                &mut out,
                "",
                Some(
                    "The value of a `Text` field marked `$json`: any JSON value, as the gateway parses it\n\
                     (`null` for empty text); as an argument, any JSON value (a string is taken as JSON\n\
                     text). `any` rather than `unknown`, so that `thing.data.name` reads as JSON does in\n\
                     JavaScript: narrow it where it matters.",
                ),
            );
            let _ = writeln!(out, "// eslint-disable-next-line @typescript-eslint/no-explicit-any");
            let _ = writeln!(out, "export type Json = any;");
        }
        if self.awaitable {
            out.push('\n');
            jsdoc(
                &mut out,
                "",
                Some(
                    "What a method returns: a stub's call awaits to the value; an `RpcTarget` implementing\n\
                     the interface may return the value or a promise of it.",
                ),
            );
            let _ = writeln!(out, "type Awaitable<T> = T | Promise<T>;");
        }
        out.push_str(&body);
        out
    }

    /// The local name of declaration `id` (its input type when `init`), importing it
    /// when another file declares it.
    fn reference(&mut self, id: u64, init: bool) -> String {
        let table = if init { &self.gen.inits } else { &self.gen.names };
        let (Some(d), Some(name)) = (self.gen.model.decl(id), table.get(&id)) else { return "unknown".into() };
        if d.file == self.file {
            return name.clone();
        }
        if let Some(alias) = self.imports.get(&(d.file, name.clone())) {
            return alias.clone();
        }
        let mut alias = name.clone();
        if self.taken.contains(&alias) {
            let s: String = self
                .stems
                .get(&d.file)
                .map(|s| s.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect())
                .unwrap_or_default();
            alias = format!("{s}_{name}");
            while self.taken.contains(&alias) {
                alias.push('_');
            }
        }
        self.taken.insert(alias.clone());
        self.imports.insert((d.file, name.clone()), alias.clone());
        alias
    }

    fn json_ty(&mut self) -> String {
        if self.json == JsonUse::None {
            self.json = match self.gen.json_file {
                Some(f) if f != self.file && self.stems.contains_key(&f) => JsonUse::Import(f),
                _ => JsonUse::Local,
            };
        }
        "Json".into()
    }

    /// The TypeScript type of a value of type `t` going `dir`.
    fn ty(&mut self, t: &Ty, json: bool, dir: Dir) -> String {
        match t {
            Ty::Void => "null".into(),
            Ty::Prim("bool") => "boolean".into(),
            Ty::Prim("i64" | "u64") if dir == Dir::In => "number | bigint".into(),
            Ty::Prim(_) => "number".into(),
            Ty::Text if json => self.json_ty(),
            Ty::Text => "string".into(),
            Ty::Data => "Uint8Array".into(),
            Ty::Enum(id) | Ty::Interface(id) => self.reference(*id, false),
            Ty::Struct(id) => self.reference(*id, dir == Dir::In),
            Ty::List(inner) => {
                let inner = paren(self.ty(inner, json, dir));
                match dir {
                    Dir::Out => format!("{inner}[]"),
                    Dir::In => format!("readonly {inner}[]"),
                }
            }
            Ty::Unsupported => "unknown".into(),
        }
    }

    fn member_ty(&mut self, m: &Member, dir: Dir, indent: Option<&str>) -> String {
        match &m.ty {
            MemberTy::Slot(t) => self.ty(t, m.json, dir),
            MemberTy::Group(g) => match indent {
                Some(indent) => self.object_block(*g, dir, indent),
                None => self.object_inline(*g, dir),
            },
        }
    }

    /// Whether a member takes a plain object, which a lone argument would be mistaken for
    /// the named form.
    fn objectish(m: &Member) -> bool {
        match &m.ty {
            MemberTy::Slot(Ty::Text) => m.json,
            MemberTy::Slot(Ty::Struct(_) | Ty::Unsupported) | MemberTy::Group(_) => true,
            MemberTy::Slot(_) => false,
        }
    }

    fn optional(m: &Member, dir: Dir) -> &'static str {
        if dir == Dir::In || m.discriminant.is_some() {
            "?"
        } else {
            ""
        }
    }

    /// `{ a: A; b?: B }` on one line.
    fn object_inline(&mut self, id: u64, dir: Dir) -> String {
        let members = self.gen.members(id);
        if members.is_empty() {
            return "{}".into();
        }
        let mut parts = Vec::new();
        for m in members {
            let t = self.member_ty(m, dir, None);
            parts.push(format!("{}{}: {t}", m.name, Self::optional(m, dir)));
        }
        format!("{{ {} }}", parts.join("; "))
    }

    /// `{` members with their docs, one a line, `}` at `indent`.
    fn object_block(&mut self, id: u64, dir: Dir, indent: &str) -> String {
        let members = self.gen.members(id);
        if members.is_empty() {
            return "{}".into();
        }
        let inner = format!("{indent}  ");
        let mut out = String::from("{\n");
        for m in members {
            let mut doc = m.doc.clone().unwrap_or_default();
            if m.discriminant.is_some() && dir == Dir::Out {
                if !doc.trim().is_empty() {
                    doc = format!("{}\n\n", doc.trim_end());
                }
                doc.push_str("A member of the union: present only when it is the one set.");
            }
            jsdoc(&mut out, &inner, Some(&doc));
            let t = self.member_ty(m, dir, Some(&inner));
            let _ = writeln!(out, "{inner}{}{}: {t};", m.name, Self::optional(m, dir));
        }
        out.push_str(indent);
        out.push('}');
        out
    }

    fn structure(&mut self, out: &mut String, d: &Decl) {
        let name = self.gen.names.get(&d.id).cloned().unwrap_or_default();
        let init = self.gen.inits.get(&d.id).cloned().unwrap_or_default();
        jsdoc(out, "", d.doc.as_deref());
        let body = self.object_block(d.id, Dir::Out, "");
        let _ = writeln!(out, "export interface {name} {body}");
        out.push('\n');
        jsdoc(
            out,
            "",
            Some(&format!("`{name}` as an argument: every field optional (a missing one keeps its default).")),
        );
        let body = self.object_block(d.id, Dir::In, "");
        let _ = writeln!(out, "export type {init} = {body};");
    }

    fn enumeration(&mut self, out: &mut String, d: &Decl) {
        let name = self.gen.names.get(&d.id).cloned().unwrap_or_default();
        jsdoc(out, "", d.doc.as_deref());
        let enumerants = self.gen.model.enumerants.get(&d.id).map_or(&[][..], Vec::as_slice);
        if enumerants.is_empty() {
            let _ = writeln!(out, "export type {name} = never;");
            return;
        }
        let _ = writeln!(out, "export type {name} =");
        for (i, e) in enumerants.iter().enumerate() {
            jsdoc(out, "  ", e.doc.as_deref());
            let end = if i + 1 == enumerants.len() { ";" } else { "" };
            let _ = writeln!(out, "  | {:?}{end}", e.name);
        }
    }

    fn interface(&mut self, out: &mut String, d: &Decl, methods: &[Method], superclasses: &[u64]) {
        let name = self.gen.names.get(&d.id).cloned().unwrap_or_default();
        jsdoc(out, "", d.doc.as_deref());
        let own: BTreeSet<&str> = methods.iter().map(|m| m.name.as_str()).collect();
        let mut bases = Vec::new();
        for s in superclasses {
            let base = self.reference(*s, false);
            let mut inherited = BTreeSet::new();
            self.gen.all_methods(*s, &mut HashSet::new(), &mut inherited);
            let shadowed: Vec<String> =
                inherited.iter().filter(|m| own.contains(m.as_str())).map(|m| format!("{m:?}")).collect();
            if shadowed.is_empty() {
                bases.push(base);
            } else {
                bases.push(format!("Omit<{base}, {}>", shadowed.join(" | ")));
            }
        }
        if bases.is_empty() {
            self.rpc_target = true;
            bases.push("RpcTarget".into());
        }
        let _ = writeln!(out, "export interface {name} extends {} {{", bases.join(", "));
        for (i, m) in methods.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            jsdoc(out, "  ", m.doc.as_deref());
            let params = self.params(m);
            let results = self.results(m);
            self.awaitable = true;
            let _ = writeln!(out, "  {}{params}: Awaitable<{results}>;", m.name);
        }
        let _ = writeln!(out, "}}");
    }

    /// A method's parameter list: positional, and the named form with two or more params.
    fn params(&mut self, m: &Method) -> String {
        let members = self.gen.members(m.params);
        let plain: Vec<&Member> = members.iter().filter(|p| p.discriminant.is_none()).collect();
        match plain.as_slice() {
            [] => "()".into(),
            [one] => format!("({}?: {})", label(&one.name), self.member_ty(one, Dir::In, None)),
            [first, ..] => {
                let lone_object = Self::objectish(first);
                let mut tuple = Vec::new();
                for (i, p) in plain.iter().enumerate() {
                    let t = self.member_ty(p, Dir::In, None);
                    let l = label(&p.name);
                    tuple.push(match (lone_object, i) {
                        (true, 0) => format!("{l}: {t}"),
                        (true, 1) => format!("{l}: {t} | undefined"),
                        _ => format!("{l}?: {t}"),
                    });
                }
                let named = if self.gen.is_implicit(m.params) {
                    self.object_inline(m.params, Dir::In)
                } else {
                    self.reference(m.params, true)
                };
                let positional = if lone_object {
                    format!("[] | [{}]", tuple.join(", "))
                } else {
                    format!("[{}]", tuple.join(", "))
                };
                format!("(...args: {positional} | [params: {named}])")
            }
        }
    }

    /// A method's result: nothing, its one field's value, or an object.
    fn results(&mut self, m: &Method) -> String {
        let members = self.gen.members(m.results);
        let plain: Vec<&Member> = members.iter().filter(|r| r.discriminant.is_none()).collect();
        let union: Vec<&Member> = members.iter().filter(|r| r.discriminant.is_some()).collect();
        match (plain.as_slice(), union.is_empty()) {
            ([], true) => "void".into(),
            ([one], true) => self.member_ty(one, Dir::Out, None),
            ([], false) => {
                let types: Vec<String> = union.iter().map(|u| self.member_ty(u, Dir::Out, None)).collect();
                let mut unique: Vec<String> = Vec::new();
                for t in types {
                    if !unique.contains(&t) {
                        unique.push(t);
                    }
                }
                unique.join(" | ")
            }
            _ if self.gen.is_implicit(m.results) => self.object_inline(m.results, Dir::Out),
            _ => self.reference(m.results, false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Decl, Enumerant, Field};

    const FILE: u64 = 0x100;
    const OTHER: u64 = 0x200;

    fn decl(id: u64, name: &str, file: u64, kind: Kind) -> Decl {
        Decl {
            id,
            name: name.into(),
            display: format!("x.capnp:{name}"),
            raw_path: String::new(),
            plain: name.into(),
            file,
            doc: None,
            generic: false,
            kind,
        }
    }

    fn member(name: &str, ty: Ty) -> Member {
        Member { name: name.into(), ty: MemberTy::Slot(ty), doc: None, discriminant: None, json: false, code_order: 0 }
    }

    fn strukt(fields: Vec<Field>, implicit: bool) -> Kind {
        Kind::Struct { fields, irregular: false, implicit }
    }

    /// A model of two files: `x.capnp` with a struct `S`, an enum `Color`, an interface
    /// `Api`; `other.capnp` with a struct `S` too, the `$json` annotation and `Base`.
    fn model() -> Model {
        let mut m = Model::default();
        m.files.push((FILE, "x.capnp".into()));
        let mut file = decl(FILE, "", 0, Kind::Other);
        file.display = "x.capnp".into();
        let mut other = decl(OTHER, "", 0, Kind::Other);
        other.display = "dir/other.capnp".into();
        m.decls.insert(FILE, file);
        m.decls.insert(OTHER, other);
        m.decls.insert(1, decl(1, "S", FILE, strukt(Vec::new(), false)));
        m.decls.insert(2, decl(2, "Color", FILE, Kind::Enum));
        m.decls.insert(3, decl(3, "Api", FILE, Kind::Interface { methods: Vec::new(), superclasses: vec![5] }));
        m.decls.insert(4, decl(4, "S", OTHER, strukt(Vec::new(), false)));
        m.decls.insert(5, decl(5, "Base", OTHER, Kind::Interface { methods: Vec::new(), superclasses: Vec::new() }));
        m.decls.insert(JSON_ANNOTATION, decl(JSON_ANNOTATION, "json", OTHER, Kind::Other));
        m.nested.insert(FILE, vec![1, 2, 3]);
        m.nested.insert(OTHER, vec![4, 5, JSON_ANNOTATION]);
        m.enumerants.insert(
            2,
            vec![
                Enumerant { name: "red".into(), doc: Some("Warm.".into()) },
                Enumerant { name: "green".into(), doc: None },
            ],
        );
        m.members.insert(1, vec![member("x", Ty::Prim("i64"))]);
        m.members.insert(4, vec![member("y", Ty::Text)]);
        m
    }

    fn ty(t: Ty, json: bool, dir: Dir) -> (String, Vec<String>) {
        let model = model();
        let gen = Generator::new(&model);
        let stems: BTreeMap<u64, String> = [(FILE, "x".to_string()), (OTHER, "other".to_string())].into();
        let mut w = FileWriter::new(&gen, FILE, &stems);
        let s = w.ty(&t, json, dir);
        let imports = w.imports.iter().map(|((_, n), a)| format!("{n} as {a}")).collect();
        (s, imports)
    }

    #[test]
    fn scalars_map_to_javascript_values() {
        for (t, out, input) in [
            (Ty::Prim("bool"), "boolean", "boolean"),
            (Ty::Prim("i8"), "number", "number"),
            (Ty::Prim("u32"), "number", "number"),
            (Ty::Prim("f64"), "number", "number"),
            (Ty::Prim("i64"), "number", "number | bigint"),
            (Ty::Prim("u64"), "number", "number | bigint"),
            (Ty::Text, "string", "string"),
            (Ty::Data, "Uint8Array", "Uint8Array"),
            (Ty::Void, "null", "null"),
            (Ty::Unsupported, "unknown", "unknown"),
        ] {
            assert_eq!(ty(t.clone(), false, Dir::Out).0, out, "{t:?} out");
            assert_eq!(ty(t.clone(), false, Dir::In).0, input, "{t:?} in");
        }
    }

    #[test]
    fn json_text_is_the_json_type_and_lists_follow_their_elements() {
        assert_eq!(ty(Ty::Text, true, Dir::Out).0, "Json");
        assert_eq!(ty(Ty::List(Box::new(Ty::Text)), true, Dir::Out).0, "Json[]");
        assert_eq!(ty(Ty::List(Box::new(Ty::Prim("i64"))), false, Dir::Out).0, "number[]");
        assert_eq!(ty(Ty::List(Box::new(Ty::Prim("i64"))), false, Dir::In).0, "readonly (number | bigint)[]");
        assert_eq!(ty(Ty::List(Box::new(Ty::List(Box::new(Ty::Data)))), false, Dir::Out).0, "Uint8Array[][]");
    }

    #[test]
    fn declarations_are_referenced_by_name_and_imported_with_an_alias_on_a_clash() {
        assert_eq!(ty(Ty::Struct(1), false, Dir::Out).0, "S");
        assert_eq!(ty(Ty::Struct(1), false, Dir::In).0, "SInit");
        assert_eq!(ty(Ty::Enum(2), false, Dir::In).0, "Color");
        assert_eq!(ty(Ty::Interface(3), false, Dir::Out).0, "Api");
        let (s, imports) = ty(Ty::Struct(4), false, Dir::Out);
        assert_eq!((s.as_str(), imports), ("other_S", vec!["S as other_S".to_string()]));
        let (s, imports) = ty(Ty::Interface(5), false, Dir::Out);
        assert_eq!((s.as_str(), imports), ("Base", vec!["Base as Base".to_string()]));
        assert_eq!(ty(Ty::Struct(999), false, Dir::Out).0, "unknown");
    }

    #[test]
    fn a_file_renders_enums_structs_interfaces_and_its_imports() {
        let model = model();
        let files = render(&model).expect("render");
        let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["x.ts", "other.ts"], "the requested file, then the one it uses");
        let x = &files[0].source;
        assert!(x.contains("export type Color =\n  /** Warm. */\n  | \"red\"\n  | \"green\";\n"), "{x}");
        assert!(x.contains("export interface S {\n  x: number;\n}\n"), "{x}");
        assert!(x.contains("export type SInit = {\n  x?: number | bigint;\n};\n"), "{x}");
        assert!(x.contains("export interface Api extends Base {\n}"), "{x}");
        assert!(x.contains("import type { Base } from \"./other.js\";"), "{x}");
        assert!(!x.contains("RpcTarget"), "Api has a superclass: {x}");
        let other = &files[1].source;
        assert!(other.contains("import type { RpcTarget } from \"capnweb\";"), "{other}");
        assert!(other.contains("export interface Base extends RpcTarget {\n}"), "{other}");
        assert!(other.contains("export type Json = any;"), "the annotation's file declares Json: {other}");
    }

    #[test]
    fn reserved_names_get_an_underscore() {
        assert_eq!(label("class"), "class_");
        assert_eq!(label("name"), "name");
        let mut m = model();
        if let Some(d) = m.decls.get_mut(&1) {
            d.plain = "Promise".into();
        }
        let x = &render(&m).expect("render")[0].source;
        assert!(x.contains("export interface Promise_ {"), "{x}");
        assert!(x.contains("export type Promise_Init = {"), "{x}");
    }

    #[test]
    fn stems_come_from_the_base_name_and_clashing_stems_fail() {
        assert_eq!(stem("a/b/my-file.capnp"), "my-file");
        assert_eq!(stem("/object.capnp"), "object");
        let mut m = model();
        if let Some(d) = m.decls.get_mut(&OTHER) {
            d.display = "elsewhere/x.capnp".into();
        }
        match render(&m) {
            Err(CodegenError::Failed(msg)) => assert!(msg.contains("x.ts"), "{msg}"),
            other => panic!("expected a clash, got {other:?}"),
        }
    }

    fn method_model(params: Vec<Member>, results: Vec<Member>) -> Model {
        let mut m = model();
        m.decls.insert(10, decl(10, "mParams", 0, strukt(Vec::new(), true)));
        m.decls.insert(11, decl(11, "mResults", 0, strukt(Vec::new(), true)));
        m.members.insert(10, params);
        m.members.insert(11, results);
        m
    }

    fn signature(params: Vec<Member>, results: Vec<Member>) -> (String, String) {
        let model = method_model(params, results);
        let gen = Generator::new(&model);
        let stems: BTreeMap<u64, String> = [(FILE, "x".to_string()), (OTHER, "other".to_string())].into();
        let mut w = FileWriter::new(&gen, FILE, &stems);
        let m = Method { name: "m".into(), ordinal: 0, params: 10, results: 11, doc: None };
        (w.params(&m), w.results(&m))
    }

    #[test]
    fn arguments_are_positional_and_optional_or_named_with_two_or_more() {
        assert_eq!(signature(vec![], vec![]).0, "()");
        assert_eq!(signature(vec![member("class", Ty::Text)], vec![]).0, "(class_?: string)");
        let (p, _) = signature(vec![member("class", Ty::Text), member("n", Ty::Prim("u64"))], vec![]);
        assert_eq!(
            p,
            "(...args: [class_?: string, n?: number | bigint] | [params: { class?: string; n?: number | bigint }])"
        );
        let mut q = member("query", Ty::Text);
        q.json = true;
        let (p, _) = signature(vec![q, member("soft", Ty::Prim("bool")), member("x", Ty::Text)], vec![]);
        assert_eq!(
            p,
            "(...args: [] | [query: Json, soft: boolean | undefined, x?: string] | \
             [params: { query?: Json; soft?: boolean; x?: string }])",
            "a lone object would be the named form"
        );
    }

    #[test]
    fn results_are_void_one_value_or_an_object() {
        assert_eq!(signature(vec![], vec![]).1, "void");
        assert_eq!(signature(vec![], vec![member("thing", Ty::Struct(1))]).1, "S");
        assert_eq!(
            signature(vec![], vec![member("things", Ty::List(Box::new(Ty::Struct(1)))), member("cursor", Ty::Text)]).1,
            "{ things: S[]; cursor: string }"
        );
        let mut a = member("a", Ty::Text);
        a.discriminant = Some(0);
        let mut b = member("b", Ty::Prim("u8"));
        b.discriminant = Some(1);
        assert_eq!(signature(vec![], vec![a.clone(), b.clone()]).1, "string | number", "a union's one set member");
        assert_eq!(signature(vec![], vec![member("c", Ty::Data), a, b]).1, "{ c: Uint8Array; a?: string; b?: number }");
    }

    #[test]
    fn unions_are_optional_and_groups_nested_objects() {
        let mut m = model();
        let mut a = member("a", Ty::Text);
        a.discriminant = Some(0);
        a.doc = Some("The A.".into());
        let g = Member {
            name: "g".into(),
            ty: MemberTy::Group(20),
            doc: None,
            discriminant: Some(1),
            json: false,
            code_order: 2,
        };
        m.members.insert(1, vec![member("x", Ty::Prim("i64")), a, g]);
        m.decls.insert(20, decl(20, "g", FILE, strukt(Vec::new(), false)));
        m.members.insert(20, vec![member("deep", Ty::Prim("bool"))]);
        let x = &render(&m).expect("render")[0].source;
        assert!(
            x.contains(
                "  /**\n   * The A.\n   *\n   * A member of the union: present only when it is the one set.\n   */\n  a?: string;\n"
            ),
            "{x}"
        );
        assert!(x.contains("  g?: {\n    deep: boolean;\n  };\n"), "{x}");
        assert!(x.contains("  g?: {\n    deep?: boolean;\n  };\n};"), "{x}");
        assert!(!x.contains("interface g"), "a group is not a declaration of its own: {x}");
    }

    #[test]
    fn shadowed_methods_are_omitted_from_the_superclass() {
        let mut m = model();
        let method = |name: &str| Method { name: name.into(), ordinal: 0, params: 10, results: 11, doc: None };
        m.decls.insert(10, decl(10, "p", 0, strukt(Vec::new(), true)));
        m.decls.insert(11, decl(11, "r", 0, strukt(Vec::new(), true)));
        if let Some(d) = m.decls.get_mut(&5) {
            d.kind = Kind::Interface { methods: vec![method("get"), method("put")], superclasses: Vec::new() };
        }
        if let Some(d) = m.decls.get_mut(&3) {
            d.kind = Kind::Interface { methods: vec![method("get")], superclasses: vec![5] };
        }
        let x = &render(&m).expect("render")[0].source;
        assert!(x.contains("export interface Api extends Omit<Base, \"get\"> {\n  get(): Awaitable<void>;\n}"), "{x}");
    }

    #[test]
    fn docs_become_jsdoc() {
        let mut out = String::new();
        jsdoc(&mut out, "  ", Some("\nOne line.\n"));
        assert_eq!(out, "  /** One line. */\n");
        out.clear();
        jsdoc(&mut out, "", Some("First.\n\nSecond */ here.  \n"));
        assert_eq!(out, "/**\n * First.\n *\n * Second *\\/ here.\n */\n");
        out.clear();
        jsdoc(&mut out, "", Some("  \n"));
        assert_eq!(out, "");
    }
}
