@0x8dd3c7bfd450ee6c;
# The broker: mints capability tokens and turns a valid token into a capability on the
# target object that can do only what the token allows.

using Obj = import "object.capnp";

struct MintRequest {
  target @0 :Text;
  # The object the token opens: `Class/name` (in the broker's namespace).
  methods @1 :List(Text);
  # `storage.get`, `storage.*`, or `*` for every method.
  scope @2 :Text;
  # "read", "write" or "admin".
  ttlMs @3 :UInt64;
  # Lifetime; 0 means one hour.
  subject @4 :Text;
  # Who the token is for.
}

struct Claims {
  target @0 :Text;
  methods @1 :List(Text);
  scope @2 :Text;
  expiresAt @3 :Int64;
  issuedAt @4 :Int64;
  subject @5 :Text;
  tokenId @6 :Text;
  keyId @7 :Text;
}

interface Broker {
  mint @0 (request :MintRequest) -> (token :Text);
  # Admin capabilities only.
  redeem @1 (token :Text, target :Text) -> (object :Obj.Object);
  # The token's object behind a membrane that forwards only what the token allows.
  # `target` (optional, `Class/name`) is the object the caller means to reach: a token
  # for another object is WRONG_TARGET.
  verify @2 (token :Text) -> (claims :Claims);
  # The token's effective rights (after attenuation), or why it is refused.
  revoke @3 (tokenId :Text) -> ();
  # Admin capabilities only; persisted.
  metrics @4 () -> (text :Text);
  # Prometheus text: calls, errors and latency per method; tokens by outcome.

  shard @5 (class :Text, shards :UInt32, key :Text) -> (object :Obj.Object, index :UInt32);
  # Admin: the shard object (`<class>/shard-<i>`) that a consistent hash ring places
  # `key` on, among `shards` shards.

  fanout @6 (class :Text, shards :UInt32, query :Text, budget :UInt32) -> (things :List(Obj.Thing), failures :List(Text));
  # Admin: runs a storage query on every shard in parallel (at most `budget` at a
  # time), merges (sort, limit, dedupe by id) and reports the shards that failed.
}
