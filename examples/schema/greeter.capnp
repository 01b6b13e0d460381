@0xe5f3a1c2b4d60718;
# The walk-through's schema: your own interfaces, served and called with dotdo.

interface Greeter {
  greet @0 (name :Text) -> (greeting :Greeting);
}

interface Greeting {
  text @0 () -> (text :Text);
  shout @1 () -> (greeting :Greeting);
}
