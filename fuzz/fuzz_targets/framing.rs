//! Cap'n Proto framing and the session guard: the bytes of a TCP stream or an HTTP batch
//! body, split into messages, each judged by a guard with the default limits; and the
//! whole input as one WebSocket frame.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rpc_core::framing;
use rpc_core::guard::{Guard, Inbound};
use rpc_core::{Code, Limits};

fn judge(guard: &mut Guard, frame: &[u8], limits: &Limits) {
    match guard.inbound(frame) {
        // What the guard answers itself must be a message the peer can read.
        Inbound::Reply(bytes) => {
            framing::decode(&bytes, limits.reader_options()).expect("the guard's reply decodes");
        }
        Inbound::Fatal(e) => assert!(
            matches!(e.code, Code::InvalidArgument | Code::LimitExceeded | Code::Overloaded),
            "unexpected code for a bad frame: {e:?}"
        ),
        Inbound::Deliver(_) | Inbound::Drop => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    if let Ok(Some(n)) = framing::message_len(data) {
        // The length is consistent with split: a prefix of that length is one message.
        if n <= data.len() {
            assert_eq!(framing::split(&data[..n]).map(|f| f.len()).ok(), Some(1));
        }
    }
    if let Ok(frames) = framing::split(data) {
        assert_eq!(frames.iter().map(|f| f.len()).sum::<usize>(), data.len());
        let mut guard = Guard::new(limits);
        for f in frames {
            assert_eq!(framing::message_len(f).ok().flatten(), Some(f.len()));
            judge(&mut guard, f, &limits);
        }
    }
    let mut guard = Guard::new(limits);
    judge(&mut guard, data, &limits);
});
