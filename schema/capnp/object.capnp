@0xc3ff9b3df963bff3;
# Durable Objects: an object is named by (namespace, class, name) and has one SQLite
# database of its own. Its modules are capability servers: storage (Things), events,
# schedule, kv, workflow.

annotation scope @0xcc2f4b44aced05ae (method) :Text;
# The least token scope a method needs: "read" < "write" < "admin". Brokers' membranes
# enforce it; a method without one needs "admin".

annotation json @0x90bc2b18423f2c79 (field, param) :Void;
# The Text holds JSON. Binary clients see the text; the Cap'n Web (JSON) gateway and
# the TypeScript types show the JSON value itself.

struct Thing {
  id @0 :Text;
  type @1 :Text;
  # The noun, e.g. `Customer`.
  data @2 :Text $json;
  # A JSON object.
  createdAt @3 :Int64;
  updatedAt @4 :Int64;
  # Milliseconds since the Unix epoch.
  deletedAt @5 :Int64;
  # 0 unless soft-deleted.
  version @6 :UInt64;
  # 1 on create, +1 on every write.
}

struct NewThing {
  type @0 :Text;
  id @1 :Text;
  # Empty: generated.
  data @2 :Text $json;
}

interface Object {
  info @0 () -> (id :Text, namespace :Text, class :Text, name :Text) $scope("read");
  # The object's id is derived from (namespace, class, name) alone.
  storage @1 () -> (storage :Storage) $scope("read");
  events @2 () -> (events :Events) $scope("read");
  schedule @3 () -> (schedule :Schedule) $scope("read");
  kv @4 () -> (kv :Kv) $scope("admin");
  # The object's key-value entries (a class's own state): for operators and tools
  # such as `dotdo inspect`, so every method of it needs an admin token.
  workflow @5 () -> (workflow :Workflow) $scope("read");
  # The object's workflows: durable runs of the code its class registers.
  deliver @6 (key :Text, method :Text, args :Text $json) -> (result :Text $json, duplicate :Bool) $scope("admin");
  # A durable call from another object: runs `method` (a method of the object's class,
  # or `module.method` such as `storage.create`) with `args` (a JSON array of
  # positional arguments, or one object naming them) once per `key`: a key that
  # succeeded before answers its first result again (duplicate = true) without running
  # it. A success's writes and its key commit together; a call that fails records no
  # key (a retry runs it again, so a method should write in one transaction). Keys are
  # kept as long as finished workflow runs (7 days by default).
}

interface Storage {
  # Queries are JSON: {"type": "Customer", "where": {...}, "sort": ["-data.age", "id"],
  # "limit": 50, "offset": 0, "cursor": "...", "includeDeleted": false}.
  # Patches are JSON merge patches; {"$inc": {"field": n}} adds atomically.
  # expectedVersion 0 means "any version"; a mismatch is CONFLICT.
  # ifMatch (update, replace, delete): empty, or a `where` filter (JSON, as in queries)
  # the thing must match when the write runs; if it does not, CONFLICT and no change.
  # Queries may also name `"select": ["a", "b.c"]` or `"exclude": [...]` data fields.

  create @0 (type :Text, data :Text $json, id :Text) -> (thing :Thing) $scope("write");
  get @1 (id :Text) -> (thing :Thing) $scope("read");
  update @2 (id :Text, patch :Text $json, expectedVersion :UInt64, ifMatch :Text $json) -> (thing :Thing) $scope("write");
  replace @3 (id :Text, data :Text $json, expectedVersion :UInt64, ifMatch :Text $json) -> (thing :Thing) $scope("write");
  delete @4 (id :Text, soft :Bool, ifMatch :Text $json) -> (deleted :Bool) $scope("write");
  restore @5 (id :Text) -> (thing :Thing) $scope("write");
  query @6 (query :Text $json) -> (things :List(Thing), cursor :Text) $scope("read");
  # cursor: empty on the last page.
  findFirst @7 (query :Text $json) -> (thing :Thing, found :Bool) $scope("read");
  count @8 (query :Text $json) -> (count :UInt64) $scope("read");
  bulkCreate @9 (things :List(NewThing)) -> (things :List(Thing)) $scope("write");
  bulkUpdate @10 (query :Text $json, patch :Text $json) -> (count :UInt64) $scope("write");
  bulkDelete @11 (query :Text $json, soft :Bool) -> (count :UInt64) $scope("write");
  upsert @12 (type :Text, id :Text, data :Text $json) -> (thing :Thing, created :Bool) $scope("write");
  aggregate @13 (query :Text $json) -> (rows :Text $json) $scope("read");
  # {"type": .., "where": .., "groupBy": ["data.country"], "aggregate": {"n": {"count": "*"},
  # "total": {"sum": "data.amount"}}, "limit": 100}: a JSON array of rows
  # [{"group": {"data.country": "FR"}, "n": 3, "total": 12.5}], groups in order.
  index @14 (spec :Text $json) -> (index :Text $json, created :Bool) $scope("admin");
  # spec: a field ("age") or {"name": "byEmail", "fields": ["email", "-createdAt"],
  # "unique": true}. Builds an index on what queries compile those fields to, so filters
  # and sorts on them stop scanning; it covers live things. The same spec again is a
  # no-op (created false); a unique index over values live things share is CONFLICT, and
  # so is any later write that would make two share them.
  dropIndex @15 (name :Text) -> (dropped :Bool) $scope("admin");
  indexes @16 () -> (indexes :Text $json) $scope("read");
  # A JSON array of specs, by name, declared by the class or created with `index`.
  explain @17 (query :Text $json) -> (plan :List(Text)) $scope("read");
  # SQLite's plan for a page of `query`, one line per step, e.g.
  # "SEARCH things USING INDEX dotdo_ix_age (...)" when an index serves it.

  # Relationships between Things: (from, verb, to, data). A verb is given in any form
  # (`purchase`, `purchases`, `purchased`) and kept in its past form, that of its event
  # `<FromType>.<verb>` (`Customer.purchased`; removing one records
  # `<FromType>.unrelated`). Deleting a Thing for good deletes its relationships;
  # soft-deleting it hides them until it is restored.
  relate @18 (from :Text, verb :Text, to :Text, data :Text $json) -> (relationship :Relationship, created :Bool) $scope("write");
  # Both Things live, else NOT_FOUND; the same (from, verb, to) again replaces its data.
  unrelate @19 (from :Text, verb :Text, to :Text) -> (removed :Bool) $scope("write");
  related @20 (query :Text $json) -> (relationships :List(Relationship), things :List(Thing), cursor :Text) $scope("read");
  # {"id": "c1", "verb": "purchase", "direction": "out" | "in" | "both", "type": "Product",
  # "where": {...}, "limit": 100, "cursor": ".."}: each relationship with the live Thing at
  # its other end (the nth Thing for the nth relationship), by that Thing's id; cursor
  # empty on the last page.
  traverse @21 (query :Text $json) -> (things :List(Thing), paths :Text $json) $scope("read");
  # {"start": "a", "steps": [{"verb": "follow", "direction": "out", "type": .., "where": ..}],
  # "maxDepth": 3, "minDepth": 1, "limit": 100}: hop k follows step (k-1) % steps; each
  # live Thing reached between minDepth (default 1 for one step, else the number of
  # steps) and maxDepth (default the number of steps, at most 8), once, nearest first;
  # paths: a JSON array with, for the nth Thing, {"depth": d, "path": the ids from the
  # start to it}. Following more than 10,000 relationships is LIMIT_EXCEEDED.

  snapshot @22 () -> (manifest :Text $json) $scope("admin");
  # Writes the object's whole database (Things, relationships, key-value entries,
  # events, schedules, workflows, the class's tables) to the cold tier as Parquet plus a
  # manifest, as it is once the writes before the call are durable; answers the
  # manifest. `dotdo restore` rebuilds the object's SQLite file from the newest one.
  # UNAVAILABLE on a host without a cold tier (`dotdo serve --cold DIR|s3://bucket/prefix`).

  archive @23 (request :Text $json) -> (archived :UInt64) $scope("admin");
  # {"type": "Order", "where": {...}, "idleMs": 86400000, "limit": 10000} (each optional):
  # moves the live Things of the type matching the filter and not written for idleMs
  # (at most 10,000 a call) out of SQLite into a Parquet segment in the cold tier. They
  # stay readable: `get` falls through to the segment; a write to one (or a create with
  # its id, then CONFLICT) brings it back first; a query with "includeCold": true
  # brings back those it matches, then runs. UNAVAILABLE without a cold tier.
}

struct Relationship {
  from @0 :Text;
  verb @1 :Text;
  # Past form.
  to @2 :Text;
  data @3 :Text $json;
  createdAt @4 :Int64;
}

struct Event {
  id @0 :Text;
  seq @1 :UInt64;
  # Position in the object's event log; list(since) resumes after it.
  type @2 :Text;
  # `Noun.verb`.
  data @3 :Text $json;
  timestamp @4 :Int64;
  source @5 :Text;
  # The id of the object that sent it.
}

interface Handler {
  handle @0 (event :Event) -> ();
}

interface Subscription {
  cancel @0 () -> () $scope("read");
  dropped @1 () -> (count :UInt64) $scope("read");
  # Events not delivered because this subscriber's queue was full.
}

interface Events {
  send @0 (type :Text, data :Text $json) -> (event :Event) $scope("write");
  subscribe @1 (pattern :Text, handler :Handler) -> (subscription :Subscription) $scope("read");
  # Patterns: `Customer.created`, `*.created`, `Customer.*`, `*.*`, `*`.
  list @2 (since :UInt64, pattern :Text, limit :UInt32) -> (events :List(Event), next :UInt64) $scope("read");
}

struct ScheduleEntry {
  id @0 :Text;
  spec @1 :Text;
  action @2 :Text;
  # The event type sent at each run.
  data @3 :Text $json;
  nextRun @4 :Int64;
  lastRun @5 :Int64;
}

interface Schedule {
  schedule @0 (spec :Text, action :Text, data :Text $json, handler :Handler) -> (entry :ScheduleEntry) $scope("write");
  # spec: 5/6-field cron, or `every 5 minutes`, `every day at 14:30`, `every Monday at 9am`...
  list @1 () -> (entries :List(ScheduleEntry)) $scope("read");
  cancel @2 (id :Text) -> (cancelled :Bool) $scope("write");
  nextRun @3 (id :Text) -> (at :Int64) $scope("read");
}

struct KvEntry {
  key @0 :Text;
  value @1 :Text $json;
  # JSON.
}

interface Kv {
  # The key-value entries a class keeps with `Context::kv` (JSON values).
  get @0 (key :Text) -> (value :Text $json, found :Bool) $scope("admin");
  put @1 (key :Text, value :Text $json) -> () $scope("admin");
  # value: JSON; anything else is INVALID_ARGUMENT.
  delete @2 (key :Text) -> (deleted :Bool) $scope("admin");
  list @3 (prefix :Text, limit :UInt32) -> (entries :List(KvEntry)) $scope("admin");
  # In key order, at most `limit` (and 10,000).
}

struct RunInfo {
  id @0 :Text;
  name @1 :Text;
  # The workflow's name.
  status @2 :Text;
  # running | sleeping | waiting | completed | failed | cancelled
  input @3 :Text $json;
  output @4 :Text $json;
  # completed: the result (JSON); null otherwise.
  error @5 :Text;
  errorCode @6 :Text;
  # failed or cancelled: why, and the code.
  createdAt @7 :Int64;
  updatedAt @8 :Int64;
  wakeAt @9 :Int64;
  # sleeping or waiting: when the run wakes (a deadline, a retry); 0 when only an event
  # or an answer wakes it.
  steps @10 :UInt32;
  # Steps recorded so far.
}

struct StepInfo {
  name @0 :Text;
  # The step's key: its name, `name#2` for the second step of that name.
  kind @1 :Text;
  # step | sleep | event | approval | call | send | cascade | tier | now | random
  status @2 :Text;
  # running | retrying | waiting | completed | failed
  attempts @3 :UInt32;
  tier @4 :Text;
  # cascade: the tier that answered (code | generative | agentic | human).
  startedAt @5 :Int64;
  finishedAt @6 :Int64;
  result @7 :Text $json;
  error @8 :Text;
  errorCode @9 :Text;
}

struct ApprovalInfo {
  id @0 :Text;
  run @1 :Text;
  step @2 :Text;
  who @3 :Text;
  # Whose answer is asked for (a person, a role).
  what @4 :Text $json;
  # What is to be approved.
  deadline @5 :Int64;
  # After it the approval is `expired` and the workflow takes its timeout branch.
  status @6 :Text;
  # pending | approved | rejected | expired | cancelled
  answeredBy @7 :Text;
  comment @8 :Text;
  answeredAt @9 :Int64;
}

interface Workflow {
  start @0 (name :Text, input :Text $json, id :Text) -> (run :Run) $scope("write");
  # Starts the workflow `name` of the object's class with `input` (JSON). `id`: empty
  # for a generated one; an id already used returns that run (start is idempotent on it).
  run @1 (id :Text) -> (run :Run) $scope("read");
  list @2 (filter :Text $json) -> (runs :List(RunInfo)) $scope("read");
  # filter: {"name": .., "status": .., "limit": 100}, newest first.
  approval @3 (id :Text) -> (approval :Approval) $scope("read");
  approvals @4 (status :Text) -> (approvals :List(ApprovalInfo)) $scope("read");
  # Empty status: every approval kept.
  names @5 () -> (names :List(Text)) $scope("read");
  # The workflows this object's class registers.
}

interface Run {
  status @0 () -> (info :RunInfo) $scope("read");
  result @1 () -> (result :Text $json) $scope("read");
  # Completes when the run finishes: its output, or its error (with its code; a
  # cancelled run is CANCELLED). Bounded by the call deadline like any call.
  cancel @2 () -> (cancelled :Bool) $scope("write");
  # False when the run had already finished.
  history @3 () -> (steps :List(StepInfo)) $scope("read");
}

interface Approval {
  info @0 () -> (info :ApprovalInfo) $scope("read");
  approve @1 (by :Text, comment :Text) -> (info :ApprovalInfo) $scope("write");
  reject @2 (by :Text, comment :Text) -> (info :ApprovalInfo) $scope("write");
  # An approval answered already is CONFLICT; one past its deadline is EXPIRED.
}
