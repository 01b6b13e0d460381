@0xd1c3a5e7f0b24681;
# A shop in two classes: a Cart per customer and one Inventory. Adding to a cart
# reserves stock in the Inventory (a call from one object to another); a reservation
# not checked out expires by the Inventory's alarm; checking out writes an Order Thing
# and clears the cart in one transaction, and the cart counts its orders from its own
# `Order.created` events.

using Obj = import "/object.capnp";

struct Line {
  sku @0 :Text;
  quantity @1 :UInt32;
  reservation @2 :Text;
}

interface Inventory extends(Obj.Object) {
  restock @0 (sku :Text, quantity :UInt32) -> (available :Int64) $Obj.scope("admin");
  # Adds stock.
  reserve @1 (sku :Text, quantity :UInt32, holder :Text, ttlMs :UInt32) -> (reservation :Text) $Obj.scope("write");
  # Holds `quantity` for `ttlMs`; CONFLICT when fewer are available.
  release @2 (reservation :Text) -> (released :Bool) $Obj.scope("write");
  # Gives a reservation back.
  commit @3 (reservation :Text) -> (committed :Bool) $Obj.scope("write");
  # Takes a reservation out of stock for good (checkout).
  available @4 (sku :Text) -> (available :Int64) $Obj.scope("read");
  # Stock minus what is reserved.
}

interface Cart extends(Obj.Object) {
  add @0 (sku :Text, quantity :UInt32) -> (lines :List(Line)) $Obj.scope("write");
  # Reserves the items in the Inventory `main` for 15 minutes and adds them.
  lines @1 () -> (lines :List(Line)) $Obj.scope("read");
  checkout @2 () -> (order :Text) $Obj.scope("write");
  # Commits the reservations, then writes the Order and empties the cart in one
  # transaction; returns the Order's id. An empty cart is INVALID_ARGUMENT.
  orders @3 () -> (count :UInt64) $Obj.scope("read");
  # How many orders this cart has placed, counted by its own event handler.
}
