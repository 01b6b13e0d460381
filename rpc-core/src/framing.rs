//! Cap'n Proto message framing, as plain functions over byte slices.
//!
//! The standard stream framing (a segment table, then the segments) is used everywhere:
//! one message per WebSocket binary frame, messages back to back on TCP and in HTTP
//! batch bodies.

use crate::error::{Code, RpcError};
use capnp::message::{Builder, HeapAllocator, Reader, ReaderOptions};
use capnp::serialize::OwnedSegments;

/// The most segments a message may have (as in the reference implementation).
const MAX_SEGMENTS: usize = 512;

/// Returns the byte length of the stream-framed message at the start of `buf`, or
/// `None` when more bytes are needed to tell. A malformed segment table is an
/// INVALID_ARGUMENT error.
pub fn message_len(buf: &[u8]) -> Result<Option<usize>, RpcError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let count = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize + 1;
    if count > MAX_SEGMENTS {
        return Err(RpcError::invalid_argument(format!("malformed message: {count} segments")));
    }
    let table = (4 * (count + 1)).div_ceil(8) * 8;
    if buf.len() < 4 + 4 * count {
        return Ok(None);
    }
    let mut words: u64 = 0;
    for i in 0..count {
        let at = 4 + 4 * i;
        words += u64::from(u32::from_le_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]));
    }
    let total = table as u64 + words * 8;
    usize::try_from(total)
        .map(Some)
        .map_err(|_| RpcError::new(Code::LimitExceeded, "message length does not fit in memory"))
}

/// Decodes exactly one message from `bytes` (no trailing bytes allowed).
pub fn decode(bytes: &[u8], options: ReaderOptions) -> Result<Reader<OwnedSegments>, RpcError> {
    match message_len(bytes)? {
        Some(n) if n == bytes.len() => {}
        Some(n) if n > bytes.len() => {
            return Err(RpcError::new(
                Code::InvalidArgument,
                format!("truncated message: {} of {n} bytes", bytes.len()),
            ))
        }
        Some(n) => {
            return Err(RpcError::new(
                Code::InvalidArgument,
                format!("malformed message: {} trailing bytes", bytes.len() - n),
            ))
        }
        None => return Err(RpcError::invalid_argument("truncated message header")),
    }
    capnp::serialize::read_message(&mut &bytes[..], options)
        .map_err(|e| RpcError::invalid_argument(format!("malformed message: {e}")))
}

/// Splits a body of back-to-back messages into one slice per message.
pub fn split(mut body: &[u8]) -> Result<Vec<&[u8]>, RpcError> {
    let mut out = Vec::new();
    while !body.is_empty() {
        match message_len(body)? {
            Some(n) if n <= body.len() => {
                let (head, tail) = body.split_at(n);
                out.push(head);
                body = tail;
            }
            _ => return Err(RpcError::invalid_argument("truncated message in body")),
        }
    }
    Ok(out)
}

/// Encodes a message with stream framing.
pub fn encode(message: &Builder<HeapAllocator>) -> Vec<u8> {
    capnp::serialize::write_message_to_words(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(text: &str) -> Vec<u8> {
        let mut b = Builder::new_default();
        b.set_root(text).expect("set text");
        encode(&b)
    }

    #[test]
    fn lengths_decode_and_split_agree() {
        let a = sample("hello");
        let b = sample(&"x".repeat(100));
        assert_eq!(message_len(&a).unwrap(), Some(a.len()));
        assert_eq!(message_len(&a[..3]).unwrap(), None);
        let mut body = a.clone();
        body.extend_from_slice(&b);
        let parts = split(&body).unwrap();
        assert_eq!(parts, vec![&a[..], &b[..]]);
        let m = decode(&b, ReaderOptions::new()).unwrap();
        assert_eq!(m.get_root::<capnp::text::Reader>().unwrap().to_str().unwrap().len(), 100);
    }

    #[test]
    fn garbage_and_truncation_are_invalid_argument() {
        let a = sample("hello");
        assert_eq!(decode(&a[..a.len() - 1], ReaderOptions::new()).err().map(|e| e.code), Some(Code::InvalidArgument));
        let mut long = a.clone();
        long.push(0);
        assert_eq!(decode(&long, ReaderOptions::new()).err().map(|e| e.code), Some(Code::InvalidArgument));
        assert_eq!(message_len(&[0xff, 0xff, 0xff, 0xff]).unwrap_err().code, Code::InvalidArgument);
        assert_eq!(split(&a[..a.len() - 2]).unwrap_err().code, Code::InvalidArgument);
    }
}
