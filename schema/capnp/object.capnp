@0xc3ff9b3df963bff3;
# Durable Objects: an object is named by (namespace, class, name) and has one SQLite
# database of its own. Its modules are capability servers: storage (Things), events,
# schedule.

struct Thing {
  id @0 :Text;
  type @1 :Text;
  # The noun, e.g. `Customer`.
  data @2 :Text;
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
  data @2 :Text;
}

interface Object {
  info @0 () -> (id :Text, namespace :Text, class :Text, name :Text);
  # The object's id is derived from (namespace, class, name) alone.
  storage @1 () -> (storage :Storage);
  events @2 () -> (events :Events);
  schedule @3 () -> (schedule :Schedule);
}

interface Storage {
  # Queries are JSON: {"type": "Customer", "where": {...}, "sort": ["-data.age", "id"],
  # "limit": 50, "offset": 0, "cursor": "...", "includeDeleted": false}.
  # Patches are JSON merge patches; {"$inc": {"field": n}} adds atomically.
  # expectedVersion 0 means "any version"; a mismatch is CONFLICT.

  create @0 (type :Text, data :Text, id :Text) -> (thing :Thing);
  get @1 (id :Text) -> (thing :Thing);
  update @2 (id :Text, patch :Text, expectedVersion :UInt64) -> (thing :Thing);
  replace @3 (id :Text, data :Text, expectedVersion :UInt64) -> (thing :Thing);
  delete @4 (id :Text, soft :Bool) -> (deleted :Bool);
  restore @5 (id :Text) -> (thing :Thing);
  query @6 (query :Text) -> (things :List(Thing), cursor :Text);
  # cursor: empty on the last page.
  findFirst @7 (query :Text) -> (thing :Thing, found :Bool);
  count @8 (query :Text) -> (count :UInt64);
  bulkCreate @9 (things :List(NewThing)) -> (things :List(Thing));
  bulkUpdate @10 (query :Text, patch :Text) -> (count :UInt64);
  bulkDelete @11 (query :Text, soft :Bool) -> (count :UInt64);
  upsert @12 (type :Text, id :Text, data :Text) -> (thing :Thing, created :Bool);
}

struct Event {
  id @0 :Text;
  seq @1 :UInt64;
  # Position in the object's event log; list(since) resumes after it.
  type @2 :Text;
  # `Noun.verb`.
  data @3 :Text;
  timestamp @4 :Int64;
  source @5 :Text;
  # The id of the object that sent it.
}

interface Handler {
  handle @0 (event :Event) -> ();
}

interface Subscription {
  cancel @0 () -> ();
  dropped @1 () -> (count :UInt64);
  # Events not delivered because this subscriber's queue was full.
}

interface Events {
  send @0 (type :Text, data :Text) -> (event :Event);
  subscribe @1 (pattern :Text, handler :Handler) -> (subscription :Subscription);
  # Patterns: `Customer.created`, `*.created`, `Customer.*`, `*.*`, `*`.
  list @2 (since :UInt64, pattern :Text, limit :UInt32) -> (events :List(Event), next :UInt64);
}

struct ScheduleEntry {
  id @0 :Text;
  spec @1 :Text;
  action @2 :Text;
  # The event type sent at each run.
  data @3 :Text;
  nextRun @4 :Int64;
  lastRun @5 :Int64;
}

interface Schedule {
  schedule @0 (spec :Text, action :Text, data :Text, handler :Handler) -> (entry :ScheduleEntry);
  # spec: 5/6-field cron, or `every 5 minutes`, `every day at 14:30`, `every Monday at 9am`...
  list @1 () -> (entries :List(ScheduleEntry));
  cancel @2 (id :Text) -> (cancelled :Bool);
  nextRun @3 (id :Text) -> (at :Int64);
}
