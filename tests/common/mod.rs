//! Helpers shared by the integration tests: verifiable payloads.
#![allow(dead_code)]

pub mod cli;

/// A message that names its producer and its number, with a length that varies and a body
/// derived from both, so a consumer can check every byte.
pub fn payload(producer: u32, n: u64, max_len: usize) -> Vec<u8> {
    let len = 12 + (n as usize * 7 + producer as usize) % (max_len - 11);
    let mut v = Vec::with_capacity(len);
    v.extend_from_slice(&producer.to_le_bytes());
    v.extend_from_slice(&n.to_le_bytes());
    let mut x = (n ^ ((producer as u64) << 40)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    while v.len() < len {
        x ^= x >> 29;
        x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        v.push(x as u8);
    }
    v
}

/// Checks a payload made by [`payload`]; returns (producer, n).
pub fn check(bytes: &[u8], max_len: usize) -> (u32, u64) {
    assert!(bytes.len() >= 12, "message too short: {} bytes", bytes.len());
    let producer = u32::from_le_bytes(bytes[..4].try_into().unwrap());
    let n = u64::from_le_bytes(bytes[4..12].try_into().unwrap());
    assert_eq!(
        bytes,
        &payload(producer, n, max_len)[..],
        "corrupt message {producer}/{n}"
    );
    (producer, n)
}
