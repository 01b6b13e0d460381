@0xcbbac46230990402;
# A small object set for learning and testing promise pipelining: a directory
# that opens files, files that open children and return values, and callbacks.

interface Directory {
  open @0 (name :Text) -> (file :File);
  # Returns a capability for the file `name` (created on first open).

  echo @1 (x :UInt64) -> (x :UInt64);
  # Returns its argument: the cheapest possible call, for benchmarks.

  next @2 (n :Int64) -> (n :Int64);
  # Returns n + 1.

  subscribe @3 (callback :Callback, value :Text) -> (reply :Text);
  # Calls `callback.notify(value)` back on the caller and returns its reply.

  liveFiles @4 () -> (count :UInt32);
  # How many File objects of this session are alive on the server (tests release).

  sleep @5 (millis :UInt32) -> ();
  # Returns after `millis` milliseconds (tests timeouts and limits).

  sum @6 (values :List(Int64)) -> (total :Int64);
  # Adds a list (tests message size limits).

  depth @7 (tree :Tree) -> (depth :UInt32);
  # Measures a nested structure (tests nesting limits).

  sleeping @8 () -> (count :UInt32);
  # How many `sleep` calls of this session are running now (tests cancellation: a call
  # whose caller gave up, e.g. past its deadline, stops on the server).
}

struct Tree {
  children @0 :List(Tree);
}

interface File {
  name @0 () -> (name :Text);
  child @1 (name :Text) -> (file :File);
  # Returns the file `<this name>/<name>`.
  read @2 () -> (text :Text);
  # The file's contents: `contents of <name>`.
}

interface Callback {
  notify @0 (value :Text) -> (reply :Text);
}
