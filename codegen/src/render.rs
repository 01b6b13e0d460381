//! Renders the typed client layer of one schema file: a plain Rust struct for every
//! struct, a typed client for every interface whose methods take Rust values and return
//! awaitable calls, and one reply type per method. The generated code reaches the
//! runtime only through one module (`rpc_client::codegen` by default), as tonic's
//! generated code reaches tonic through `tonic::codegen`.

use crate::model::{module_name, snake, Decl, Kind, Method, Model, Ty};
use std::fmt::Write as _;

/// Where the generated code finds its surroundings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// The path of the module holding capnpc's modules (`crate` when
    /// `greeter_capnp` is a module at the crate root).
    pub raw_root: String,
    /// The path of the module holding the typed modules (`crate`).
    pub typed_root: String,
    /// What follows a file's stem in its typed module's name (`_client`: `greeter_client`).
    pub typed_suffix: String,
    /// The runtime support module (`::rpc_client::codegen`).
    pub runtime: String,
    /// The public path of the typed modules for doc examples (`rpc_client::api`), if
    /// they are reachable from doc tests.
    pub doc_root: Option<String>,
    /// Imported files generated elsewhere: (capnpc module of the file, e.g.
    /// `object_capnp`; where capnpc's module is, e.g. `::schema`; the typed module,
    /// e.g. `::rpc_client::api::object`). By default dotdo's built-in files.
    pub imports: Vec<(String, String, String)>,
}

/// dotdo's built-in schema files as imports: capnpc's modules in the `schema` crate,
/// the typed ones in `rpc_client::api`.
pub fn builtin_imports() -> Vec<(String, String, String)> {
    crate::BUILTIN_FILES
        .iter()
        .map(|f| {
            let stem = f.trim_end_matches(".capnp");
            (format!("{stem}_capnp"), "::schema".to_string(), format!("::rpc_client::api::{stem}"))
        })
        .collect()
}

impl Default for Paths {
    fn default() -> Self {
        Paths {
            raw_root: "crate".into(),
            typed_root: "crate".into(),
            typed_suffix: "_client".into(),
            runtime: "::rpc_client::codegen".into(),
            doc_root: None,
            imports: builtin_imports(),
        }
    }
}

const KEYWORDS: &[&str] = &[
    "as", "async", "await", "box", "break", "const", "continue", "crate", "do", "dyn", "else", "enum", "extern",
    "false", "final", "fn", "for", "gen", "if", "impl", "in", "let", "loop", "macro", "match", "mod", "move", "mut",
    "override", "priv", "pub", "ref", "return", "self", "Self", "static", "struct", "super", "trait", "true", "try",
    "type", "typeof", "unsafe", "unsized", "use", "virtual", "where", "while", "yield",
];

/// Names the typed client itself uses; a schema method with one of them gets `_` appended.
const CLIENT_METHODS: &[&str] =
    &["new", "serve", "raw", "into_raw", "options", "with_options", "with_deadline", "cast", "clone"];

/// Whether `s` is a Rust keyword.
pub fn is_keyword(s: &str) -> bool {
    KEYWORDS.contains(&s)
}

/// A Rust identifier for a schema name: snake case, raw when it is a keyword.
fn ident(name: &str) -> String {
    let s = snake(name);
    match s.as_str() {
        "self" | "Self" | "super" | "crate" => format!("{s}_"),
        k if is_keyword(k) => format!("r#{s}"),
        _ => s,
    }
}

fn pascal(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
}

fn doc_lines(out: &mut String, indent: &str, text: &str) {
    for line in text.trim_end().lines() {
        let line = line.trim_end();
        if line.is_empty() {
            let _ = writeln!(out, "{indent}///");
        } else {
            let _ = writeln!(out, "{indent}/// {line}");
        }
    }
}

/// A compile-checked example of calling one method: the example function's parameters,
/// the call expression, and the path of the module holding its call and reply types.
struct Example {
    signature: String,
    call: String,
    types: String,
}

impl Example {
    /// The example as doc lines at `indent`, running `body` (lines; `{call}` and `{types}`
    /// are replaced).
    fn doc(&self, indent: &str, body: &str) -> String {
        let mut o = format!(
            "{indent}///\n{indent}/// ```no_run\n{indent}/// # async fn example({}) -> Result<(), rpc_client::RpcError> {{\n",
            self.signature
        );
        for line in body.replace("{call}", &self.call).replace("{types}", &self.types).lines() {
            let _ = writeln!(o, "{indent}/// {line}");
        }
        let _ = writeln!(o, "{indent}/// # Ok(()) }}\n{indent}/// ```");
        o
    }
}

/// The names of one wrapped method's pieces.
struct Signature<'a> {
    /// The module holding the interface's call and reply types.
    module: String,
    /// `Open` for `open`: `OpenCall`, `OpenReply`.
    base: String,
    /// The client method's name.
    fname: String,
    /// The params that carry something.
    params: Vec<&'a crate::model::Field>,
    /// The results that carry something.
    results: Vec<&'a crate::model::Field>,
    /// The method's example, if it has one.
    example: Option<Example>,
    /// The example's body: the call, awaited for its reply.
    awaited: String,
}

struct File<'m> {
    model: &'m Model,
    paths: &'m Paths,
    file: u64,
    stem: String,
    out: String,
}

impl File<'_> {
    /// The import that provides `d`, when it comes from a file generated elsewhere.
    fn import_of(&self, d: &Decl) -> Option<&(String, String, String)> {
        if self.model.files.iter().any(|(f, _)| *f == d.file) {
            return None;
        }
        let file_mod = d.raw_path.split("::").next()?;
        self.paths.imports.iter().find(|(m, ..)| m == file_mod)
    }

    fn raw_root(&self, d: &Decl) -> &str {
        self.import_of(d).map_or(self.paths.raw_root.as_str(), |(_, root, _)| root.as_str())
    }

    fn raw(&self, d: &Decl) -> String {
        format!("{}::{}", self.raw_root(d), d.raw_path)
    }

    fn raw_enum(&self, d: &Decl) -> String {
        let parent = d.raw_path.rsplit_once("::").map_or(d.raw_path.as_str(), |(p, _)| p);
        format!("{}::{}::{}", self.raw_root(d), parent, d.name)
    }

    /// The path of a typed item (`Directory`) as seen from this file's module.
    fn typed(&self, d: &Decl) -> String {
        if d.file == self.file {
            return d.plain.clone();
        }
        if let Some((_, _, typed)) = self.import_of(d) {
            return format!("{typed}::{}", d.plain);
        }
        let stem = self
            .model
            .files
            .iter()
            .find(|(f, _)| *f == d.file)
            .map(|(_, n)| crate::model::file_module(n))
            .or_else(|| self.model.decl(d.file).map(|f| crate::model::file_module(&f.display)))
            .unwrap_or_default();
        let stem = stem.strip_suffix("_capnp").unwrap_or(&stem);
        format!("{}::{stem}{}::{}", self.paths.typed_root, self.paths.typed_suffix, d.plain)
    }

    fn decl(&self, id: u64) -> &Decl {
        static MISSING: std::sync::OnceLock<Decl> = std::sync::OnceLock::new();
        self.model.decl(id).unwrap_or_else(|| {
            MISSING.get_or_init(|| Decl {
                id: 0,
                name: "Missing".into(),
                display: "missing".into(),
                raw_path: "missing".into(),
                plain: "Missing".into(),
                file: 0,
                doc: None,
                generic: true,
                kind: Kind::Other,
            })
        })
    }

    /// The owned Rust type of a value.
    fn owned(&self, t: &Ty) -> String {
        match t {
            Ty::Void => "()".into(),
            Ty::Prim(p) => (*p).into(),
            Ty::Text => "String".into(),
            Ty::Data => "Vec<u8>".into(),
            Ty::Enum(id) => self.raw_enum(self.decl(*id)),
            Ty::Struct(id) | Ty::Interface(id) => self.typed(self.decl(*id)),
            Ty::List(inner) => format!("Vec<{}>", self.owned(inner)),
            Ty::Unsupported => "()".into(),
        }
    }

    /// The type of a method argument.
    fn arg(&self, t: &Ty) -> String {
        match t {
            Ty::Text => "&str".into(),
            Ty::Data => "&[u8]".into(),
            Ty::Struct(_) => format!("&{}", self.owned(t)),
            // A capability argument may be null: `&cap` or `None`.
            Ty::Interface(_) => format!("impl Into<Option<&'a {}>>", self.owned(t)),
            Ty::List(inner) => match **inner {
                Ty::Text => "&[impl AsRef<str>]".into(),
                Ty::Data => "&[impl AsRef<[u8]>]".into(),
                _ => format!("&[{}]", self.owned(inner)),
            },
            _ => self.owned(t),
        }
    }

    /// An expression reading a value of type `t` from `src` (which is a `Result` when
    /// `wrapped`), as its owned type; uses `?` and `options`.
    fn read(&self, t: &Ty, src: &str, wrapped: bool, depth: usize) -> String {
        let q = if wrapped { "?" } else { "" };
        match t {
            Ty::Void | Ty::Unsupported => "()".into(),
            Ty::Prim(_) => format!("{src}{q}"),
            Ty::Text => format!("rt::text({src})?"),
            Ty::Data => format!("{src}?.to_vec()"),
            Ty::Enum(_) => format!("{src}.map_err(rt::not_in_schema)?"),
            Ty::Struct(id) => format!("{}::read({src}{q}, options)?", self.owned(&Ty::Struct(*id))),
            Ty::Interface(id) => format!("{}::new({src}?).with_options(*options)", self.owned(&Ty::Interface(*id))),
            Ty::List(inner) => {
                let (l, i) = (format!("list{depth}"), format!("item{depth}"));
                let item_wrapped = matches!(**inner, Ty::Text | Ty::Data | Ty::Interface(_) | Ty::List(_));
                let elem = self.read(inner, &i, item_wrapped, depth + 1);
                format!(
                    "{{ let {l} = {src}?; let mut v = Vec::with_capacity({l}.len() as usize); \
                     for {i} in {l}.iter() {{ v.push({elem}); }} v }}"
                )
            }
        }
    }

    /// Statements writing `v` (a place: `name` or `self.name`) into field `field` of
    /// the builder `b`.
    fn write(&self, t: &Ty, b: &str, field: &str, v: &str, depth: usize) -> String {
        let f = snake(field);
        match t {
            Ty::Void | Ty::Unsupported => String::new(),
            Ty::Prim(_) | Ty::Enum(_) => format!("{b}.set_{f}({v});"),
            Ty::Text | Ty::Data => format!("{b}.set_{f}(&{v}[..]);"),
            Ty::Struct(_) => format!("{v}.write({b}.reborrow().init_{f}());"),
            Ty::Interface(_) => format!("{b}.set_{f}({v}.raw().clone());"),
            Ty::List(inner) => {
                let l = format!("list{depth}");
                let head = format!("let mut {l} = {b}.reborrow().init_{f}({v}.len() as u32);");
                format!("{{ {head} {} }}", self.write_items(inner, &l, v, depth))
            }
        }
    }

    fn write_items(&self, t: &Ty, l: &str, v: &str, depth: usize) -> String {
        let (i, item) = (format!("i{depth}"), format!("item{depth}"));
        let at = format!("{i} as u32");
        let body = match t {
            Ty::Prim(_) | Ty::Enum(_) => format!("{l}.set({at}, *{item});"),
            Ty::Text => format!("{l}.set({at}, AsRef::<str>::as_ref({item}));"),
            Ty::Data => format!("{l}.set({at}, AsRef::<[u8]>::as_ref({item}));"),
            Ty::Struct(_) => format!("{item}.write({l}.reborrow().get({at}));"),
            Ty::Interface(_) => {
                format!("{l}.set({at}, rt::capnp::capability::FromClientHook::into_client_hook({item}.raw().clone()));")
            }
            Ty::List(inner) => {
                let l2 = format!("list{}", depth + 1);
                format!(
                    "let mut {l2} = {l}.reborrow().init({at}, {item}.len() as u32); {}",
                    self.write_items(inner, &l2, &item, depth + 1)
                )
            }
            Ty::Void | Ty::Unsupported => String::new(),
        };
        format!("for ({i}, {item}) in {v}.iter().enumerate() {{ {body} }}")
    }

    fn derives(&self, fields: &[&crate::model::Field]) -> &'static str {
        let caps = fields.iter().any(|f| self.model.holds_caps(&f.ty));
        let enums = fields.iter().any(|f| self.model.holds_enum(&f.ty));
        match (caps, enums) {
            (true, _) => "#[derive(Clone)]",
            (false, true) => "#[derive(Debug, Clone, PartialEq)]",
            (false, false) => "#[derive(Debug, Clone, PartialEq, Default)]",
        }
    }

    fn plain_struct(&mut self, d: &Decl) {
        let fields: Vec<&crate::model::Field> =
            self.model.fields(d.id).iter().filter(|f| !matches!(f.ty, Ty::Void)).collect();
        let raw = self.raw(d);
        let mut o = String::new();
        if let Some(doc) = &d.doc {
            doc_lines(&mut o, "", doc);
            o.push_str("///\n");
        }
        let _ = writeln!(
            o,
            "/// The plain Rust value of `{}`; [`{}::read`] and [`{}::write`] convert it",
            d.display, d.plain, d.plain
        );
        o.push_str("/// from and to its Cap'n Proto form.\n");
        let example = self.round_trip(d, &fields, "");
        o.push_str(&example);
        let _ = writeln!(o, "{}\npub struct {} {{", self.derives(&fields), d.plain);
        for f in &fields {
            match &f.doc {
                Some(doc) => doc_lines(&mut o, "    ", doc),
                None => {
                    let _ = writeln!(o, "    /// `{}`.", f.name);
                }
            }
            let _ = writeln!(o, "    pub {}: {},", ident(&f.name), self.owned(&f.ty));
        }
        o.push_str("}\n\n");
        let _ = writeln!(o, "impl {} {{", d.plain);
        let _ = writeln!(
            o,
            "    /// Reads a value from its Cap'n Proto reader; capabilities in it make calls with `options`.\n{example}    \
             pub fn read(r: {raw}::Reader<'_>, options: &rt::CallOptions) -> Result<Self, rt::RpcError> {{\n        \
             let _ = options;\n        Ok({} {{",
            d.plain,
            example = self.round_trip(d, &fields, "    ")
        );
        for f in &fields {
            let getter = format!("r.get_{}()", snake(&f.name));
            let wrapped = !matches!(f.ty, Ty::Prim(_));
            let _ = writeln!(o, "            {}: {},", ident(&f.name), self.read(&f.ty, &getter, wrapped, 0));
        }
        o.push_str("        })\n    }\n\n");
        let _ = writeln!(
            o,
            "    /// Writes this value into a Cap'n Proto builder.\n{}    pub fn write(&self, b: {raw}::Builder<'_>) {{",
            self.round_trip(d, &fields, "    ")
        );
        if fields.is_empty() {
            o.push_str("        let _ = b;\n");
        } else {
            o.push_str("        let mut b = b;\n");
        }
        for f in &fields {
            let v = format!("self.{}", ident(&f.name));
            let _ = writeln!(o, "        {}", self.write(&f.ty, "b", &f.name, &v, 0));
        }
        o.push_str("    }\n}\n\n");
        self.out.push_str(&o);
    }

    /// A doc example writing a default value of plain struct `d` and reading it back,
    /// when it has a default and the layer is reachable from doc tests.
    fn round_trip(&self, d: &Decl, fields: &[&crate::model::Field], indent: &str) -> String {
        let Some(root) = &self.paths.doc_root else { return String::new() };
        if fields.iter().any(|f| self.model.holds_caps(&f.ty) || self.model.holds_enum(&f.ty)) {
            return String::new();
        }
        let path = format!("{root}::{}::{}", self.stem, d.plain);
        let raw = format!("::schema::{}", d.raw_path);
        let lines = [
            "```".to_string(),
            "use rpc_client::codegen::capnp;".to_string(),
            format!("let value = {path}::default();"),
            "let mut message = capnp::message::Builder::new_default();".to_string(),
            format!("value.write(message.init_root::<{raw}::Builder<'_>>());"),
            format!("let reader = message.get_root_as_reader::<{raw}::Reader<'_>>().unwrap();"),
            format!("assert_eq!({path}::read(reader, &Default::default()).unwrap(), value);"),
            "```".to_string(),
        ];
        let mut o = format!("{indent}///\n");
        for l in lines {
            let _ = writeln!(o, "{indent}/// {l}");
        }
        o
    }

    /// Whether the typed client of interface type `t` has a method named `name`.
    fn has_method(&self, t: &Ty, name: &str) -> bool {
        let Ty::Interface(id) = t else { return false };
        match &self.decl(*id).kind {
            Kind::Interface { methods, .. } => methods.iter().any(|m| self.wraps(m) && ident(&m.name) == name),
            _ => false,
        }
    }

    /// Whether the typed client wraps method `m` (every field of its params and results
    /// is supported, and both are the method's own implicit structs).
    fn wraps(&self, m: &Method) -> bool {
        [m.params, m.results].iter().all(|id| {
            let d = self.decl(*id);
            matches!(d.kind, Kind::Struct { implicit: true, irregular: false, .. })
                && self.model.fields(*id).iter().all(|f| self.model.supported(&f.ty))
        })
    }

    fn sample(&self, t: &Ty) -> Option<String> {
        Some(match t {
            Ty::Prim("bool") => "false".into(),
            Ty::Prim("f32" | "f64") => "0.0".into(),
            Ty::Prim(_) => "0".into(),
            Ty::Text => "\"\"".into(),
            Ty::Data => "&[]".into(),
            Ty::List(inner) => match **inner {
                Ty::Text => "&[\"\"]".into(),
                Ty::Data => "&[&b\"\"[..]]".into(),
                _ => "&[]".into(),
            },
            Ty::Struct(_) if !self.model.holds_caps(t) && !self.model.holds_enum(t) => "&Default::default()".into(),
            _ => return None,
        })
    }

    fn interface(&mut self, d: &Decl, methods: &[Method], superclasses: &[u64]) {
        let raw = self.raw(d);
        let name = &d.plain;
        let module = module_name(&d.name);
        let var = snake(&d.name);
        let mut o = String::new();
        if let Some(doc) = &d.doc {
            doc_lines(&mut o, "", doc);
            o.push_str("///\n");
        }
        let _ = writeln!(
            o,
            "/// Typed client of `{}`. Each method takes plain Rust values and returns a call you\n\
             /// `.await` for its reply; capabilities in a reply can be called before it arrives\n\
             /// (promise pipelining). The raw capnp client is [`{name}::raw`] (and `Deref`).",
            d.display
        );
        let skipped: Vec<&str> = methods.iter().filter(|m| !self.wraps(m)).map(|m| m.name.as_str()).collect();
        if !skipped.is_empty() {
            let _ = writeln!(o, "///\n/// Not wrapped (use the raw client): {}.", skipped.join(", "));
        }
        if let Some(root) = &self.paths.doc_root {
            let path = format!("{root}::{}::{name}", self.stem);
            let _ = writeln!(
                o,
                "///\n/// ```no_run\n/// # async fn example({var}: {path}) -> Result<(), rpc_client::RpcError> {{\n\
                 /// let {var} = {var}.with_deadline(std::time::Duration::from_secs(5));\n\
                 /// let raw = {var}.raw().clone();\n/// let again = {path}::from(raw);\n\
                 /// # let _ = again;\n/// # Ok(()) }}\n/// ```"
            );
        }
        let _ = writeln!(
            o,
            "#[derive(Clone)]\npub struct {name} {{\n    raw: {raw}::Client,\n    options: rt::CallOptions,\n}}\n"
        );
        let _ = writeln!(o, "impl {name} {{");
        o.push_str(&self.helpers(d));
        for s in superclasses {
            let base = self.decl(*s);
            if matches!(base.kind, Kind::Interface { .. }) && !base.generic {
                let t = self.typed(base);
                let _ = writeln!(
                    o,
                    "\n    /// This capability as its base interface `{}`.\n    pub fn as_{}(&self) -> {t} {{\n        \
                     {t}::new(self.cast()).with_options(self.options)\n    }}",
                    base.display,
                    snake(&base.name)
                );
            }
        }
        let mut sub = String::new();
        for m in methods.iter().filter(|m| self.wraps(m)) {
            self.method(&mut o, &mut sub, d, m);
        }
        o.push_str("}\n\n");
        let _ = writeln!(
            o,
            "impl From<{raw}::Client> for {name} {{\n    fn from(raw: {raw}::Client) -> Self {{\n        Self::new(raw)\n    }}\n}}\n\n\
             impl From<{name}> for {raw}::Client {{\n    fn from(typed: {name}) -> Self {{\n        typed.raw\n    }}\n}}\n\n\
             impl std::ops::Deref for {name} {{\n    type Target = {raw}::Client;\n    fn deref(&self) -> &Self::Target {{\n        &self.raw\n    }}\n}}\n\n\
             impl rt::capnp::capability::FromClientHook for {name} {{\n    \
             fn new(hook: Box<dyn rt::capnp::private::capability::ClientHook>) -> Self {{\n        \
             Self::new({raw}::Client::new(hook))\n    }}\n    \
             fn into_client_hook(self) -> Box<dyn rt::capnp::private::capability::ClientHook> {{\n        \
             self.raw.client.hook\n    }}\n    \
             fn as_client_hook(&self) -> &dyn rt::capnp::private::capability::ClientHook {{\n        \
             &*self.raw.client.hook\n    }}\n}}\n"
        );
        if !sub.is_empty() {
            let _ = writeln!(
                o,
                "/// The calls and replies of [`{name}`]'s methods.\n#[allow(clippy::module_inception)]\npub mod {module} {{\n    #[allow(unused_imports)]\n    use super::*;\n{sub}}}\n"
            );
        }
        self.out.push_str(&o);
    }

    /// A compile-checked example of calling `m`, when every argument has a sample value
    /// or can be a parameter of the example function.
    fn example(&self, d: &Decl, fname: &str, params: &[&crate::model::Field]) -> Option<Example> {
        let root = self.paths.doc_root.as_ref()?;
        let var = snake(&d.name);
        let mut hidden = vec![format!("{var}: {root}::{}::{}", self.stem, d.plain)];
        let mut args = Vec::new();
        for p in params {
            if let Some(s) = self.sample(&p.ty) {
                args.push(s);
                continue;
            }
            let n = format!("{}_arg", snake(&p.name));
            let ty = match &p.ty {
                Ty::Struct(id) | Ty::Interface(id) if self.decl(*id).file == self.file => {
                    format!("{root}::{}::{}", self.stem, self.decl(*id).plain)
                }
                Ty::Struct(_) | Ty::Interface(_) | Ty::Enum(_) => self.owned(&p.ty),
                _ => return None,
            };
            if ty.starts_with("crate") {
                return None;
            }
            args.push(if matches!(p.ty, Ty::Enum(_)) { n.clone() } else { format!("&{n}") });
            hidden.push(format!("{n}: {ty}"));
        }
        Some(Example {
            signature: hidden.join(", "),
            call: format!("{var}.{fname}({})", args.join(", ")),
            types: format!("{root}::{}::{}", self.stem, module_name(&d.name)),
        })
    }

    /// The typed client's own methods (wrapping, options, casting), each with an
    /// example when the layer is reachable from doc tests.
    fn helpers(&self, d: &Decl) -> String {
        let raw = self.raw(d);
        let name = &d.plain;
        let var = snake(&d.name);
        let path = self.paths.doc_root.as_ref().map(|root| format!("{root}::{}::{name}", self.stem));
        let items: [(&str, &str, String); 8] = [
            (
                "Wraps a raw capnp client.",
                "let again = {path}::new({var}.raw().clone());\nassert_eq!(again.options(), {var}.options());",
                format!("pub fn new(raw: {raw}::Client) -> Self {{\n        {name} {{ raw, options: rt::CallOptions::default() }}\n    }}"),
            ),
            (
                "Serves `server` in this process and returns a typed client of it.",
                "let local = {path}::serve(server);\n# let _ = local;",
                format!("pub fn serve<S: {raw}::Server + 'static>(server: S) -> Self {{\n        Self::new(rt::capnp_rpc::new_client(server))\n    }}"),
            ),
            (
                "The raw capnp client, for anything this typed client does not cover.",
                "let raw: &{raw_doc}::Client = {var}.raw();\n# let _ = raw;",
                format!("pub fn raw(&self) -> &{raw}::Client {{\n        &self.raw\n    }}"),
            ),
            (
                "The raw capnp client, by value.",
                "let raw: {raw_doc}::Client = {var}.into_raw();\n# let _ = raw;",
                format!("pub fn into_raw(self) -> {raw}::Client {{\n        self.raw\n    }}"),
            ),
            (
                "The options its calls are made with.",
                "assert_eq!({var}.options().deadline, None);",
                "pub fn options(&self) -> rt::CallOptions {\n        self.options\n    }".to_string(),
            ),
            (
                "The same capability, making its calls (and those of capabilities it hands out)\nwith `options`.",
                "let options = rpc_client::CallOptions {{ deadline: Some(std::time::Duration::from_secs(2)) }};\nassert_eq!({var}.with_options(options).options(), options);",
                "pub fn with_options(mut self, options: rt::CallOptions) -> Self {\n        self.options = options;\n        self\n    }".to_string(),
            ),
            (
                "The same capability with a deadline on each call: a call still running after\n`deadline` fails with `TIMEOUT` and is cancelled on the server.",
                "let hurried = {var}.with_deadline(std::time::Duration::from_millis(100));\nassert_eq!(hurried.options().deadline, Some(std::time::Duration::from_millis(100)));",
                "pub fn with_deadline(self, deadline: std::time::Duration) -> Self {\n        let mut options = self.options;\n        options.deadline = Some(deadline);\n        self.with_options(options)\n    }".to_string(),
            ),
            (
                "The same capability as another interface (a class seen through a base it\nextends, or the reverse); calls the object does not implement fail.",
                "let same: {path} = {var}.cast();\n# let _ = same;",
                "pub fn cast<T: rt::capnp::capability::FromClientHook>(&self) -> T {\n        T::new(self.raw.client.hook.add_ref())\n    }".to_string(),
            ),
        ];
        let mut o = String::new();
        for (i, (doc, example, code)) in items.iter().enumerate() {
            if i > 0 {
                o.push('\n');
            }
            doc_lines(&mut o, "    ", doc);
            if let Some(path) = &path {
                let raw_doc = format!("::schema::{}", d.raw_path);
                let body = example.replace("{path}", path).replace("{var}", &var).replace("{raw_doc}", &raw_doc);
                let body = body.replace("{{", "{").replace("}}", "}");
                let signature = if body.contains("::serve(server)") {
                    format!("<S: {raw_doc}::Server + 'static>(server: S)")
                } else {
                    format!("({var}: {path})")
                };
                let _ = writeln!(o, "    ///\n    /// ```no_run\n    /// # fn example{signature} {{");
                for line in body.lines() {
                    let _ = writeln!(o, "    /// {line}");
                }
                o.push_str("    /// # }\n    /// ```\n");
            }
            let _ = writeln!(o, "    {code}");
        }
        o
    }

    fn method(&self, o: &mut String, sub: &mut String, d: &Decl, m: &Method) {
        let module = module_name(&d.name);
        let mut fname = ident(&m.name);
        if CLIENT_METHODS.contains(&fname.as_str()) {
            fname.push('_');
        }
        let base = pascal(&m.name);
        let params: Vec<&crate::model::Field> =
            self.model.fields(m.params).iter().filter(|f| !matches!(f.ty, Ty::Void)).collect();
        let results: Vec<&crate::model::Field> =
            self.model.fields(m.results).iter().filter(|f| !matches!(f.ty, Ty::Void)).collect();
        let _ = writeln!(o);
        match &m.doc {
            Some(doc) => doc_lines(o, "    ", doc),
            None => {
                let _ = writeln!(o, "    /// Calls `{}`.", m.name);
            }
        }
        let _ = writeln!(
            o,
            "    ///\n    /// Method @{} of `{}`; one round trip, or none more when pipelined.",
            m.ordinal, d.display
        );
        let example = self.example(d, &fname, &params);
        let reply_ty = if results.is_empty() { "()".to_string() } else { format!("{{types}}::{base}Reply") };
        let awaited = format!(
            "let call: {{types}}::{base}Call = {{call}};\nlet reply: {reply_ty} = call.await?;\n# let _ = reply;"
        );
        if let Some(e) = &example {
            o.push_str(&e.doc("    ", &awaited));
        }
        let call = Signature { module, base, fname, params, results, example, awaited };
        self.method_body(o, sub, d, m, &call);
    }

    fn method_body(&self, o: &mut String, sub: &mut String, d: &Decl, m: &Method, sig: &Signature<'_>) {
        let Signature { module, base, fname, params, results, example, awaited } = sig;
        let ex = |indent: &str, body: &str| example.as_ref().map(|e| e.doc(indent, body)).unwrap_or_default();
        let raw = self.raw(d);
        let snake_m = snake(&m.name);
        let results_owned = format!("{raw}::{}_results::Owned", module_name(&m.name));
        let caps: Vec<&&crate::model::Field> = results.iter().filter(|f| matches!(f.ty, Ty::Interface(_))).collect();
        let call_ty = format!("{module}::{base}Call");
        let args: Vec<String> = params.iter().map(|p| format!("{}: {}", ident(&p.name), self.arg(&p.ty))).collect();
        let lifetime = if params.iter().any(|p| matches!(p.ty, Ty::Interface(_))) { "<'a>" } else { "" };
        let _ = writeln!(o, "    pub fn {fname}{lifetime}(&self, {}) -> {call_ty} {{", args.join(", "));
        if params.is_empty() {
            let _ = writeln!(o, "        let request_ = self.raw.{snake_m}_request();");
        } else {
            let _ = writeln!(o, "        let mut request_ = self.raw.{snake_m}_request();\n        {{\n            let mut p_ = request_.get();");
            for p in params {
                let v = ident(&p.name);
                let line = match p.ty {
                    Ty::Interface(_) => {
                        format!("if let Some(cap) = {v}.into() {{ p_.set_{}(cap.raw().clone()); }}", snake(&p.name))
                    }
                    Ty::Text | Ty::Data => format!("p_.set_{}({v});", snake(&p.name)),
                    _ => self.write(&p.ty, "p_", &p.name, &v, 0),
                };
                let _ = writeln!(o, "            {line}");
            }
            o.push_str("        }\n");
        }
        if caps.is_empty() {
            let _ = writeln!(o, "        rt::Call::new(request_.send(), self.options)\n    }}");
        } else {
            let _ = writeln!(o, "        {call_ty}::new(rt::Call::new(request_.send(), self.options))\n    }}");
        }
        // A call whose only result is a capability stands for that capability (Deref),
        // so `object.storage().create(..)` reads as the call it makes.
        let only = match (caps.as_slice(), results.len()) {
            ([f], 1) => Some(**f),
            _ => None,
        };
        // The call and reply types.
        let who = format!("{}.{}", d.name, m.name);
        if caps.is_empty() {
            let _ = writeln!(
                sub,
                "\n    /// The call of `{who}` in flight: `.await` it for the reply.\n{example}    \
                 pub type {base}Call = rt::Call<{results_owned}, {reply_in}>;",
                reply_in = if results.is_empty() { "()".to_string() } else { format!("{base}Reply") },
                example = ex("    ", awaited)
            );
        } else {
            let (field, deref) = match only {
                Some(f) => {
                    let t = self.owned(&f.ty);
                    (
                        format!(", {t}"),
                        format!(
                            "\n\n    impl std::ops::Deref for {base}Call {{\n        type Target = {t};\n        \
                             /// The only result, `{}`, before it arrives: call it directly.\n        \
                             fn deref(&self) -> &{t} {{\n            &self.1\n        }}\n    }}",
                            f.name
                        ),
                    )
                }
                None => (String::new(), String::new()),
            };
            let _ = writeln!(
                sub,
                "\n    /// The call of `{who}` in flight: `.await` it for the reply, or call the\n    \
                 /// capabilities it returns before it arrives (pipelining).\n{example}    \
                 pub struct {base}Call(rt::Call<{results_owned}, {base}Reply>{field});\n\n    impl {base}Call {{",
                example = ex("    ", awaited)
            );
            let made = match only {
                Some(f) => {
                    let t = self.owned(&f.ty);
                    format!(
                        "let only = {t}::new(call.pipeline().get_{}()).with_options(call.options());\n            \
                         {base}Call(call, only)",
                        snake(&f.name)
                    )
                }
                None => format!("{base}Call(call)"),
            };
            let _ = writeln!(
                sub,
                "        /// Wraps a call in flight.\n{rewrap}        pub fn new(call: rt::Call<{results_owned}, {base}Reply>) -> Self {{\n            \
                 {made}\n        }}\n\n        \
                 /// The untyped call, for its raw pipeline or promise.\n{rewrap}        \
                 pub fn into_call(self) -> rt::Call<{results_owned}, {base}Reply> {{\n            self.0\n        }}",
                rewrap = ex(
                    "        ",
                    &format!("let untyped = {{call}}.into_call();\nlet again = {{types}}::{base}Call::new(untyped);\n# let _ = again;")
                )
            );
            for f in caps {
                let t = self.owned(&f.ty);
                // Through Deref the call also has the capability's methods; an accessor of
                // the same name would hide one of them (`object.schedule().schedule(..)`).
                if only.is_some() && self.has_method(&f.ty, &ident(&f.name)) {
                    continue;
                }
                let body = if only.is_some() {
                    "self.1.clone()".to_string()
                } else {
                    format!("{t}::new(self.0.pipeline().get_{}()).with_options(self.0.options())", snake(&f.name))
                };
                let accessor = ident(&f.name);
                let _ = writeln!(
                    sub,
                    "\n        /// `{}` of the reply, usable before the reply arrives.\n{example}        \
                     pub fn {accessor}(&self) -> {t} {{\n            {body}\n        }}",
                    f.name,
                    example =
                        ex("        ", &format!("let capability = {{call}}.{accessor}();\n# let _ = capability;")),
                );
            }
            let from = match only {
                Some(f) => {
                    let t = self.owned(&f.ty);
                    format!(
                        "\n\n    impl From<{base}Call> for {t} {{\n        \
                         /// The only result, `{}`, before it arrives.\n        \
                         fn from(call: {base}Call) -> {t} {{\n            call.1\n        }}\n    }}",
                        f.name
                    )
                }
                None => String::new(),
            };
            let _ = writeln!(
                sub,
                "    }}{deref}{from}\n\n    impl std::future::IntoFuture for {base}Call {{\n        \
                 type Output = Result<{base}Reply, rt::RpcError>;\n        \
                 type IntoFuture = rt::CallFuture<{results_owned}, {base}Reply>;\n        \
                 fn into_future(self) -> Self::IntoFuture {{\n            self.0.into_future()\n        }}\n    }}"
            );
        }
        if !results.is_empty() {
            let _ = writeln!(
                sub,
                "\n    /// What `{who}` returns.\n{example}    {}\n    pub struct {base}Reply {{",
                self.derives(results),
                example = ex("    ", awaited)
            );
            for f in results {
                match &f.doc {
                    Some(doc) => doc_lines(sub, "        ", doc),
                    None => {
                        let _ = writeln!(sub, "        /// `{}`.", f.name);
                    }
                }
                let _ = writeln!(sub, "        pub {}: {},", ident(&f.name), self.owned(&f.ty));
            }
            let _ = writeln!(
                sub,
                "    }}\n\n    impl rt::FromResults<{results_owned}> for {base}Reply {{\n        \
                 fn read(r: {results_reader}<'_>, options: &rt::CallOptions) -> Result<Self, rt::RpcError> {{\n            \
                 let _ = options;\n            Ok({base}Reply {{",
                results_reader = results_owned.replace("::Owned", "::Reader")
            );
            for f in results {
                let getter = format!("r.get_{}()", snake(&f.name));
                let wrapped = !matches!(f.ty, Ty::Prim(_));
                let _ = writeln!(sub, "                {}: {},", ident(&f.name), self.read(&f.ty, &getter, wrapped, 0));
            }
            sub.push_str("            })\n        }\n    }\n");
        }
    }
}

/// The typed layer of the requested file `file` (its id) as Rust source.
pub fn file(model: &Model, paths: &Paths, file: u64, file_name: &str) -> String {
    let stem = crate::model::file_module(file_name);
    let stem = stem.strip_suffix("_capnp").unwrap_or(&stem).to_string();
    let mut f = File { model, paths, file, stem, out: String::new() };
    let _ = writeln!(
        f.out,
        "// @generated by dotdo-codegen from {file_name}: the typed client layer over capnpc's\n\
         // `{}_capnp` module. DO NOT EDIT.\n\n#[allow(unused_imports)]\nuse {} as rt;\n",
        f.stem, paths.runtime
    );
    let mut decls: Vec<&Decl> = model.decls.values().filter(|d| d.file == file && !d.generic).collect();
    decls.sort_by(|a, b| a.display.cmp(&b.display));
    for d in decls {
        match &d.kind {
            Kind::Struct { implicit: false, .. } if model.supported(&Ty::Struct(d.id)) => f.plain_struct(d),
            Kind::Interface { methods, superclasses } => f.interface(d, methods, superclasses),
            _ => {}
        }
    }
    f.out
}
