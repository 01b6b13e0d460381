//! The part of a `CodeGeneratorRequest` the typed client layer needs, read into plain
//! values: every struct, enum and interface with its Rust paths, fields, methods and doc
//! comments, and the type of every field reduced to what the layer supports.

use crate::CodegenError;
use capnp::schema_capnp::{node, type_};
use std::collections::{BTreeMap, HashMap};

/// A field's type as the typed layer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ty {
    /// `Void`: carries nothing.
    Void,
    /// A number or `Bool`, with its Rust type (`u64`, `bool`, ...).
    Prim(&'static str),
    /// `Text`: `&str` in, `String` out.
    Text,
    /// `Data`: `&[u8]` in, `Vec<u8>` out.
    Data,
    /// An enum, by node id.
    Enum(u64),
    /// A struct, by node id.
    Struct(u64),
    /// An interface, by node id.
    Interface(u64),
    /// `List(T)`.
    List(Box<Ty>),
    /// Anything the layer does not wrap (`AnyPointer`, generics).
    Unsupported,
}

/// One field of a struct.
#[derive(Debug, Clone)]
pub struct Field {
    /// The name as written in the schema (camelCase).
    pub name: String,
    /// Its type.
    pub ty: Ty,
    /// Its doc comment, if the schema has one.
    pub doc: Option<String>,
}

/// One method of an interface.
#[derive(Debug, Clone)]
pub struct Method {
    /// The name as written in the schema.
    pub name: String,
    /// Its ordinal.
    pub ordinal: u16,
    /// The params struct's node id.
    pub params: u64,
    /// The results struct's node id.
    pub results: u64,
    /// Its doc comment.
    pub doc: Option<String>,
}

/// What kind of declaration a node is.
#[derive(Debug, Clone)]
pub enum Kind {
    /// A struct: its fields, and whether the layer can turn it into a plain Rust struct.
    Struct {
        /// The fields in code order.
        fields: Vec<Field>,
        /// Whether it has a union or groups (not wrapped).
        irregular: bool,
        /// Whether it is a method's implicit params or results struct.
        implicit: bool,
    },
    /// An enum.
    Enum,
    /// An interface with its methods and superclasses.
    Interface {
        /// The methods in ordinal order.
        methods: Vec<Method>,
        /// The ids of the interfaces it extends.
        superclasses: Vec<u64>,
    },
    /// Anything else (files, constants, annotations).
    Other,
}

/// One declaration of the schema.
#[derive(Debug, Clone)]
pub struct Decl {
    /// The node id.
    pub id: u64,
    /// The name as written (`Directory`).
    pub name: String,
    /// The display name (`demo.capnp:Directory`).
    pub display: String,
    /// The Rust path of capnpc's module for it, without the crate prefix
    /// (`demo_capnp::directory`).
    pub raw_path: String,
    /// The name of its plain Rust type in the typed layer (`Directory`, or `OuterInner`
    /// when nested).
    pub plain: String,
    /// The id of the file it is declared in.
    pub file: u64,
    /// Its doc comment.
    pub doc: Option<String>,
    /// Whether it has generic parameters (not wrapped).
    pub generic: bool,
    /// What it is.
    pub kind: Kind,
}

/// The id of the `$json` annotation (`annotation json` in `object.capnp`): the `Text` it
/// marks holds JSON, which the Cap'n Web gateway shows as the JSON value itself.
pub const JSON_ANNOTATION: u64 = 0x90bc_2b18_423f_2c79;

/// What one member of a struct holds: a value, or a group (a nested object).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberTy {
    /// A slot of this type.
    Slot(Ty),
    /// A group or a named union: the id of its (group) struct node.
    Group(u64),
}

/// One member of a struct as JSON sees it: every field, groups included, with its union
/// membership and whether it is marked `$json` ([`Model::members`]).
#[derive(Debug, Clone)]
pub struct Member {
    /// The name as written in the schema.
    pub name: String,
    /// What it holds.
    pub ty: MemberTy,
    /// Its doc comment.
    pub doc: Option<String>,
    /// Its discriminant value when it is a member of the struct's (or group's) union.
    pub discriminant: Option<u16>,
    /// Whether it carries the `$json` annotation ([`JSON_ANNOTATION`]).
    pub json: bool,
    /// Where it appears in the schema's text, relative to its siblings.
    pub code_order: u16,
}

/// One enumerant of an enum.
#[derive(Debug, Clone)]
pub struct Enumerant {
    /// The name as written in the schema.
    pub name: String,
    /// Its doc comment.
    pub doc: Option<String>,
}

/// Every declaration of a request, by id, and the requested files in order.
#[derive(Debug, Clone, Default)]
pub struct Model {
    /// Declarations by node id.
    pub decls: BTreeMap<u64, Decl>,
    /// The requested files: (id, file name as given to the compiler).
    pub files: Vec<(u64, String)>,
    /// Every member of every struct (groups and union members included, unlike
    /// [`Kind::Struct`]'s `fields`), by struct id, in the schema's field order.
    pub members: BTreeMap<u64, Vec<Member>>,
    /// The enumerants of every enum, by enum id, in ordinal order.
    pub enumerants: BTreeMap<u64, Vec<Enumerant>>,
    /// The files each requested file imports directly, by requested file id.
    pub imports: BTreeMap<u64, Vec<u64>>,
    /// The declarations nested in each node (a file, a struct, an interface...), in the
    /// order the compiler lists them.
    pub nested: BTreeMap<u64, Vec<u64>>,
}

fn text(t: capnp::Result<capnp::text::Reader<'_>>) -> Result<String, CodegenError> {
    t.map_err(fail)?.to_string().map_err(|e| CodegenError::Failed(e.to_string()))
}

fn fail(e: capnp::Error) -> CodegenError {
    CodegenError::Failed(e.to_string())
}

/// capnpc's rule for Rust module and accessor names: `camelCase` to `snake_case`.
pub fn snake(s: &str) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// capnpc's module name: snake case, with `_` after a Rust keyword.
pub fn module_name(s: &str) -> String {
    let mut name = snake(s);
    if crate::render::is_keyword(&name) {
        name.push('_');
    }
    name
}

/// The module capnpc generates for a schema file: `dir/my-file.capnp` -> `my_file_capnp`.
pub fn file_module(file_name: &str) -> String {
    let base = file_name.rsplit('/').next().unwrap_or(file_name);
    let stem = base.strip_suffix(".capnp").unwrap_or(base);
    format!("{}_capnp", stem.replace('-', "_"))
}

/// Whether a brand binds generic parameters (an unbranded use has no scopes).
fn branded(b: capnp::Result<capnp::schema_capnp::brand::Reader<'_>>) -> Result<bool, CodegenError> {
    Ok(!b.map_err(fail)?.get_scopes().map_err(fail)?.is_empty())
}

fn ty(t: type_::Reader<'_>) -> Result<Ty, CodegenError> {
    use type_::Which as W;
    Ok(match t.which().map_err(|e| CodegenError::Failed(e.to_string()))? {
        W::Void(()) => Ty::Void,
        W::Bool(()) => Ty::Prim("bool"),
        W::Int8(()) => Ty::Prim("i8"),
        W::Int16(()) => Ty::Prim("i16"),
        W::Int32(()) => Ty::Prim("i32"),
        W::Int64(()) => Ty::Prim("i64"),
        W::Uint8(()) => Ty::Prim("u8"),
        W::Uint16(()) => Ty::Prim("u16"),
        W::Uint32(()) => Ty::Prim("u32"),
        W::Uint64(()) => Ty::Prim("u64"),
        W::Float32(()) => Ty::Prim("f32"),
        W::Float64(()) => Ty::Prim("f64"),
        W::Text(()) => Ty::Text,
        W::Data(()) => Ty::Data,
        W::List(l) => Ty::List(Box::new(ty(l.get_element_type().map_err(fail)?)?)),
        W::Enum(e) => Ty::Enum(e.get_type_id()),
        W::Struct(s) if !branded(s.get_brand())? => Ty::Struct(s.get_type_id()),
        W::Interface(i) if !branded(i.get_brand())? => Ty::Interface(i.get_type_id()),
        _ => Ty::Unsupported,
    })
}

impl Model {
    /// Reads a `CodeGeneratorRequest` message.
    pub fn read(request: &[u8]) -> Result<Model, CodegenError> {
        let message =
            capnp::serialize::read_message(&mut &request[..], capnp::message::ReaderOptions::new()).map_err(fail)?;
        let req: capnp::schema_capnp::code_generator_request::Reader = message.get_root().map_err(fail)?;
        let mut docs: HashMap<u64, (Option<String>, Vec<Option<String>>)> = HashMap::new();
        for s in req.get_source_info().map_err(fail)? {
            let doc = |t| text(t).ok().filter(|d: &String| !d.trim().is_empty());
            let members = s.get_members().map_err(fail)?.iter().map(|m| doc(m.get_doc_comment())).collect();
            docs.insert(s.get_id(), (doc(s.get_doc_comment()), members));
        }
        let nodes = req.get_nodes().map_err(fail)?;
        let by_id: HashMap<u64, node::Reader<'_>> = nodes.iter().map(|n| (n.get_id(), n)).collect();
        let mut model = Model::default();
        for f in req.get_requested_files().map_err(fail)? {
            model.files.push((f.get_id(), text(f.get_filename())?));
            let imports = f
                .get_imports()
                .map_err(fail)?
                .iter()
                .map(capnp::schema_capnp::code_generator_request::requested_file::import::Reader::get_id)
                .collect();
            model.imports.insert(f.get_id(), imports);
        }
        for n in nodes.iter() {
            let id = n.get_id();
            let display = text(n.get_display_name())?;
            let name = display[n.get_display_name_prefix_length() as usize..].to_string();
            let (doc, member_docs) = docs.remove(&id).unwrap_or_default();
            let member_doc = |i: usize| member_docs.get(i).cloned().flatten();
            let nested: Vec<u64> =
                n.get_nested_nodes().map_err(fail)?.iter().map(node::nested_node::Reader::get_id).collect();
            if !nested.is_empty() {
                model.nested.insert(id, nested);
            }
            let kind = match n.which().map_err(|e| CodegenError::Failed(e.to_string()))? {
                node::Struct(s) => {
                    let mut fields = Vec::new();
                    let mut members = Vec::new();
                    let mut irregular = s.get_is_group() || s.get_discriminant_count() > 0;
                    for (i, f) in s.get_fields().map_err(fail)?.iter().enumerate() {
                        let d = f.get_discriminant_value();
                        members.push(Member {
                            name: text(f.get_name())?,
                            ty: match f.which().map_err(|e| CodegenError::Failed(e.to_string()))? {
                                capnp::schema_capnp::field::Slot(slot) => {
                                    MemberTy::Slot(ty(slot.get_type().map_err(fail)?)?)
                                }
                                capnp::schema_capnp::field::Group(g) => MemberTy::Group(g.get_type_id()),
                            },
                            doc: member_doc(i),
                            discriminant: (d != capnp::schema_capnp::field::NO_DISCRIMINANT).then_some(d),
                            json: f.get_annotations().map_err(fail)?.iter().any(|a| a.get_id() == JSON_ANNOTATION),
                            code_order: f.get_code_order(),
                        });
                        match f.which().map_err(|e| CodegenError::Failed(e.to_string()))? {
                            capnp::schema_capnp::field::Slot(slot) => fields.push(Field {
                                name: text(f.get_name())?,
                                ty: ty(slot.get_type().map_err(fail)?)?,
                                doc: member_doc(i),
                            }),
                            capnp::schema_capnp::field::Group(_) => irregular = true,
                        }
                    }
                    model.members.insert(id, members);
                    Kind::Struct { fields, irregular, implicit: n.get_scope_id() == 0 }
                }
                node::Enum(e) => {
                    let mut enumerants = Vec::new();
                    for (i, x) in e.get_enumerants().map_err(fail)?.iter().enumerate() {
                        enumerants.push(Enumerant { name: text(x.get_name())?, doc: member_doc(i) });
                    }
                    model.enumerants.insert(id, enumerants);
                    Kind::Enum
                }
                node::Interface(iface) => {
                    let mut methods = Vec::new();
                    for (i, m) in iface.get_methods().map_err(fail)?.iter().enumerate() {
                        let generic = branded(m.get_param_brand())?
                            || branded(m.get_result_brand())?
                            || !m.get_implicit_parameters().map_err(fail)?.is_empty();
                        if generic {
                            continue;
                        }
                        methods.push(Method {
                            name: text(m.get_name())?,
                            ordinal: u16::try_from(i).map_err(|e| CodegenError::Failed(e.to_string()))?,
                            params: m.get_param_struct_type(),
                            results: m.get_result_struct_type(),
                            doc: member_doc(i),
                        });
                    }
                    let superclasses = iface
                        .get_superclasses()
                        .map_err(fail)?
                        .iter()
                        .map(capnp::schema_capnp::superclass::Reader::get_id)
                        .collect::<Vec<_>>();
                    Kind::Interface { methods, superclasses }
                }
                _ => Kind::Other,
            };
            model.decls.insert(
                id,
                Decl {
                    id,
                    name,
                    display,
                    raw_path: String::new(),
                    plain: String::new(),
                    file: 0,
                    doc,
                    generic: n.get_is_generic(),
                    kind,
                },
            );
        }
        // Paths follow the scope chain up to the file, as capnpc names its modules.
        let ids: Vec<u64> = model.decls.keys().copied().collect();
        for id in ids {
            let mut chain = Vec::new();
            let mut cur = by_id.get(&id).copied();
            let mut file = 0;
            while let Some(n) = cur {
                if let Ok(node::File(())) = n.which() {
                    file = n.get_id();
                    break;
                }
                chain.push(n.get_id());
                cur = by_id.get(&n.get_scope_id()).copied();
            }
            chain.reverse();
            let file_mod = model.files.iter().find(|(f, _)| *f == file).map(|(_, name)| file_module(name));
            let file_mod = match file_mod {
                Some(m) => m,
                None => by_id
                    .get(&file)
                    .and_then(|n| n.get_display_name().ok())
                    .and_then(|t| t.to_str().ok())
                    .map_or_else(|| "unknown_capnp".to_string(), file_module),
            };
            let names: Vec<String> = chain.iter().filter_map(|c| model.decls.get(c)).map(|d| d.name.clone()).collect();
            let mut raw_path = file_mod;
            for n in &names {
                raw_path.push_str("::");
                raw_path.push_str(&module_name(n));
            }
            let plain = names.concat();
            if let Some(d) = model.decls.get_mut(&id) {
                d.raw_path = raw_path;
                d.plain = plain;
                d.file = file;
            }
        }
        Ok(model)
    }

    /// The declaration with this id.
    pub fn decl(&self, id: u64) -> Option<&Decl> {
        self.decls.get(&id)
    }

    /// Whether the typed layer can carry a value of type `t` (both ways).
    pub fn supported(&self, t: &Ty) -> bool {
        self.supported_in(t, &mut Vec::new())
    }

    fn supported_in(&self, t: &Ty, visiting: &mut Vec<u64>) -> bool {
        match t {
            Ty::Unsupported => false,
            Ty::List(inner) => !matches!(**inner, Ty::Void) && self.supported_in(inner, visiting),
            Ty::Enum(id) => self.decl(*id).is_some_and(|d| !d.generic),
            Ty::Interface(id) => self.decl(*id).is_some_and(|d| !d.generic),
            Ty::Struct(id) => {
                if visiting.contains(id) {
                    return true;
                }
                let Some(d) = self.decl(*id) else { return false };
                let Kind::Struct { fields, irregular, .. } = &d.kind else { return false };
                if d.generic || *irregular {
                    return false;
                }
                visiting.push(*id);
                let ok = fields.iter().all(|f| self.supported_in(&f.ty, visiting));
                visiting.pop();
                ok
            }
            Ty::Void | Ty::Prim(_) | Ty::Text | Ty::Data => true,
        }
    }

    /// Whether a value of type `t` holds a capability somewhere (such values have no
    /// `Debug`, `PartialEq` or `Default`).
    pub fn holds_caps(&self, t: &Ty) -> bool {
        self.holds_in(t, &mut Vec::new(), &|t| matches!(t, Ty::Interface(_)))
    }

    /// Whether a value of type `t` holds an enum somewhere (no `Default` then).
    pub fn holds_enum(&self, t: &Ty) -> bool {
        self.holds_in(t, &mut Vec::new(), &|t| matches!(t, Ty::Enum(_)))
    }

    fn holds_in(&self, t: &Ty, visiting: &mut Vec<u64>, hit: &dyn Fn(&Ty) -> bool) -> bool {
        if hit(t) {
            return true;
        }
        match t {
            Ty::List(inner) => self.holds_in(inner, visiting, hit),
            Ty::Struct(id) if !visiting.contains(id) => {
                let Some(Decl { kind: Kind::Struct { fields, .. }, .. }) = self.decl(*id) else { return false };
                visiting.push(*id);
                let r = fields.iter().any(|f| self.holds_in(&f.ty, visiting, hit));
                visiting.pop();
                r
            }
            _ => false,
        }
    }

    /// The fields of the struct `id` (empty when it is not a struct).
    pub fn fields(&self, id: u64) -> &[Field] {
        match self.decl(id).map(|d| &d.kind) {
            Some(Kind::Struct { fields, .. }) => fields,
            _ => &[],
        }
    }
}
