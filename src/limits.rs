//! The limits of a ring, each one checked where it applies and reported as a typed error.
//!
//! They follow from the layout: the masks of the consumer table are one 64-bit word, a slot's
//! length field is 24 bits, a stamp is the low 32 bits of a sequence, and a sequence never
//! wraps.

/// The largest sequence. A ring refuses to start above it and refuses claims that would pass
/// it ([`crate::PublishError::Exhausted`]), so `sequence + capacity` never overflows: at a
/// billion messages a second it would take 292 years to get there from zero.
pub const MAX_SEQUENCE: u64 = 1 << 63;

/// Largest capacity (slots). Keeps a lap far inside the 32-bit stamp.
pub const MAX_CAPACITY: u64 = 1 << 30;

/// Bytes of slot header before the payload (none in a fixed-size ring).
pub const SLOT_HEADER: usize = 8;

/// Smallest slot: the header and one u64 of payload.
pub const MIN_SLOT_SIZE: usize = SLOT_HEADER + 8;

/// Largest slot: the payload length field is 24 bits.
pub const MAX_SLOT_SIZE: usize = SLOT_HEADER + (1 << 24) - 8;

/// Smallest message of a fixed-size ring (whose slots have no header): one u64.
pub const MIN_FIXED_SIZE: usize = 8;

/// Most consumer table entries a ring can have (the table's masks are one word). A group
/// takes one entry, and each of its workers one more.
pub const MAX_CONSUMERS: usize = 64;

/// Most multi-producer handles a ring can have at once.
pub const MAX_PRODUCERS: usize = 32;

/// Most dependencies one consumer or group may declare.
pub const MAX_DEPENDENCIES: usize = 8;

/// Longest consumer or group name, in bytes of UTF-8.
pub const MAX_NAME_LEN: usize = 64;

/// Longest topic name (a ring's name in a ring directory), in bytes.
pub const MAX_TOPIC_NAME_LEN: usize = 200;

// `sequence + 2 * capacity` never overflows, and a lap fits the 32-bit stamp with room to
// tell two laps apart.
const _: () = assert!(MAX_SEQUENCE.checked_add(2 * MAX_CAPACITY).is_some());
const _: () = assert!(MAX_CAPACITY < 1 << 31);
