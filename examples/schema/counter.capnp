@0xa62d274bf85740b2;
# The smallest user class: a counter kept in its object's own SQLite file.
# `import "/object.capnp"` is dotdo's object schema (found by `dotdo codegen`).

using Obj = import "/object.capnp";

interface Counter extends(Obj.Object) {
  increment @0 (by :Int64) -> (value :Int64) $Obj.scope("write");
  # Adds `by` and returns the new value.
  get @1 () -> (value :Int64) $Obj.scope("read");
  reset @2 () -> () $Obj.scope("admin");
  tick @3 () -> () $Obj.scope("write");
  # Adds one: a schedule whose action is `Counter.tick` calls it at each run.
}
