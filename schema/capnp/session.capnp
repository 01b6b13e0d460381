@0xf1a6e0205dde4317;
# The bootstrap interface of every dotdo session: negotiation, discovery and the
# getters that hand out the capabilities a server offers.

using Demo = import "demo.capnp";
using Obj = import "object.capnp";
using Brk = import "broker.capnp";

struct NegotiateRequest {
  clientId @0 :Text;
  # A name the client chooses for itself; echoed back.
  minVersion @1 :UInt32;
  maxVersion @2 :UInt32;
  # The protocol versions the client speaks (inclusive range).
  supportedFeatures @3 :List(Text);
  # Features the client can use if the server has them.
  requiredFeatures @4 :List(Text);
  # Features the client cannot work without: negotiation fails without them.
}

struct Negotiated {
  version @0 :UInt32;
  # The highest protocol version both sides speak.
  clientId @1 :Text;
  enabledFeatures @2 :List(Text);
  # Requested (supported or required) features the server has.
  availableFeatures @3 :List(Text);
  # Every feature the server has.
  sessionId @4 :Text;
  namespace @5 :Text;
  # The namespace this session runs in (from the Host header, or `default`).
}

struct MethodInfo {
  name @0 :Text;
  ordinal @1 :UInt16;
}

struct InterfaceInfo {
  name @0 :Text;
  # The interface's name as written in its schema file, e.g. `session.capnp:Gateway`.
  id @1 :UInt64;
  methods @2 :List(MethodInfo);
}

interface Gateway {
  negotiate @0 (request :NegotiateRequest) -> (result :Negotiated);
  # The first call of a session: agree on a version and features.

  describe @1 () -> (interfaces :List(InterfaceInfo), schemas :List(Data));
  # The interfaces and methods this server offers, for discovery.

  demo @2 () -> (directory :Demo.Directory);
  # The demonstration object set used by the examples, tests and benchmarks.

  object @3 (class :Text, name :Text) -> (object :Obj.Object);
  # The Durable Object named (this session's namespace, class, name).

  broker @4 (apiKey :Text) -> (broker :Brk.Broker);
  # The broker; an admin API key (DOTDO_ADMIN_KEY) or admin token makes it an admin
  # broker that may mint and revoke, anything else a broker that may only redeem and
  # verify.
}
