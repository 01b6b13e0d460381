//! The bridge between Cap'n Web values and Cap'n Proto structs, driven by the schema
//! compiled into the program (each interface's methods and their params and results
//! types, `schema::interface`), with no code per interface.
//!
//! The rules:
//! - Arguments map positionally onto the params fields in code order; or one object
//!   argument names them, when the method has two or more params.
//! - Results: none is `undefined`, one field is that field's value, more an object.
//! - Bool, numbers and Text are themselves (64-bit integers outside ±2^53 are
//!   `bigint`s); Text marked `$json` is the JSON value it holds; Data is bytes; an
//!   enum is its enumerant's name; a list is an array; a struct is an object (a union
//!   shows its one set member; a group is a nested object); an interface is a stub.

use super::value::{mismatch, Cap, Value};
use crate::{Code, RpcError};
use capnp::introspect::{Type, TypeVariant};
use capnp::private::layout::{
    ElementSize, ListBuilder, ListReader, PointerBuilder, PointerReader, PrimitiveElement, StructBuilder, StructReader,
    StructSize,
};
use capnp::schema::{EnumSchema, Field, StructSchema};
use capnp::schema_capnp::{field, node, type_, value};
use schema::{InterfaceDesc, MethodDesc};

/// The `$json` annotation's id (`object.capnp`).
pub const JSON_ANNOTATION: u64 = 0x90bc_2b18_423f_2c79;

fn err(e: capnp::Error) -> RpcError {
    RpcError::from(e)
}

/// A field's type as the bridge sees it.
#[derive(Clone)]
enum Kind {
    Void,
    Bool,
    I8,
    I16,
    I32,
    I64,
    U8,
    U16,
    U32,
    U64,
    F32,
    F64,
    Text { json: bool },
    Data,
    Enum(EnumSchema),
    Struct(StructSchema),
    List(Box<Kind>),
    Interface(u64),
    Other,
}

fn kind(ty: Type, proto: Option<type_::Reader<'_>>, json: bool) -> Kind {
    match ty.which() {
        TypeVariant::Void => Kind::Void,
        TypeVariant::Bool => Kind::Bool,
        TypeVariant::Int8 => Kind::I8,
        TypeVariant::Int16 => Kind::I16,
        TypeVariant::Int32 => Kind::I32,
        TypeVariant::Int64 => Kind::I64,
        TypeVariant::UInt8 => Kind::U8,
        TypeVariant::UInt16 => Kind::U16,
        TypeVariant::UInt32 => Kind::U32,
        TypeVariant::UInt64 => Kind::U64,
        TypeVariant::Float32 => Kind::F32,
        TypeVariant::Float64 => Kind::F64,
        TypeVariant::Text => Kind::Text { json },
        TypeVariant::Data => Kind::Data,
        TypeVariant::Enum(e) => Kind::Enum(EnumSchema::new(e)),
        TypeVariant::Struct(s) => Kind::Struct(StructSchema::new(s)),
        TypeVariant::List(element) => {
            let inner = proto.and_then(|p| match p.which() {
                Ok(type_::List(l)) => l.get_element_type().ok(),
                _ => None,
            });
            Kind::List(Box::new(kind(element, inner, json)))
        }
        TypeVariant::Capability => match proto.map(type_::Reader::which) {
            Some(Ok(type_::Interface(i))) => Kind::Interface(i.get_type_id()),
            _ => Kind::Other,
        },
        TypeVariant::AnyPointer => Kind::Other,
    }
}

fn is_json(f: &Field) -> bool {
    f.get_proto().get_annotations().is_ok_and(|a| a.iter().any(|a| a.get_id() == JSON_ANNOTATION))
}

/// One field with its layout.
struct Slot {
    name: String,
    discriminant: Option<u16>,
    place: Place,
}

enum Place {
    Data { offset: u32, kind: Kind, default: Option<value::Reader<'static>> },
    Group(StructSchema),
}

/// A struct's layout and fields, read from its schema node once per thread.
struct Shape {
    layout: Layout,
    slots: Vec<Slot>,
    /// The names of the fields outside any union, in code order.
    plain: Vec<String>,
}

thread_local! {
    static SHAPES: std::cell::RefCell<std::collections::HashMap<u64, std::rc::Rc<Shape>>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

fn shape(schema: StructSchema) -> Result<std::rc::Rc<Shape>, RpcError> {
    let id = schema.get_proto().get_id();
    if let Some(s) = SHAPES.with(|m| m.borrow().get(&id).cloned()) {
        return Ok(s);
    }
    let slots = slots(schema)?;
    let plain = slots.iter().filter(|s| s.discriminant.is_none()).map(|s| s.name.clone()).collect();
    let s = std::rc::Rc::new(Shape { layout: layout(schema)?, slots, plain });
    SHAPES.with(|m| m.borrow_mut().insert(id, s.clone()));
    Ok(s)
}

fn slots(schema: StructSchema) -> Result<Vec<Slot>, RpcError> {
    let mut out = Vec::new();
    for f in schema.get_fields().map_err(err)? {
        let proto: field::Reader<'static> = f.get_proto();
        let name = proto.get_name().map_err(err)?.to_string().map_err(|e| err(e.into()))?;
        let d = proto.get_discriminant_value();
        let discriminant = (d != field::NO_DISCRIMINANT).then_some(d);
        let place = match proto.which().map_err(|e| err(e.into()))? {
            field::Slot(slot) => Place::Data {
                offset: slot.get_offset(),
                kind: kind(f.get_type(), slot.get_type().ok(), is_json(&f)),
                default: slot.get_had_explicit_default().then(|| slot.get_default_value().ok()).flatten(),
            },
            field::Group(_) => match f.get_type().which() {
                TypeVariant::Struct(s) => Place::Group(StructSchema::new(s)),
                _ => return Err(RpcError::new(Code::Internal, "a group without a struct type")),
            },
        };
        out.push(Slot { name, discriminant, place });
    }
    Ok(out)
}

struct Layout {
    size: StructSize,
    discriminant: Option<u32>,
}

fn layout(schema: StructSchema) -> Result<Layout, RpcError> {
    match schema.get_proto().which().map_err(|e| err(e.into()))? {
        node::Struct(s) => Ok(Layout {
            size: StructSize { data: s.get_data_word_count(), pointers: s.get_pointer_count() },
            discriminant: (s.get_discriminant_count() > 0).then_some(s.get_discriminant_offset()),
        }),
        _ => Err(RpcError::new(Code::Internal, "not a struct schema")),
    }
}

/// The struct schema of a method's params or results type.
pub fn struct_schema(ty: Type) -> Result<StructSchema, RpcError> {
    match ty.which() {
        TypeVariant::Struct(s) => Ok(StructSchema::new(s)),
        _ => Err(RpcError::new(Code::Internal, "a method's params or results are not a struct")),
    }
}

// ---- reading ----

/// A pointer of a message, as the layout code reads it.
pub struct RawReader<'a>(pub PointerReader<'a>);

impl<'a> capnp::traits::FromPointerReader<'a> for RawReader<'a> {
    fn get_from_pointer(reader: &PointerReader<'a>, _default: Option<&'a [capnp::Word]>) -> capnp::Result<Self> {
        Ok(RawReader(*reader))
    }
}

/// A pointer of a message being built.
pub struct RawBuilder<'a>(pub PointerBuilder<'a>);

impl<'a> capnp::traits::FromPointerBuilder<'a> for RawBuilder<'a> {
    fn init_pointer(builder: PointerBuilder<'a>, _length: u32) -> Self {
        RawBuilder(builder)
    }
    fn get_from_pointer(builder: PointerBuilder<'a>, _default: Option<&'a [capnp::Word]>) -> capnp::Result<Self> {
        Ok(RawBuilder(builder))
    }
}

/// Any struct, for lists of structs whose type is known only from the schema: the
/// layout code's element readers are reached through `struct_list` with it.
pub struct RawStruct;

impl capnp::introspect::Introspect for RawStruct {
    fn introspect() -> Type {
        TypeVariant::AnyPointer.into()
    }
}

/// A [`RawStruct`] being read.
pub struct RawStructReader<'a>(StructReader<'a>);

/// A [`RawStruct`] being built.
pub struct RawStructBuilder<'a>(StructBuilder<'a>);

impl<'a> From<StructReader<'a>> for RawStructReader<'a> {
    fn from(r: StructReader<'a>) -> Self {
        RawStructReader(r)
    }
}

impl<'a> From<StructBuilder<'a>> for RawStructBuilder<'a> {
    fn from(b: StructBuilder<'a>) -> Self {
        RawStructBuilder(b)
    }
}

impl<'a> capnp::traits::IntoInternalStructReader<'a> for RawStructReader<'a> {
    fn into_internal_struct_reader(self) -> StructReader<'a> {
        self.0
    }
}

impl capnp::traits::SetterInput<RawStruct> for RawStructReader<'_> {
    fn set_pointer_builder(mut builder: PointerBuilder<'_>, input: Self, canonicalize: bool) -> capnp::Result<()> {
        builder.set_struct(&input.0, canonicalize)
    }
}

impl capnp::traits::HasStructSize for RawStructBuilder<'_> {
    // The list is made with its real size first; this only reads it back.
    const STRUCT_SIZE: StructSize = StructSize { data: 0, pointers: 0 };
}

impl capnp::traits::OwnedStruct for RawStruct {
    type Reader<'a> = RawStructReader<'a>;
    type Builder<'a> = RawStructBuilder<'a>;
}

/// Reads a struct as an object.
pub fn read_struct(r: StructReader<'_>, schema: StructSchema) -> Result<Value, RpcError> {
    let shape = shape(schema)?;
    let which = shape.layout.discriminant.map(|o| r.get_data_field::<u16>(o as usize));
    let mut out = Vec::with_capacity(shape.slots.len());
    for s in &shape.slots {
        if s.discriminant.is_some() && s.discriminant != which {
            continue;
        }
        let v = match &s.place {
            Place::Group(g) => read_struct(r, *g)?,
            Place::Data { offset, kind, default } => read_slot(r, *offset, kind, *default)?,
        };
        out.push((s.name.clone(), v));
    }
    Ok(Value::Object(out))
}

fn int(n: i64) -> Value {
    if n.unsigned_abs() < (1 << 53) {
        Value::Number(n.into())
    } else {
        Value::BigInt(n.to_string())
    }
}

fn uint(n: u64) -> Value {
    if n < (1 << 53) {
        Value::Number(n.into())
    } else {
        Value::BigInt(n.to_string())
    }
}

fn float(f: f64) -> Value {
    serde_json::Number::from_f64(f).map_or(Value::Float(f), Value::Number)
}

fn enumerant(e: EnumSchema, n: u16) -> Result<Value, RpcError> {
    for x in e.get_enumerants().map_err(err)? {
        if x.get_ordinal() == n {
            let name = x.get_proto().get_name().map_err(err)?.to_string().map_err(|e| err(e.into()))?;
            return Ok(Value::String(name));
        }
    }
    Ok(Value::Number(n.into()))
}

/// The identity, as the mask of a field whose default is stored as is.
fn same<T>(v: T) -> T {
    v
}

macro_rules! masked {
    ($r:expr, $off:expr, $t:ty, $default:expr, $variant:ident, $mask:expr) => {{
        let mask = match $default.map(|d| d.which()) {
            Some(Ok(value::$variant(v))) => $mask(v),
            _ => Default::default(),
        };
        $r.get_data_field_mask::<$t>($off, mask)
    }};
}

fn read_slot(
    r: StructReader<'_>,
    offset: u32,
    k: &Kind,
    default: Option<value::Reader<'_>>,
) -> Result<Value, RpcError> {
    let o = offset as usize;
    Ok(match k {
        Kind::Void | Kind::Other => Value::Null,
        Kind::Bool => {
            let mask = matches!(default.map(value::Reader::which), Some(Ok(value::Bool(true))));
            Value::Bool(r.get_bool_field_mask(o, mask))
        }
        Kind::I8 => int(masked!(r, o, i8, default, Int8, same).into()),
        Kind::I16 => int(masked!(r, o, i16, default, Int16, same).into()),
        Kind::I32 => int(masked!(r, o, i32, default, Int32, same).into()),
        Kind::I64 => int(masked!(r, o, i64, default, Int64, same)),
        Kind::U8 => uint(masked!(r, o, u8, default, Uint8, same).into()),
        Kind::U16 => uint(masked!(r, o, u16, default, Uint16, same).into()),
        Kind::U32 => uint(masked!(r, o, u32, default, Uint32, same).into()),
        Kind::U64 => uint(masked!(r, o, u64, default, Uint64, same)),
        Kind::F32 => float(masked!(r, o, f32, default, Float32, f32::to_bits).into()),
        Kind::F64 => float(masked!(r, o, f64, default, Float64, f64::to_bits)),
        Kind::Enum(e) => enumerant(*e, masked!(r, o, u16, default, Enum, same))?,
        _ => read_pointer(r.get_pointer_field(o), k)?,
    })
}

fn read_pointer(p: PointerReader<'_>, k: &Kind) -> Result<Value, RpcError> {
    Ok(match k {
        Kind::Text { json } => {
            let t = p.get_text(None).map_err(err)?;
            let s = t.to_str().map_err(|e| err(e.into()))?;
            match (json, s.is_empty()) {
                (true, true) => Value::Null,
                (true, false) => {
                    serde_json::from_str(s).map(Value::from_json).unwrap_or_else(|_| Value::String(s.into()))
                }
                (false, _) => Value::String(s.to_string()),
            }
        }
        Kind::Data => Value::Bytes(p.get_data(None).map_err(err)?.to_vec()),
        Kind::Struct(s) => read_struct(p.get_struct(None).map_err(err)?, *s)?,
        Kind::List(e) => read_list(p, e)?,
        Kind::Interface(id) => {
            if p.is_null() {
                Value::Null
            } else {
                Value::Cap(Cap {
                    client: capnp::capability::Client::new(p.get_capability().map_err(err)?),
                    interface: *id,
                })
            }
        }
        _ => Value::Null,
    })
}

fn element_size(k: &Kind) -> ElementSize {
    match k {
        Kind::Void => ElementSize::Void,
        Kind::Bool => ElementSize::Bit,
        Kind::I8 | Kind::U8 => ElementSize::Byte,
        Kind::I16 | Kind::U16 | Kind::Enum(_) => ElementSize::TwoBytes,
        Kind::I32 | Kind::U32 | Kind::F32 => ElementSize::FourBytes,
        Kind::I64 | Kind::U64 | Kind::F64 => ElementSize::EightBytes,
        Kind::Struct(_) => ElementSize::InlineComposite,
        _ => ElementSize::Pointer,
    }
}

fn read_list(p: PointerReader<'_>, e: &Kind) -> Result<Value, RpcError> {
    if p.is_null() {
        return Ok(Value::Array(Vec::new()));
    }
    if let Kind::Struct(s) = e {
        let l: capnp::struct_list::Reader<'_, RawStruct> =
            capnp::traits::FromPointerReader::get_from_pointer(&p, None).map_err(err)?;
        return Ok(Value::Array(l.iter().map(|r| read_struct(r.0, *s)).collect::<Result<_, _>>()?));
    }
    if matches!(element_size(e), ElementSize::Pointer) {
        let l: capnp::any_pointer_list::Reader<'_> =
            capnp::traits::FromPointerReader::get_from_pointer(&p, None).map_err(err)?;
        let mut out = Vec::with_capacity(l.len() as usize);
        for i in 0..l.len() {
            let RawReader(inner) = l.get(i).get_as::<RawReader>().map_err(err)?;
            out.push(read_pointer(inner, e)?);
        }
        return Ok(Value::Array(out));
    }
    let l: ListReader<'_> = p.get_list(element_size(e), None).map_err(err)?;
    let n = l.len();
    let mut out = Vec::with_capacity(n as usize);
    for i in 0..n {
        out.push(match e {
            Kind::Void | Kind::Other => Value::Null,
            Kind::Bool => Value::Bool(bool::get(&l, i)),
            Kind::I8 => int(i8::get(&l, i).into()),
            Kind::I16 => int(i16::get(&l, i).into()),
            Kind::I32 => int(i32::get(&l, i).into()),
            Kind::I64 => int(i64::get(&l, i)),
            Kind::U8 => uint(u8::get(&l, i).into()),
            Kind::U16 => uint(u16::get(&l, i).into()),
            Kind::U32 => uint(u32::get(&l, i).into()),
            Kind::U64 => uint(u64::get(&l, i)),
            Kind::F32 => float(f32::get(&l, i).into()),
            Kind::F64 => float(f64::get(&l, i)),
            Kind::Enum(s) => enumerant(*s, u16::get(&l, i))?,
            _ => Value::Null,
        });
    }
    Ok(Value::Array(out))
}

// ---- writing ----

/// Writes an object into a struct.
pub fn write_struct(mut b: StructBuilder<'_>, schema: StructSchema, v: &Value, what: &str) -> Result<(), RpcError> {
    let Value::Object(fields) = v else {
        return Err(mismatch(what, "an object", v));
    };
    let shape = shape(schema)?;
    let (lay, slots) = (&shape.layout, &shape.slots);
    for (name, value) in fields {
        if matches!(value, Value::Undefined) {
            continue;
        }
        let Some(s) = slots.iter().find(|s| &s.name == name) else {
            let known: Vec<&str> = slots.iter().map(|s| s.name.as_str()).collect();
            return Err(RpcError::invalid_argument(format!(
                "{what}: no field `{name}` (fields: {})",
                known.join(", ")
            )));
        };
        if let (Some(d), Some(o)) = (s.discriminant, lay.discriminant) {
            b.set_data_field::<u16>(o as usize, d);
        }
        let what = format!("{what}.{name}");
        match &s.place {
            Place::Group(g) => write_struct(b.reborrow(), *g, value, &what)?,
            Place::Data { offset, kind, default } => write_slot(b.reborrow(), *offset, kind, *default, value, &what)?,
        }
    }
    Ok(())
}

fn as_f64(v: &Value, what: &str) -> Result<f64, RpcError> {
    match v {
        Value::Number(n) => n.as_f64().ok_or_else(|| mismatch(what, "a number", v)),
        Value::Float(f) => Ok(*f),
        Value::BigInt(s) => s.parse().map_err(|_| mismatch(what, "a number", v)),
        Value::Null => Ok(0.0),
        _ => Err(mismatch(what, "a number", v)),
    }
}

fn as_i128(v: &Value, what: &str) -> Result<i128, RpcError> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 1.8e19).map(|f| f as i128))
            .ok_or_else(|| mismatch(what, "an integer", v)),
        Value::BigInt(s) => s.parse().map_err(|_| mismatch(what, "an integer", v)),
        Value::Null => Ok(0),
        _ => Err(mismatch(what, "an integer", v)),
    }
}

fn ranged<T: TryFrom<i128>>(v: &Value, what: &str) -> Result<T, RpcError> {
    let n = as_i128(v, what)?;
    T::try_from(n).map_err(|_| {
        RpcError::invalid_argument(format!("{what}: {n} is out of range for a {}", std::any::type_name::<T>()))
    })
}

fn enum_value(e: EnumSchema, v: &Value, what: &str) -> Result<u16, RpcError> {
    match v {
        Value::String(name) => {
            let mut names = Vec::new();
            for x in e.get_enumerants().map_err(err)? {
                let n = x.get_proto().get_name().map_err(err)?.to_str().map_err(|e| err(e.into()))?;
                if n == name {
                    return Ok(x.get_ordinal());
                }
                names.push(n);
            }
            Err(RpcError::invalid_argument(format!("{what}: `{name}` is not one of {}", names.join(", "))))
        }
        _ => ranged(v, what),
    }
}

macro_rules! set_masked {
    ($b:expr, $off:expr, $t:ty, $val:expr, $default:expr, $variant:ident, $mask:expr) => {{
        let mask = match $default.map(|d| d.which()) {
            Some(Ok(value::$variant(v))) => $mask(v),
            _ => Default::default(),
        };
        $b.set_data_field_mask::<$t>($off, $val, mask);
    }};
}

fn write_slot(
    b: StructBuilder<'_>,
    offset: u32,
    k: &Kind,
    default: Option<value::Reader<'_>>,
    v: &Value,
    what: &str,
) -> Result<(), RpcError> {
    let o = offset as usize;
    match k {
        Kind::Void | Kind::Other => {}
        Kind::Bool => {
            let Value::Bool(x) = v else { return Err(mismatch(what, "a boolean", v)) };
            let mask = matches!(default.map(value::Reader::which), Some(Ok(value::Bool(true))));
            b.set_bool_field_mask(o, *x, mask);
        }
        Kind::I8 => set_masked!(b, o, i8, ranged(v, what)?, default, Int8, same),
        Kind::I16 => set_masked!(b, o, i16, ranged(v, what)?, default, Int16, same),
        Kind::I32 => set_masked!(b, o, i32, ranged(v, what)?, default, Int32, same),
        Kind::I64 => set_masked!(b, o, i64, ranged(v, what)?, default, Int64, same),
        Kind::U8 => set_masked!(b, o, u8, ranged(v, what)?, default, Uint8, same),
        Kind::U16 => set_masked!(b, o, u16, ranged(v, what)?, default, Uint16, same),
        Kind::U32 => set_masked!(b, o, u32, ranged(v, what)?, default, Uint32, same),
        Kind::U64 => set_masked!(b, o, u64, ranged(v, what)?, default, Uint64, same),
        Kind::F32 => set_masked!(b, o, f32, as_f64(v, what)? as f32, default, Float32, f32::to_bits),
        Kind::F64 => set_masked!(b, o, f64, as_f64(v, what)?, default, Float64, f64::to_bits),
        Kind::Enum(e) => set_masked!(b, o, u16, enum_value(*e, v, what)?, default, Enum, same),
        _ => write_pointer(b.get_pointer_field(o), k, v, what)?,
    }
    Ok(())
}

fn text_of(k: &Kind, v: &Value, what: &str) -> Result<String, RpcError> {
    match (k, v) {
        (_, Value::Null | Value::Undefined) => Ok(String::new()),
        // A `$json` field takes any JSON value; a string is taken as JSON text already.
        (Kind::Text { json: true }, Value::String(s)) => Ok(s.clone()),
        (Kind::Text { json: true }, v) => Ok(v.to_json()?.to_string()),
        (_, Value::String(s)) => Ok(s.clone()),
        (_, v) => Err(mismatch(what, "a string", v)),
    }
}

fn write_pointer(mut p: PointerBuilder<'_>, k: &Kind, v: &Value, what: &str) -> Result<(), RpcError> {
    match k {
        Kind::Text { .. } => p.set_text(text_of(k, v, what)?.as_str().into()),
        Kind::Data => match v {
            Value::Bytes(b) => p.set_data(b),
            Value::Null | Value::Undefined => {}
            _ => return Err(mismatch(what, "bytes (a Uint8Array)", v)),
        },
        Kind::Struct(s) => match v {
            Value::Null | Value::Undefined => {}
            _ => write_struct(p.init_struct(shape(*s)?.layout.size), *s, v, what)?,
        },
        Kind::List(e) => match v {
            Value::Array(items) => write_list(p, e, items, what)?,
            Value::Null | Value::Undefined => {}
            _ => return Err(mismatch(what, "an array", v)),
        },
        Kind::Interface(_) => match v {
            Value::Cap(c) => p.set_capability(c.client.hook.add_ref()),
            Value::Null | Value::Undefined => {}
            _ => return Err(mismatch(what, "a stub (an RpcTarget)", v)),
        },
        _ => {}
    }
    Ok(())
}

fn write_list(mut p: PointerBuilder<'_>, e: &Kind, items: &[Value], what: &str) -> Result<(), RpcError> {
    use capnp::traits::FromPointerBuilder;
    let n = u32::try_from(items.len()).map_err(|_| RpcError::new(Code::LimitExceeded, format!("{what}: too long")))?;
    if let Kind::Struct(s) = e {
        p.reborrow().init_struct_list(n, shape(*s)?.layout.size);
        let mut l: capnp::struct_list::Builder<'_, RawStruct> =
            FromPointerBuilder::get_from_pointer(p, None).map_err(err)?;
        for (i, item) in (0..n).zip(items) {
            write_struct(l.reborrow().get(i).0, *s, item, &format!("{what}[{i}]"))?;
        }
        return Ok(());
    }
    if matches!(element_size(e), ElementSize::Pointer) {
        p.reborrow().init_list(ElementSize::Pointer, n);
        let mut l: capnp::any_pointer_list::Builder<'_> = FromPointerBuilder::get_from_pointer(p, None).map_err(err)?;
        for (i, item) in (0..n).zip(items) {
            let RawBuilder(inner) = l.reborrow().get(i).init_as::<RawBuilder>();
            write_pointer(inner, e, item, &format!("{what}[{i}]"))?;
        }
        return Ok(());
    }
    let l: ListBuilder<'_> = p.init_list(element_size(e), n);
    for (i, item) in (0..n).zip(items) {
        let what = format!("{what}[{i}]");
        match e {
            Kind::Void | Kind::Other => {}
            Kind::Bool => match item {
                Value::Bool(x) => bool::set(&l, i, *x),
                _ => return Err(mismatch(&what, "a boolean", item)),
            },
            Kind::I8 => i8::set(&l, i, ranged(item, &what)?),
            Kind::I16 => i16::set(&l, i, ranged(item, &what)?),
            Kind::I32 => i32::set(&l, i, ranged(item, &what)?),
            Kind::I64 => i64::set(&l, i, ranged(item, &what)?),
            Kind::U8 => u8::set(&l, i, ranged(item, &what)?),
            Kind::U16 => u16::set(&l, i, ranged(item, &what)?),
            Kind::U32 => u32::set(&l, i, ranged(item, &what)?),
            Kind::U64 => u64::set(&l, i, ranged(item, &what)?),
            Kind::F32 => f32::set(&l, i, as_f64(item, &what)? as f32),
            Kind::F64 => f64::set(&l, i, as_f64(item, &what)?),
            Kind::Enum(s) => u16::set(&l, i, enum_value(*s, item, &what)?),
            _ => {}
        }
    }
    Ok(())
}

// ---- methods ----

/// Builds a params struct from call arguments (positional, or one object naming them).
pub fn write_params(
    root: capnp::any_pointer::Builder<'_>,
    schema: StructSchema,
    args: &[Value],
    what: &str,
) -> Result<(), RpcError> {
    let shape = shape(schema)?;
    let names = &shape.plain;
    let named = names.len() >= 2 && args.len() == 1 && matches!(args[0], Value::Object(_));
    let object = if named {
        args[0].clone()
    } else {
        if args.len() > names.len() {
            return Err(RpcError::invalid_argument(format!(
                "{what} takes {} argument(s) ({}), got {}",
                names.len(),
                names.join(", "),
                args.len()
            )));
        }
        Value::Object(names.iter().cloned().zip(args.iter().cloned()).collect())
    };
    let RawBuilder(p) = root.init_as::<RawBuilder>();
    write_struct(p.init_struct(shape.layout.size), schema, &object, what)
}

/// Builds a params struct from one object naming its fields (whatever their number).
pub fn write_named_params(
    root: capnp::any_pointer::Builder<'_>,
    schema: StructSchema,
    fields: &Value,
    what: &str,
) -> Result<(), RpcError> {
    let shape = shape(schema)?;
    let RawBuilder(p) = root.init_as::<RawBuilder>();
    write_struct(p.init_struct(shape.layout.size), schema, fields, what)
}

/// Reads a results struct as one value: nothing, its one field, or an object.
pub fn read_results(root: capnp::any_pointer::Reader<'_>, schema: StructSchema) -> Result<Value, RpcError> {
    let RawReader(p) = root.get_as::<RawReader>().map_err(err)?;
    let Value::Object(mut fields) = read_struct(p.get_struct(None).map_err(err)?, schema)? else {
        return Err(RpcError::new(Code::Internal, "a struct did not read as an object"));
    };
    Ok(match fields.len() {
        0 => Value::Undefined,
        1 => fields.pop().map(|(_, v)| v).unwrap_or(Value::Undefined),
        _ => Value::Object(fields),
    })
}

/// Reads a params struct as positional arguments (for calls to JavaScript objects).
pub fn read_args(root: capnp::any_pointer::Reader<'_>, schema: StructSchema) -> Result<Vec<Value>, RpcError> {
    let RawReader(p) = root.get_as::<RawReader>().map_err(err)?;
    let Value::Object(fields) = read_struct(p.get_struct(None).map_err(err)?, schema)? else {
        return Err(RpcError::new(Code::Internal, "a struct did not read as an object"));
    };
    Ok(fields.into_iter().map(|(_, v)| v).collect())
}

/// Writes a JavaScript method's return value as a results struct (the inverse of
/// [`read_results`]).
pub fn write_results(
    root: capnp::any_pointer::Builder<'_>,
    schema: StructSchema,
    v: &Value,
    what: &str,
) -> Result<(), RpcError> {
    let shape = shape(schema)?;
    let object = match shape.plain.as_slice() {
        [] => Value::Object(Vec::new()),
        [name] => Value::Object(vec![(name.clone(), v.clone())]),
        _ => v.clone(),
    };
    let RawBuilder(p) = root.init_as::<RawBuilder>();
    write_struct(p.init_struct(shape.layout.size), schema, &object, what)
}

/// The method `name` of interface `iface` or an interface it extends: the id of the
/// interface that declares it, and the method.
pub fn method(iface: u64, name: &str) -> Option<(u64, &'static MethodDesc)> {
    let desc: &'static InterfaceDesc = schema::interface(iface)?;
    if let Some(m) = desc.methods.iter().find(|m| m.name == name) {
        return Some((iface, m));
    }
    desc.extends.iter().find_map(|s| method(*s, name))
}

/// Whether `iface` is `base` or extends it.
pub fn extends(iface: u64, base: u64) -> bool {
    iface == base || schema::interface(iface).is_some_and(|d| d.extends.iter().any(|s| extends(*s, base)))
}

/// Interfaces that extend `iface` and have a method `name` (a user's class reached as
/// an `Object`): where to look when `iface` itself lacks it.
pub fn subinterfaces_with(iface: u64, name: &str) -> Vec<(u64, &'static MethodDesc)> {
    schema::interfaces()
        .into_iter()
        .filter(|d| d.id != iface && extends(d.id, iface))
        .filter_map(|d| method(d.id, name))
        .collect()
}

/// The interface's short name (`Storage`), for messages.
pub fn interface_name(iface: u64) -> String {
    schema::interface(iface)
        .map(|d| d.name.rsplit(':').next().unwrap_or(d.name).to_string())
        .unwrap_or_else(|| format!("{iface:#x}"))
}

/// Every method name of `iface` and what it extends, for messages.
pub fn method_names(iface: u64) -> Vec<&'static str> {
    let Some(d) = schema::interface(iface) else { return Vec::new() };
    let mut names: Vec<&'static str> = d.methods.iter().map(|m| m.name).collect();
    for s in d.extends {
        names.extend(method_names(*s));
    }
    names
}
