//! WebSocket framing (RFC 6455, section 5) without I/O: parsing frames out of a byte
//! buffer and writing frames into one, as the `rpc-transport` WebSocket transport needs
//! them: binary messages (fragmented or not), ping, pong and close. No extensions are
//! negotiated, so the reserved bits must be clear; text messages are refused, as dotdo
//! carries one Cap'n Proto message per binary message.
//!
//! ```
//! use rpc_core::wsframe::{encode, Decoder, Event, Opcode, Role};
//! let mut wire = Vec::new();
//! encode(Opcode::Binary, b"hello", Some([7, 1, 9, 3]), &mut wire);
//! let mut buf = bytes::BytesMut::from(&wire[..]);
//! let mut server = Decoder::new(Role::Server, 1 << 20);
//! match server.decode(&mut buf) {
//!     Ok(Some(Event::Message(m))) => assert_eq!(&m[..], b"hello"),
//!     other => panic!("{other:?}"),
//! }
//! assert!(buf.is_empty());
//! ```

use crate::error::{Code, RpcError};
use bytes::{Buf, Bytes, BytesMut};

/// Which end of the connection this is: a client masks what it sends and a server
/// requires masked frames (and the other way round).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The end that opened the connection.
    Client,
    /// The end that accepted it.
    Server,
}

/// The frame types dotdo sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opcode {
    /// A binary message (one Cap'n Proto message).
    Binary = 0x2,
    /// Closing the connection.
    Close = 0x8,
    /// A keep-alive the peer must answer.
    Ping = 0x9,
    /// The answer to a ping.
    Pong = 0xA,
}

/// What the peer sent.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// A whole binary message.
    Message(Bytes),
    /// A ping: answer it with a pong carrying the same payload.
    Ping(Bytes),
    /// A pong (ignored).
    Pong,
    /// The peer is closing, with its status code if it gave one.
    Close(Option<u16>),
}

/// Parses frames from a buffer, reassembling fragmented messages.
#[derive(Debug)]
pub struct Decoder {
    role: Role,
    max_message: usize,
    /// A fragmented message being received.
    partial: Option<BytesMut>,
}

/// The size of a frame's header, read from its first bytes; None while they are
/// incomplete.
struct Header {
    fin: bool,
    opcode: u8,
    mask: Option<[u8; 4]>,
    len: usize,
    header_len: usize,
}

fn refuse(message: impl Into<String>) -> RpcError {
    RpcError::new(Code::InvalidArgument, format!("websocket protocol error: {}", message.into()))
}

fn header(buf: &[u8]) -> Result<Option<Header>, RpcError> {
    let [b0, b1, ..] = *buf else { return Ok(None) };
    if b0 & 0x70 != 0 {
        return Err(refuse("reserved bits set (no extension was negotiated)"));
    }
    let (len7, masked) = (usize::from(b1 & 0x7F), b1 & 0x80 != 0);
    let (len, mut at) = match len7 {
        126 => match buf.get(2..4) {
            Some(b) => (usize::from(u16::from_be_bytes([b[0], b[1]])), 4),
            None => return Ok(None),
        },
        127 => match buf.get(2..10) {
            Some(b) => {
                let n = u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
                if n >> 63 != 0 {
                    return Err(refuse("payload length with the top bit set"));
                }
                (usize::try_from(n).unwrap_or(usize::MAX), 10)
            }
            None => return Ok(None),
        },
        n => (n, 2),
    };
    let mask = if masked {
        let Some(k) = buf.get(at..at + 4) else { return Ok(None) };
        at += 4;
        Some([k[0], k[1], k[2], k[3]])
    } else {
        None
    };
    Ok(Some(Header { fin: b0 & 0x80 != 0, opcode: b0 & 0x0F, mask, len, header_len: at }))
}

/// XORs `data` with the masking key (masking and unmasking are the same).
pub fn apply_mask(data: &mut [u8], key: [u8; 4]) {
    let word = u32::from_ne_bytes(key);
    let mut chunks = data.chunks_exact_mut(4);
    for c in &mut chunks {
        let v = u32::from_ne_bytes([c[0], c[1], c[2], c[3]]) ^ word;
        c.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= key[i];
    }
}

impl Decoder {
    /// A decoder for `role`'s end; messages over `max_message` bytes are refused with
    /// LIMIT_EXCEEDED as soon as a frame header announces them.
    pub fn new(role: Role, max_message: usize) -> Self {
        Decoder { role, max_message, partial: None }
    }

    /// How many bytes the frame at the front of `buf` needs in all, once its header is
    /// complete (a reader can reserve that much at once). None while the header is
    /// incomplete or malformed.
    pub fn frame_len(buf: &[u8]) -> Option<usize> {
        header(buf).ok().flatten().map(|h| h.header_len.saturating_add(h.len))
    }

    /// Bytes held for a fragmented message that is not complete yet.
    pub fn partial_len(&self) -> usize {
        self.partial.as_ref().map_or(0, BytesMut::len)
    }

    /// Takes the next event from the front of `buf`, consuming its frames; `None` when
    /// `buf` holds no complete event yet (read more and call again).
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Event>, RpcError> {
        loop {
            let Some(h) = header(buf)? else { return Ok(None) };
            match (self.role, h.mask.is_some()) {
                (Role::Server, false) => return Err(refuse("a client's frame is not masked")),
                (Role::Client, true) => return Err(refuse("a server's frame is masked")),
                _ => {}
            }
            let control = h.opcode & 0x8 != 0;
            if control && (!h.fin || h.len > 125) {
                return Err(refuse("a control frame is fragmented or longer than 125 bytes"));
            }
            let held = self.partial_len();
            if !control && held.saturating_add(h.len) > self.max_message {
                return Err(RpcError::new(
                    Code::LimitExceeded,
                    format!(
                        "websocket message of more than {} bytes exceeds the hard limit of {} bytes",
                        held.saturating_add(h.len),
                        self.max_message
                    ),
                ));
            }
            if buf.len() - h.header_len < h.len {
                return Ok(None);
            }
            buf.advance(h.header_len);
            let mut payload = buf.split_to(h.len);
            if let Some(key) = h.mask {
                apply_mask(&mut payload, key);
            }
            match h.opcode {
                0x0 => {
                    let Some(partial) = self.partial.as_mut() else {
                        return Err(refuse("a continuation frame without a message to continue"));
                    };
                    partial.extend_from_slice(&payload);
                    if h.fin {
                        return Ok(self.partial.take().map(|p| Event::Message(p.freeze())));
                    }
                }
                0x1 => {
                    return Err(RpcError::new(
                        Code::InvalidArgument,
                        "text frames are not accepted: send each Cap'n Proto message as a binary frame",
                    ))
                }
                0x2 if self.partial.is_some() => {
                    return Err(refuse("a new message began before the fragmented one ended"))
                }
                0x2 if h.fin => return Ok(Some(Event::Message(payload.freeze()))),
                0x2 => self.partial = Some(payload),
                0x8 => {
                    let code = (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
                    return Ok(Some(Event::Close(code)));
                }
                0x9 => return Ok(Some(Event::Ping(payload.freeze()))),
                0xA => return Ok(Some(Event::Pong)),
                other => return Err(refuse(format!("unknown opcode {other:#x}"))),
            }
        }
    }
}

/// Appends one frame (FIN set) carrying `payload` to `out`, masked with `mask` if given
/// (a client must mask every frame with a fresh, unpredictable key; a server must not).
pub fn encode(opcode: Opcode, payload: &[u8], mask: Option<[u8; 4]>, out: &mut Vec<u8>) {
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    out.reserve(payload.len() + 14);
    out.push(0x80 | opcode as u8);
    match payload.len() {
        n @ 0..=125 => out.push(mask_bit | n as u8),
        n @ 126..=0xFFFF => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if let Some(key) = mask {
        out.extend_from_slice(&key);
        let start = out.len();
        out.extend_from_slice(payload);
        apply_mask(&mut out[start..], key);
    } else {
        out.extend_from_slice(payload);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame with first byte `b0` (FIN, reserved bits, opcode as given).
    fn frame(b0: u8, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        encode(Opcode::Binary, payload, mask, &mut v);
        v[0] = b0;
        v
    }

    const K: Option<[u8; 4]> = Some([1, 2, 3, 4]);

    fn decode_all(role: Role, wire: &[u8]) -> Result<Vec<Event>, RpcError> {
        let mut d = Decoder::new(role, 1 << 20);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        // Byte by byte: every split point must work.
        for b in wire {
            buf.extend_from_slice(&[*b]);
            while let Some(e) = d.decode(&mut buf)? {
                out.push(e);
            }
        }
        assert!(buf.is_empty(), "everything consumed");
        Ok(out)
    }

    #[test]
    fn round_trips_every_length_class_both_ways() {
        for len in [0, 1, 5, 125, 126, 1000, 0xFFFF, 0x10000, 70_000] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            for (mask, to) in [(K, Role::Server), (None, Role::Client)] {
                let mut wire = Vec::new();
                encode(Opcode::Binary, &payload, mask, &mut wire);
                let mut buf = BytesMut::from(&wire[..]);
                let got = Decoder::new(to, 1 << 20).decode(&mut buf).expect("valid");
                assert_eq!(got, Some(Event::Message(Bytes::from(payload.clone()))), "len {len}");
                assert!(buf.is_empty());
                assert_eq!(Decoder::frame_len(&wire), Some(wire.len()));
            }
        }
    }

    #[test]
    fn fragments_reassemble_around_control_frames() {
        let mut wire = frame(0x02, K, b"he");
        wire.extend(frame(0x89, K, b"p"));
        wire.extend(frame(0x00, K, b"ll"));
        wire.extend(frame(0x80, K, b"o"));
        wire.extend(frame(0x8A, K, b""));
        wire.extend(frame(0x88, K, &1000u16.to_be_bytes()));
        let got = decode_all(Role::Server, &wire).expect("valid");
        assert_eq!(
            got,
            vec![
                Event::Ping(Bytes::from_static(b"p")),
                Event::Message(Bytes::from_static(b"hello")),
                Event::Pong,
                Event::Close(Some(1000))
            ]
        );
    }

    #[test]
    fn protocol_violations_are_typed_errors() {
        let cases: Vec<(&str, Vec<u8>, Code)> = vec![
            ("unmasked from a client", frame(0x82, None, b"x"), Code::InvalidArgument),
            ("reserved bit", frame(0xC2, K, b"x"), Code::InvalidArgument),
            ("text", frame(0x81, K, b"x"), Code::InvalidArgument),
            ("lone continuation", frame(0x80, K, b"x"), Code::InvalidArgument),
            ("unknown opcode", frame(0x83, K, b"x"), Code::InvalidArgument),
            ("fragmented ping", frame(0x09, K, b"x"), Code::InvalidArgument),
            ("long ping", frame(0x89, K, &[0; 126]), Code::InvalidArgument),
            ("top length bit", vec![0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4], Code::InvalidArgument),
            ("oversize", frame(0x82, K, &[0; 2000]), Code::LimitExceeded),
            (
                "oversize in pieces",
                [frame(0x02, K, &[0; 600]), frame(0x80, K, &[0; 600])].concat(),
                Code::LimitExceeded,
            ),
            ("new message mid-fragment", [frame(0x02, K, b"a"), frame(0x82, K, b"b")].concat(), Code::InvalidArgument),
        ];
        for (name, wire, code) in cases {
            let mut d = Decoder::new(Role::Server, 1000);
            let mut buf = BytesMut::from(&wire[..]);
            let r = d.decode(&mut buf).and_then(|e| match e {
                Some(e) => Ok(Some(e)),
                None => d.decode(&mut buf),
            });
            assert_eq!(r.map_err(|e| e.code), Err(code), "{name}");
        }
        let masked_from_server = frame(0x82, K, b"x");
        let r = Decoder::new(Role::Client, 1000).decode(&mut BytesMut::from(&masked_from_server[..]));
        assert_eq!(r.map_err(|e| e.code), Err(Code::InvalidArgument));
    }

    #[test]
    fn an_oversize_frame_is_refused_from_its_header_alone() {
        let mut d = Decoder::new(Role::Server, 1000);
        let header_only = vec![0x82, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4];
        let r = d.decode(&mut BytesMut::from(&header_only[..]));
        assert_eq!(r.map_err(|e| e.code), Err(Code::LimitExceeded));
    }

    #[test]
    fn a_masked_frame_carries_its_key_and_a_masked_payload() {
        let mut a = Vec::new();
        encode(Opcode::Binary, &[0; 64], Some([9, 8, 7, 6]), &mut a);
        assert_eq!(a[..6], [0x82, 0x80 | 64, 9, 8, 7, 6]);
        assert_eq!(a[6..10], [9, 8, 7, 6], "zeros XOR the key");
    }
}
