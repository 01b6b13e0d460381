//! The session guard: a sans-I/O filter between a transport and the RPC engine that
//! enforces per-session limits on incoming messages.
//!
//! It decodes each incoming frame under the reader limits, counts the calls in flight
//! (questions the peer asked that we have not answered), and answers calls that break
//! a limit itself, with a `Return` carrying a typed exception, so the engine never sees
//! them. Calls pipelined on a rejected call are rejected the same way; the peer's
//! `Finish` for a rejected call is swallowed.

use crate::error::{Code, RpcError};
use crate::framing;
use crate::limits::Limits;
use capnp::message::{Builder, Reader};
use capnp::serialize::OwnedSegments;
use capnp_rpc::rpc_capnp::{exception, message, message_target};
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// Hashes a question id with one multiplication (Fibonacci hashing): ids are small
/// sequential numbers chosen by the peer, looked up on every call and return, and
/// SipHash's protection against chosen keys buys nothing for a table the guard bounds.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8 | u64::from(*b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type Ids = BuildHasherDefault<IdHasher>;

/// What to do with one incoming frame.
pub enum Inbound {
    /// Hand the message to the RPC engine.
    Deliver(Reader<OwnedSegments>),
    /// Do not deliver; send these bytes (a framed message) back to the peer instead.
    Reply(Vec<u8>),
    /// Neither deliver nor answer.
    Drop,
    /// The peer broke the protocol: send [`abort_message`] and close the connection.
    Fatal(RpcError),
}

/// Per-session limit state. See the module docs.
pub struct Guard {
    limits: Limits,
    open: HashSet<u32, Ids>,
    rejected: HashMap<u32, Code, Ids>,
    /// Questions whose `Return` is queued but not yet written to the socket.
    unsent: Vec<u32>,
}

impl Guard {
    /// A guard enforcing `limits`.
    pub fn new(limits: Limits) -> Self {
        Guard { limits, open: HashSet::default(), rejected: HashMap::default(), unsent: Vec::new() }
    }

    /// The limits this guard enforces.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Questions the peer has asked whose answers are not written yet (a queued but
    /// unwritten answer still holds its in-flight slot).
    pub fn open_questions(&self) -> usize {
        self.open.len()
    }

    /// Judges one incoming frame.
    pub fn inbound(&mut self, frame: &[u8]) -> Inbound {
        if frame.len() > self.limits.max_frame_bytes {
            return Inbound::Fatal(RpcError::new(
                Code::LimitExceeded,
                format!(
                    "frame of {} bytes exceeds the hard limit of {} bytes",
                    frame.len(),
                    self.limits.max_frame_bytes
                ),
            ));
        }
        let msg = match framing::decode(frame, self.limits.reader_options()) {
            Ok(m) => m,
            Err(e) => return Inbound::Fatal(e),
        };
        let oversize = (frame.len() > self.limits.max_message_bytes).then(|| {
            RpcError::new(
                Code::LimitExceeded,
                format!(
                    "message of {} bytes exceeds the limit of {} bytes",
                    frame.len(),
                    self.limits.max_message_bytes
                ),
            )
        });
        match Self::classify(&msg) {
            Ok(Kind::Question { id, pipelined_on }) => {
                let refusal = if let Some(e) = oversize {
                    Some(e)
                } else if let Some(code) = pipelined_on.and_then(|p| self.rejected.get(&p)) {
                    Some(RpcError::new(*code, "the call this call is pipelined on was refused"))
                } else if self.open.len() >= self.limits.max_calls_in_flight {
                    Some(RpcError::new(
                        Code::Overloaded,
                        format!("more than {} calls in flight on this session", self.limits.max_calls_in_flight),
                    ))
                } else {
                    None
                };
                match refusal {
                    // A peer that never sends Finish for refused calls cannot grow this table
                    // without bound.
                    Some(_) if self.rejected.len() >= 4 * self.limits.max_calls_in_flight.max(16) => Inbound::Fatal(
                        RpcError::new(Code::Overloaded, "too many refused calls left unfinished on this session"),
                    ),
                    Some(e) => {
                        self.rejected.insert(id, e.code);
                        Inbound::Reply(return_exception(id, &e))
                    }
                    None => {
                        self.open.insert(id);
                        Inbound::Deliver(msg)
                    }
                }
            }
            Ok(Kind::Finish(id)) if self.rejected.remove(&id).is_some() => Inbound::Drop,
            Ok(_) if oversize.is_some() => {
                Inbound::Fatal(oversize.unwrap_or_else(|| RpcError::new(Code::LimitExceeded, "")))
            }
            Ok(_) => Inbound::Deliver(msg),
            Err(e) => Inbound::Fatal(RpcError::invalid_argument(format!("malformed rpc message: {e}"))),
        }
    }

    /// Notes one outgoing message: a `Return` will close its question once it is
    /// written ([`Guard::written`]), so a peer that does not read its answers cannot
    /// make the server hold more than `max_calls_in_flight` of them.
    pub fn outbound(&mut self, msg: &Builder<capnp::message::HeapAllocator>) {
        if let Ok(root) = msg.get_root_as_reader::<message::Reader>() {
            if let Ok(message::Return(Ok(r))) = root.which() {
                self.unsent.push(r.get_answer_id());
            }
        }
    }

    /// Everything noted by [`Guard::outbound`] so far has been written to the socket:
    /// the questions it answered free their in-flight slots.
    pub fn written(&mut self) {
        for id in self.unsent.drain(..) {
            self.open.remove(&id);
        }
    }

    fn classify(msg: &Reader<OwnedSegments>) -> capnp::Result<Kind> {
        let root: message::Reader = msg.get_root()?;
        Ok(match root.which()? {
            message::Call(c) => {
                let c = c?;
                let pipelined_on = match c.get_target()?.which()? {
                    message_target::PromisedAnswer(p) => Some(p?.get_question_id()),
                    message_target::ImportedCap(_) => None,
                };
                Kind::Question { id: c.get_question_id(), pipelined_on }
            }
            message::Bootstrap(b) => Kind::Question { id: b?.get_question_id(), pipelined_on: None },
            message::Finish(f) => Kind::Finish(f?.get_question_id()),
            _ => Kind::Other,
        })
    }
}

enum Kind {
    Question { id: u32, pipelined_on: Option<u32> },
    Finish(u32),
    Other,
}

fn fill_exception(mut ex: exception::Builder, e: &RpcError) {
    ex.set_reason(e.wire_reason());
    ex.set_type(match e.code.exception_kind() {
        capnp::ErrorKind::Overloaded => exception::Type::Overloaded,
        capnp::ErrorKind::Disconnected => exception::Type::Disconnected,
        capnp::ErrorKind::Unimplemented => exception::Type::Unimplemented,
        _ => exception::Type::Failed,
    });
}

/// A framed `Return` answering question `id` with the exception `e`.
pub fn return_exception(id: u32, e: &RpcError) -> Vec<u8> {
    let mut b = Builder::new_default();
    {
        let mut ret = b.init_root::<message::Builder>().init_return();
        ret.set_answer_id(id);
        ret.set_release_param_caps(true);
        fill_exception(ret.init_exception(), e);
    }
    framing::encode(&b)
}

/// Most bytes of an abort's reason kept in [`engine_abort`]'s error (a peer's long
/// reason is not echoed back whole).
pub const MAX_ABORT_REASON: usize = 1024;

/// The typed error of an outgoing `Abort` from the engine: its `[CODE]` tag, or
/// INVALID_ARGUMENT when it has none (the engine aborts a session when the peer breaks
/// the protocol, e.g. calls an import that does not exist), its message cut to
/// [`MAX_ABORT_REASON`] bytes. None for any other message.
pub fn engine_abort(msg: &Builder<capnp::message::HeapAllocator>) -> Option<RpcError> {
    let root = msg.get_root_as_reader::<message::Reader>().ok()?;
    let message::Abort(Ok(ex)) = root.which().ok()? else { return None };
    let reason = ex.get_reason().ok().and_then(|r| r.to_str().ok()).unwrap_or("the engine aborted the session");
    let mut e = RpcError::from_tagged(reason)
        .unwrap_or_else(|| RpcError::invalid_argument(format!("protocol error: {reason}")));
    if e.message.len() > MAX_ABORT_REASON {
        let mut end = MAX_ABORT_REASON;
        while !e.message.is_char_boundary(end) {
            end -= 1;
        }
        e.message.truncate(end);
        e.message.push_str(" (cut)");
    }
    Some(e)
}

/// A framed `Abort` message telling the peer why the connection is being closed.
pub fn abort_message(e: &RpcError) -> Vec<u8> {
    let mut b = Builder::new_default();
    fill_exception(b.init_root::<message::Builder>().init_abort(), e);
    framing::encode(&b)
}

/// Framed rpc messages for the tests of the guard and the pump.
#[cfg(test)]
pub(crate) mod test_messages {
    use crate::framing;
    use capnp::message::Builder;
    use capnp_rpc::rpc_capnp::message;

    /// A `Call` with question `id`, on an import or pipelined on question `p`, with
    /// `pad` bytes of parameters.
    pub(crate) fn call(id: u32, pipelined_on: Option<u32>, pad: usize) -> Vec<u8> {
        let mut b = Builder::new_default();
        {
            let mut c = b.init_root::<message::Builder>().init_call();
            c.set_question_id(id);
            c.set_interface_id(1);
            match pipelined_on {
                Some(p) => c.reborrow().init_target().init_promised_answer().set_question_id(p),
                None => c.reborrow().init_target().set_imported_cap(0),
            }
            c.init_params().init_content().set_as::<capnp::data::Owned>(&vec![7u8; pad][..]).expect("params");
        }
        framing::encode(&b)
    }

    /// A `Finish` for question `id`.
    pub(crate) fn finish(id: u32) -> Vec<u8> {
        let mut b = Builder::new_default();
        b.init_root::<message::Builder>().init_finish().set_question_id(id);
        framing::encode(&b)
    }
}

#[cfg(test)]
mod tests {
    use super::test_messages::{call, finish};
    use super::*;

    fn reply_code(v: Inbound) -> (u32, Code) {
        let Inbound::Reply(bytes) = v else { panic!("expected a reply") };
        let m = framing::decode(&bytes, Default::default()).expect("decode reply");
        let root: message::Reader = m.get_root().expect("root");
        let Ok(message::Return(Ok(r))) = root.which() else { panic!("expected a return") };
        let Ok(capnp_rpc::rpc_capnp::return_::Exception(Ok(ex))) = r.which() else { panic!("expected an exception") };
        let reason = ex.get_reason().expect("reason").to_string().expect("utf8");
        (r.get_answer_id(), RpcError::from_tagged(&reason).expect("tagged").code)
    }

    #[test]
    fn calls_over_the_in_flight_limit_are_refused_until_answers_go_out() {
        let mut g = Guard::new(Limits { max_calls_in_flight: 2, ..Limits::default() });
        assert!(matches!(g.inbound(&call(0, None, 0)), Inbound::Deliver(_)));
        assert!(matches!(g.inbound(&call(1, None, 0)), Inbound::Deliver(_)));
        assert_eq!(reply_code(g.inbound(&call(2, None, 0))), (2, Code::Overloaded));
        // A call pipelined on the refused one is refused too, and its Finish swallowed.
        assert_eq!(reply_code(g.inbound(&call(3, Some(2), 0))), (3, Code::Overloaded));
        assert!(matches!(g.inbound(&finish(2)), Inbound::Drop));
        // Answering one question makes room.
        let mut ret = Builder::new_default();
        ret.init_root::<message::Builder>().init_return().set_answer_id(0);
        g.outbound(&ret);
        assert_eq!(g.open_questions(), 2, "a queued answer holds its slot until it is written");
        assert_eq!(reply_code(g.inbound(&call(5, None, 0))), (5, Code::Overloaded));
        g.written();
        assert_eq!(g.open_questions(), 1);
        assert!(matches!(g.inbound(&call(4, None, 0)), Inbound::Deliver(_)));
    }

    #[test]
    fn oversize_calls_get_limit_exceeded_and_garbage_is_fatal() {
        let mut g = Guard::new(Limits { max_message_bytes: 256, ..Limits::default() });
        assert!(matches!(g.inbound(&call(0, None, 16)), Inbound::Deliver(_)));
        assert_eq!(reply_code(g.inbound(&call(1, None, 1000))), (1, Code::LimitExceeded));
        assert!(
            matches!(g.inbound(b"not a capnp message at all"), Inbound::Fatal(e) if e.code == Code::InvalidArgument)
        );
        let mut g = Guard::new(Limits { max_frame_bytes: 100, ..Limits::default() });
        assert!(matches!(g.inbound(&call(0, None, 1000)), Inbound::Fatal(e) if e.code == Code::LimitExceeded));
    }
}
