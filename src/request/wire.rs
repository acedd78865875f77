//! The bytes of requests and replies in their rings, and the clock their deadlines use.
//!
//! A request's slot holds a 24-byte header, the reply address, then the payload:
//!
//! ```text
//! 0..8    id (the requester's correlation id, from 1)
//! 8..16   deadline: CLOCK_MONOTONIC nanoseconds, 0 for none
//! 16..18  REQUEST_MAGIC
//! 18..20  length of the reply address
//! 20..24  zero
//! 24..    the reply address (a reply ring's name), then the payload
//! ```
//!
//! A reply's slot holds a 16-byte header, then the payload:
//!
//! ```text
//! 0..8    id of the request it answers
//! 8..10   REPLY_MAGIC
//! 10      flags (REPLY_REDELIVERED)
//! 11..16  zero
//! ```
//!
//! Little-endian throughout. Both sides parse what they read as untrusted: anything else in
//! the rings (a foreign producer, a peer writing garbage) is counted as malformed and passed
//! over, never a panic.

/// Bytes of a request's header before its reply address.
pub(crate) const REQUEST_HEADER: usize = 24;
/// Bytes of a reply's header before its payload.
pub(crate) const REPLY_HEADER: usize = 16;
const REQUEST_MAGIC: u16 = 0x5152; // "RQ"
const REPLY_MAGIC: u16 = 0x5052; // "RP"
/// Reply flag: the request had been redelivered (its first responder stopped holding it).
pub(crate) const REPLY_REDELIVERED: u8 = 1;

/// The fields of a request's header, as written and as parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RequestHeader {
    pub id: u64,
    pub deadline_ns: u64,
}

impl RequestHeader {
    /// The deadline, if the request has one.
    pub(crate) fn deadline(&self) -> Option<u64> {
        (self.deadline_ns != 0).then_some(self.deadline_ns)
    }
}

/// The time from now until `deadline_ns` (CLOCK_MONOTONIC), zero once it passed.
pub(crate) fn time_until(deadline_ns: u64) -> std::time::Duration {
    std::time::Duration::from_nanos(deadline_ns.saturating_sub(monotonic_ns()))
}

/// Writes a request into `slot`; returns its length. The caller checked that it fits.
pub(crate) fn write_request(slot: &mut [u8], header: RequestHeader, address: &str, payload: &[u8]) -> usize {
    let a = address.len();
    let len = REQUEST_HEADER + a + payload.len();
    slot[0..8].copy_from_slice(&header.id.to_le_bytes());
    slot[8..16].copy_from_slice(&header.deadline_ns.to_le_bytes());
    slot[16..18].copy_from_slice(&REQUEST_MAGIC.to_le_bytes());
    slot[18..20].copy_from_slice(&(a as u16).to_le_bytes());
    slot[20..24].fill(0);
    slot[REQUEST_HEADER..REQUEST_HEADER + a].copy_from_slice(address.as_bytes());
    slot[REQUEST_HEADER + a..len].copy_from_slice(payload);
    len
}

/// Parses a request: (header, reply address, payload), or `None` if `bytes` is not one.
pub(crate) fn parse_request(bytes: &[u8]) -> Option<(RequestHeader, &str, &[u8])> {
    let head = bytes.get(..REQUEST_HEADER)?;
    if u16::from_le_bytes([head[16], head[17]]) != REQUEST_MAGIC {
        return None;
    }
    let a = usize::from(u16::from_le_bytes([head[18], head[19]]));
    let address = std::str::from_utf8(bytes.get(REQUEST_HEADER..REQUEST_HEADER + a)?).ok()?;
    let header = RequestHeader {
        id: u64::from_le_bytes(head[0..8].try_into().ok()?),
        deadline_ns: u64::from_le_bytes(head[8..16].try_into().ok()?),
    };
    (header.id != 0).then_some((header, address, &bytes[REQUEST_HEADER + a..]))
}

/// Writes a reply's header into `slot` (whose payload follows it); returns the message's
/// length.
pub(crate) fn write_reply(slot: &mut [u8], id: u64, flags: u8, payload: &[u8]) -> usize {
    slot[0..8].copy_from_slice(&id.to_le_bytes());
    slot[8..10].copy_from_slice(&REPLY_MAGIC.to_le_bytes());
    slot[10] = flags;
    slot[11..REPLY_HEADER].fill(0);
    slot[REPLY_HEADER..REPLY_HEADER + payload.len()].copy_from_slice(payload);
    REPLY_HEADER + payload.len()
}

/// Parses a reply: (id, flags, payload), or `None` if `bytes` is not one.
pub(crate) fn parse_reply(bytes: &[u8]) -> Option<(u64, u8, &[u8])> {
    let head = bytes.get(..REPLY_HEADER)?;
    if u16::from_le_bytes([head[8], head[9]]) != REPLY_MAGIC {
        return None;
    }
    let id = u64::from_le_bytes(head[0..8].try_into().ok()?);
    (id != 0).then_some((id, head[10], &bytes[REPLY_HEADER..]))
}

pub(crate) use crate::wait::monotonic_ns;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_reads_back_as_written() {
        let mut slot = [0xAAu8; 128];
        let header = RequestHeader {
            id: 7,
            deadline_ns: 99,
        };
        let len = write_request(&mut slot, header, "svc.reply.1", b"ping");
        assert_eq!(
            parse_request(&slot[..len]),
            Some((header, "svc.reply.1", &b"ping"[..]))
        );
    }

    #[test]
    fn a_reply_reads_back_as_written() {
        let mut slot = [0xAAu8; 64];
        let len = write_reply(&mut slot, 9, REPLY_REDELIVERED, b"pong");
        assert_eq!(
            parse_reply(&slot[..len]),
            Some((9, REPLY_REDELIVERED, &b"pong"[..]))
        );
    }

    #[test]
    fn foreign_and_truncated_bytes_are_not_messages() {
        let mut slot = [0u8; 64];
        let len = write_request(
            &mut slot,
            RequestHeader {
                id: 1,
                deadline_ns: 0,
            },
            "abc",
            b"x",
        );
        for cut in 0..len - 2 {
            // Cut inside the header or the address: never a request.
            if cut < REQUEST_HEADER + 3 {
                assert_eq!(parse_request(&slot[..cut]), None, "cut at {cut}");
            }
        }
        assert_eq!(parse_request(b"hello, this is not a request at all"), None);
        assert_eq!(parse_reply(b"hello, not a reply"), None);
        let mut zero_id = [0u8; 32];
        let len = write_reply(&mut zero_id, 0, 0, b"");
        assert_eq!(parse_reply(&zero_id[..len]), None, "id 0 is never sent");
        let mut bad_utf8 = [0u8; 64];
        let len = write_request(
            &mut bad_utf8,
            RequestHeader {
                id: 1,
                deadline_ns: 0,
            },
            "ab",
            b"",
        );
        bad_utf8[REQUEST_HEADER] = 0xff;
        assert_eq!(parse_request(&bad_utf8[..len]), None);
    }

    #[test]
    fn the_monotonic_clock_moves_forward() {
        let a = monotonic_ns();
        let b = monotonic_ns();
        assert!(a > 0 && b >= a);
    }
}
