//! The TypeScript declarations (`dotdo codegen --lang ts`) type-check a real `capnweb`
//! client: the built-in schema (`session.capnp` and what it imports), the counter example
//! and a schema with every kind of member are generated into a directory under the
//! target dir, and `tsc --noEmit` (strict, `js/tsconfig.json`) must accept a good client
//! and reject each deliberate mistake of a bad one with the expected error.
//!
//! Needs the `capnp` compiler and `js/node_modules` (`cd js && npm ci`). Without `capnp`
//! the test says so and passes unless `DOTDO_REQUIRE_CAPNP=1`; without Node or `tsc` it
//! says so and passes unless `DOTDO_REQUIRE_NODE=1` (CI sets both).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn compiler_or_skip() -> bool {
    match dotdo_codegen::compiler_version() {
        Ok(_) => true,
        Err(e) => {
            assert!(std::env::var("DOTDO_REQUIRE_CAPNP").is_err(), "DOTDO_REQUIRE_CAPNP=1 but: {e}");
            eprintln!("skipping the TypeScript check: {e}");
            false
        }
    }
}

/// `js/node_modules/.bin/tsc`, when it and Node are installed.
fn tsc_or_skip() -> Option<PathBuf> {
    let tsc = root().join("js/node_modules/.bin/tsc");
    let node = Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success());
    if tsc.is_file() && node {
        return Some(tsc);
    }
    let why = if node {
        format!("{} is missing: run `npm ci` in js/", tsc.display())
    } else {
        "node is not installed".to_string()
    };
    assert!(std::env::var("DOTDO_REQUIRE_NODE").is_err(), "DOTDO_REQUIRE_NODE=1 but {why}");
    eprintln!("skipping the TypeScript check: {why}");
    None
}

/// A schema with every kind of member, type and signature the mapping handles.
const KITCHEN: &str = r#"@0xd6c1f0a2b3c4d5e7;
# Every shape of declaration the TypeScript mapping handles.

using Obj = import "/object.capnp";

enum Color {
  red @0;
  # The warm one.
  green @1;
  blue @2;
}

struct Shape {
  # A shape: a union, a group, a named union, JSON and bytes.
  name @0 :Text;
  color @1 :Color;
  union {
    circle @2 :Float64;
    # The radius.
    square @3 :Float64;
    none @4 :Void;
  }
  extra :group {
    tags @5 :List(Text);
    blob @6 :Data;
  }
  meta @7 :Text $Obj.json;
  big @8 :UInt64;
  anything @9 :AnyPointer;
  outline :union {
    dashed @10 :Bool;
    solid @11 :Void;
  }
  points @12 :List(Point);
  listener @13 :Listener;

  struct Point {
    x @0 :Int32;
    y @1 :Int32;
  }
}

interface Listener {
  changed @0 (shape :Shape) -> (ack :Bool);
}

interface Painter extends(Obj.Object) {
  # Paints; `info` shadows the one of `Object`.
  paint @0 (shape :Shape, times :UInt32) -> (shapes :List(Shape));
  mix @1 (a :Color, b :Color) -> (color :Color);
  watch @2 (listener :Listener) -> ();
  info @3 () -> (painter :Text);
  raw @4 (bytes :Data) -> (bytes :Data, n :Int64);
  draw @5 Shape -> Shape;
  json @6 (query :Text $Obj.json, limit :UInt32) -> (rows :List(Text) $Obj.json);
}
"#;

/// The client that must type-check: the gateway's own example, then the rest.
const GOOD: &str = r#"import { newWebSocketRpcSession, newHttpBatchRpcSession, RpcTarget, type RpcPromise } from "capnweb";
import type { Gateway } from "./gen/session.js";
import type { Event, Handler, Thing, Json } from "./gen/object.js";
import type { Counter } from "./gen/counter.js";
import type { Color, Listener, Painter, Shape, ShapeInit } from "./gen/kitchen.js";

const api = newWebSocketRpcSession<Gateway>("ws://127.0.0.1:8787/capnweb");
const storage = api.object("Customer", "acme").storage();
const t = await storage.create({ type: "Customer", data: { name: "Ada" } });
const id: string = t.id; const name = t.data.name;
const page = await storage.query({ type: "Customer", limit: 10 });
const things: Thing[] = page.things; const cursor: string = page.cursor;
const ids = await storage.query({}).things.map((x) => x.id);
const idList: string[] = ids;
class H extends RpcTarget implements Handler { handle(e: Event) { console.log(e.type, e.data); } }
const sub = await api.object("Customer", "acme").events().subscribe("Customer.*", new H());
await sub.cancel();
// A class's own methods: cast the `Object` to its interface.
const counter = api.object("Counter", "c1") as RpcPromise<Counter>;
const n: number = await counter.increment(1);
const big: number = await counter.increment(5n);
const info: string = (await counter.info()).class;

// Positional arguments, any omitted; the named form; HTTP batch.
const batch = newHttpBatchRpcSession<Gateway>("http://127.0.0.1:8787/capnweb");
const t2 = await batch.object({ class: "Customer", name: "acme" }).storage().create("Customer", { a: 1 });
const version: number = t2.version;
const none = await storage.create();
await storage.update({ id: "x", patch: { $inc: { n: 1 } }, expectedVersion: 2n });
await storage.bulkUpdate({ query: {}, patch: {} });
await storage.bulkUpdate({ where: { a: 1 } }, { b: 2 });
await storage.bulkCreate([{ type: "Customer", data: {} }]);
const found: boolean = (await storage.findFirst({})).found;
const deleted: boolean = await storage.delete("x");
const kv = api.object("Customer", "acme").kv();
await kv.put("k", [1, 2, 3]);
const value: Json = (await kv.get("k")).value;
const negotiated = await api.negotiate({ clientId: "ts", maxVersion: 1, requiredFeatures: [] });
const features: string[] = negotiated.enabledFeatures;
const file = api.demo().open("docs").child("a");
const text: string = await file.read();
const broker = api.broker("key");
const redeemed = await broker.redeem("token").storage().get("id");
const fan = await broker.fanout({ class: "Customer", shards: 4, query: "{}", budget: 2 });
const failures: string[] = fan.failures;

// Every kind of member. `Painter.info` differs from `Object.info`, so the cast goes
// through `unknown`.
const painter = api.object("Painter", "p") as unknown as RpcPromise<Painter>;
const init: ShapeInit = {
  name: "c", color: "red", circle: 2, extra: { tags: ["a"], blob: new Uint8Array([1]) },
  meta: { any: ["json"] }, big: 2n ** 60n, outline: { dashed: true }, points: [{ x: 1 }],
};
const shapes = await painter.paint(init, 3);
const first = shapes[0]!;
const color: Color = first.color;
const radius: number | undefined = first.circle;
const tags: string[] = first.extra.tags;
const blob: Uint8Array = first.extra.blob;
const dashed: boolean | undefined = first.outline.dashed;
const solid: null | undefined = first.outline.solid;
const meta = first.meta.whatever;
const anything: unknown = first.anything;
const x: number = first.points[0]!.x;
const mixed: Color = await painter.mix("red", "blue");
class L extends RpcTarget implements Listener {
  changed(shape: Shape) { return shape.color === "red"; }
}
await painter.watch(new L());
await painter.paint({ shape: { listener: new L() }, times: 1 });
const raw = await painter.raw(new Uint8Array(2));
const bytes: Uint8Array = raw.bytes; const count: number = raw.n;
const drawn = await painter.draw({ name: "x", color: "green" });
const drawnName: string = drawn.name;
const drawn2 = await painter.draw("y", "blue");
const painted: string = await painter.info();
const inherited: number = await painter.storage().count({});
const rows: Json[] = await painter.json({ type: "x" }, 5);
export {
  id, name, things, cursor, idList, n, big, info, version, none, found, deleted, value, features,
  text, redeemed, failures, color, radius, tags, blob, dashed, solid, meta, anything, x, mixed, bytes, count,
  drawnName, drawn2, painted, inherited, rows,
};
"#;

/// The client that must not type-check: each marked line fails with that error, and
/// no other line does.
const BAD: &str = r#"import { newWebSocketRpcSession, RpcTarget, type RpcPromise } from "capnweb";
import type { Gateway } from "./gen/session.js";
import type { Counter } from "./gen/counter.js";
import type { Listener, Painter, Shape } from "./gen/kitchen.js";

const api = newWebSocketRpcSession<Gateway>("ws://127.0.0.1:8787/capnweb");
const storage = api.object("Customer", "acme").storage();
const t = await storage.create({ type: "Customer", data: { name: "Ada" } });
storage.create(42); // error TS2345
t.nope; // error TS2339
storage.create({ typo: "Customer" }); // error TS2345
const created: string = t.createdAt; // error TS2322
api.object(1, 2); // error TS2345
api.object("Counter", "c1").increment(1); // error TS2339
(api.object("Counter", "c1") as RpcPromise<Counter>).increment("one"); // error TS2345
storage.bulkUpdate({ where: { a: 1 } }); // error TS2353
storage.get("id", "extra"); // error TS2554
class NotAHandler extends RpcTarget { nothandle() {} }
api.object("a", "b").events().subscribe("x", new NotAHandler()); // error TS2345
const ids: number[] = await storage.query({}).things.map((x) => x.id); // error TS2322
const painter = api.object("Painter", "p") as unknown as RpcPromise<Painter>;
painter.mix("purple"); // error TS2345
painter.paint({ colour: "red" }); // error TS2353
class BadListener extends RpcTarget implements Listener {
  changed(shape: Shape) { return "yes"; } // error TS2416
}
const s: Shape = (await painter.paint({}, 1))[0]!; s.extra.nope; // error TS2339
export { created, ids };
"#;

/// Runs `tsc -p` on a config listing `files` (with the generated ones) in `dir`.
fn tsc(tsc: &Path, dir: &Path, config: &str, files: &[&str]) -> (bool, String) {
    let base = root().join("js/tsconfig.json");
    let list: Vec<String> = files.iter().map(|f| format!("{f:?}")).collect();
    let json = format!(
        "{{ \"extends\": {:?}, \"files\": [{}], \"include\": [\"gen/*.ts\"] }}\n",
        base.display().to_string(),
        list.join(", ")
    );
    std::fs::write(dir.join(config), json).expect("write a tsconfig");
    let out = Command::new("node")
        .arg(tsc)
        .arg("-p")
        .arg(dir.join(config))
        .arg("--pretty")
        .arg("false")
        .current_dir(dir)
        .output()
        .expect("run tsc");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// (line, code) of every `// error TSnnnn` mark in `source`.
fn expected_errors(source: &str) -> BTreeSet<(usize, String)> {
    source
        .lines()
        .enumerate()
        .filter_map(|(i, l)| l.split("// error ").nth(1).map(|code| (i + 1, code.trim().to_string())))
        .collect()
}

/// (line, code) of every error tsc reports in `file`.
fn reported_errors(output: &str, file: &str) -> BTreeSet<(usize, String)> {
    let prefix = format!("{file}(");
    output
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .filter_map(|rest| {
            let (pos, msg) = rest.split_once("): error ")?;
            let line = pos.split(',').next()?.parse().ok()?;
            let code = msg.split(':').next()?.to_string();
            Some((line, code))
        })
        .collect()
}

fn generate(files: &[PathBuf], import_paths: &[PathBuf], out: &Path) -> Vec<PathBuf> {
    dotdo_codegen::generate_typescript(files, import_paths, out).expect("generate TypeScript")
}

#[test]
fn generated_declarations_type_check_a_capnweb_client() {
    if !compiler_or_skip() {
        return;
    }
    let Some(tsc_bin) = tsc_or_skip() else { return };
    // Left in place afterwards, for a look at what was generated and checked.
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dotdo-ts");
    let _ = std::fs::remove_dir_all(&dir);
    let gen = dir.join("gen");

    // The built-in files: session.capnp brings demo, object and broker.
    let builtin = dotdo_codegen::builtin_schema_dir();
    let written = generate(&[builtin.join("session.capnp")], &[], &gen);
    let names: BTreeSet<String> =
        written.iter().filter_map(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned()).collect();
    let want: BTreeSet<String> = ["session.ts", "demo.ts", "object.ts", "broker.ts"].map(String::from).into();
    assert_eq!(names, want, "session.capnp and every file it imports");
    let object = std::fs::read_to_string(gen.join("object.ts")).expect("object.ts");
    let session = std::fs::read_to_string(gen.join("session.ts")).expect("session.ts");
    assert!(session.contains("import type { Object } from \"./object.js\";"), "{session}");
    assert!(object.contains("export interface Object extends RpcTarget {"), "{object}");
    assert!(object.contains("  /** The noun, e.g. `Customer`. */\n  type: string;"), "docs become JSDoc: {object}");

    // Generating them all again, as requested files, writes the same text.
    let all: Vec<PathBuf> = dotdo_codegen::BUILTIN_FILES.iter().map(|f| builtin.join(f)).collect();
    let again = dir.join("again");
    generate(&all, &[], &again);
    for n in &want {
        let a = std::fs::read_to_string(gen.join(n)).expect("first");
        let b = std::fs::read_to_string(again.join(n)).expect("second");
        assert!(a == b, "{n} differs between an imported and a requested file");
    }

    // The counter example: its own file, and object.ts (through `/object.capnp`) again.
    let counter_out = dir.join("counter");
    let written = generate(&[root().join("examples/schema/counter.capnp")], &[], &counter_out);
    assert_eq!(written.len(), 2, "counter.ts and object.ts: {written:?}");
    let counter = std::fs::read_to_string(counter_out.join("counter.ts")).expect("counter.ts");
    assert!(counter.contains("export interface Counter extends Object {"), "{counter}");
    assert_eq!(std::fs::read_to_string(counter_out.join("object.ts")).expect("object.ts"), object);
    std::fs::copy(counter_out.join("counter.ts"), gen.join("counter.ts")).expect("copy counter.ts");

    // Every kind of member, in a schema of the test's own.
    let schema_dir = dir.join("schema");
    std::fs::create_dir_all(&schema_dir).expect("a schema directory");
    std::fs::write(schema_dir.join("kitchen.capnp"), KITCHEN).expect("write kitchen.capnp");
    generate(&[schema_dir.join("kitchen.capnp")], &[], &gen);
    let kitchen = std::fs::read_to_string(gen.join("kitchen.ts")).expect("kitchen.ts");
    assert!(kitchen.contains("export interface Painter extends Omit<Object, \"info\"> {"), "{kitchen}");
    assert!(kitchen.contains("import type { Json, Object } from \"./object.js\";"), "{kitchen}");

    std::fs::write(dir.join("good.ts"), GOOD).expect("write good.ts");
    let (ok, out) = tsc(&tsc_bin, &dir, "tsconfig.good.json", &["good.ts"]);
    assert!(ok, "the good client must type-check:\n{out}");

    std::fs::write(dir.join("bad.ts"), BAD).expect("write bad.ts");
    let (ok, out) = tsc(&tsc_bin, &dir, "tsconfig.bad.json", &["bad.ts"]);
    assert!(!ok, "the bad client must not type-check");
    let expected = expected_errors(BAD);
    let reported = reported_errors(&out, "bad.ts");
    assert_eq!(reported, expected, "each mistake, and only the mistakes, fail:\n{out}");
    assert!(!out.contains("gen/"), "the generated files themselves type-check:\n{out}");
}
