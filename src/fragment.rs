//! Messages larger than a slot: the fragments they are cut into, and their reassembly.
//!
//! [`crate::Producer::publish_large`] cuts a message into slot-sized pieces and writes them
//! into consecutive slots of one batch claim, so no other producer's message comes between
//! them and they are published together. Each slot's header says which piece it holds
//! ([`Fragment`]); an ordinary message's slot carries no fragment flag, so one ring holds both
//! kinds. The journal stage copies the flags into its records: the journal holds the same
//! pieces under the same sequences.
//!
//! Reassembly ([`Assembler`]) takes pieces in sequence order and gives a message back only
//! when it has seen every piece, first to last, with no gap. A message whose producer died
//! while publishing it (the rest of its slots skipped), or whose first piece a reader never
//! saw (it started in the middle), is dropped, never delivered in part. A large message's
//! sequence is its last fragment's: the slot whose release, or durability, completes it.

use crate::layout::slot::{SLOT_FIRST, SLOT_FRAGMENT, SLOT_FRAGMENT_MASK, SLOT_LAST};

/// Which piece of a message larger than a slot a slot (or a journal record) holds; see
/// [`crate::Producer::publish_large`] and [`crate::Consumer::recv_large`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fragment {
    /// The first piece.
    First,
    /// A piece between the first and the last.
    Middle,
    /// The last piece: the message is complete at its sequence.
    Last,
}

impl Fragment {
    /// The piece a slot header's flags name; `None` for a whole message.
    #[inline]
    pub(crate) fn from_slot_flags(flags: u8) -> Option<Fragment> {
        match flags & SLOT_FRAGMENT_MASK {
            0 => None,
            f if f & SLOT_FIRST != 0 => Some(Fragment::First),
            f if f & SLOT_LAST != 0 => Some(Fragment::Last),
            _ => Some(Fragment::Middle),
        }
    }

    /// The slot header flags that name `fragment` (what [`Fragment::from_slot_flags`] reads).
    #[inline]
    pub(crate) fn slot_flags_of(fragment: Fragment) -> u8 {
        match fragment {
            Fragment::First => SLOT_FRAGMENT | SLOT_FIRST,
            Fragment::Middle => SLOT_FRAGMENT,
            Fragment::Last => SLOT_FRAGMENT | SLOT_LAST,
        }
    }

    /// The slot header flags of piece `i` of `n` (`n` > 1).
    #[inline]
    pub(crate) fn slot_flags(i: usize, n: usize) -> u8 {
        Self::slot_flags_of(match i {
            0 => Fragment::First,
            _ if i + 1 == n => Fragment::Last,
            _ => Fragment::Middle,
        })
    }
}

/// What [`Assembler::push`] made of a piece.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Push {
    /// The buffer holds a whole message, which ends at the piece pushed.
    Complete,
    /// A message is under way, since the sequence held.
    More(u64),
    /// Nothing is held: the piece belonged to a message whose start was not seen.
    Dropped,
}

/// Puts fragments back together, into a buffer its owner lends it; see the module
/// documentation.
#[derive(Debug, Default)]
pub(crate) struct Assembler {
    /// The first sequence of the message under way, if one is.
    first: Option<u64>,
    /// The sequence its next piece must have.
    next: u64,
}

impl Assembler {
    /// The first sequence of the message under way, if one is.
    #[cfg_attr(loom, allow(dead_code))]
    #[inline]
    pub(crate) fn under_way(&self) -> Option<u64> {
        self.first
    }

    /// Drops the message under way (a gap: a skipped slot, or a jump in the sequence).
    #[inline]
    pub(crate) fn reset(&mut self) {
        self.first = None;
    }

    /// Takes the piece at `sequence` into `buf`. A whole message, or a first piece, starts
    /// over (dropping an unfinished message); any other piece must follow the last one taken.
    pub(crate) fn push(
        &mut self,
        buf: &mut Vec<u8>,
        sequence: u64,
        fragment: Option<Fragment>,
        payload: &[u8],
    ) -> Push {
        match fragment {
            None => {
                self.first = None;
                buf.clear();
                buf.extend_from_slice(payload);
                Push::Complete
            }
            Some(Fragment::First) => {
                self.first = Some(sequence);
                self.next = sequence + 1;
                buf.clear();
                buf.extend_from_slice(payload);
                Push::More(sequence)
            }
            Some(piece) => match self.first {
                Some(first) if self.next == sequence => {
                    buf.extend_from_slice(payload);
                    if piece == Fragment::Last {
                        self.first = None;
                        Push::Complete
                    } else {
                        self.next = sequence + 1;
                        Push::More(first)
                    }
                }
                _ => {
                    self.first = None;
                    Push::Dropped
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_flags_round_trip() {
        assert_eq!(Fragment::from_slot_flags(0), None);
        assert_eq!(Fragment::from_slot_flags(crate::layout::slot::SLOT_SKIPPED), None);
        let names: Vec<_> = (0..4)
            .map(|i| Fragment::from_slot_flags(Fragment::slot_flags(i, 4)))
            .collect();
        assert_eq!(
            names,
            [
                Some(Fragment::First),
                Some(Fragment::Middle),
                Some(Fragment::Middle),
                Some(Fragment::Last)
            ]
        );
        assert_eq!(
            Fragment::from_slot_flags(Fragment::slot_flags(1, 2)),
            Some(Fragment::Last)
        );
        for fragment in [Fragment::First, Fragment::Middle, Fragment::Last] {
            assert_eq!(
                Fragment::from_slot_flags(Fragment::slot_flags_of(fragment)),
                Some(fragment)
            );
        }
    }

    #[test]
    fn only_whole_runs_complete() {
        let mut a = Assembler::default();
        let mut buf = Vec::new();
        // A run from first to last.
        assert_eq!(a.push(&mut buf, 10, Some(Fragment::First), b"ab"), Push::More(10));
        assert_eq!(
            a.push(&mut buf, 11, Some(Fragment::Middle), b"cd"),
            Push::More(10)
        );
        assert_eq!(a.push(&mut buf, 12, Some(Fragment::Last), b"e"), Push::Complete);
        assert_eq!(buf, b"abcde");
        // A run whose start was not seen is dropped, piece by piece.
        assert_eq!(a.push(&mut buf, 14, Some(Fragment::Middle), b"x"), Push::Dropped);
        assert_eq!(a.push(&mut buf, 15, Some(Fragment::Last), b"y"), Push::Dropped);
        // A gap in the sequence drops the message under way.
        assert_eq!(a.push(&mut buf, 20, Some(Fragment::First), b"a"), Push::More(20));
        assert_eq!(a.push(&mut buf, 22, Some(Fragment::Last), b"b"), Push::Dropped);
        // A new first piece, or a whole message, starts over.
        assert_eq!(a.push(&mut buf, 30, Some(Fragment::First), b"a"), Push::More(30));
        assert_eq!(a.push(&mut buf, 31, Some(Fragment::First), b"q"), Push::More(31));
        assert_eq!(a.push(&mut buf, 32, None, b"whole"), Push::Complete);
        assert_eq!(buf, b"whole");
        assert_eq!(a.under_way(), None);
        // A reset drops what is under way.
        assert_eq!(a.push(&mut buf, 40, Some(Fragment::First), b"a"), Push::More(40));
        a.reset();
        assert_eq!(a.push(&mut buf, 41, Some(Fragment::Last), b"b"), Push::Dropped);
    }
}
