//! Receiving messages larger than a slot whole: [`Consumer::recv_large`] and its `try_` and
//! `_timeout` forms (the fragments and their reassembly are `crate::fragment`'s), and the
//! rule that gives such a message to one group worker whole ([`message_end`]).
//!
//! The consumer's position stays at a large message's first fragment until its last one has
//! been copied out, and only then moves past the whole message: a durable subscriber that
//! dies half-way through one reads it again from its first fragment when it re-attaches,
//! never from the middle, and a worker that stops half-way leaves the whole message to the
//! worker that takes its claim over. The ring holds every fragment until then (the position
//! gates the producers), and the producer published them all at once (its batch's first
//! slot is stamped last), so the wait for the last one is a wait for the publish, not for
//! another producer.
//!
//! A group hands out claims of slots, so a message must not be cut between two claims: a
//! worker ends each claim at a message boundary ([`message_end`]), which costs a claim one
//! look at the header of its last slot (a slot the worker reads next anyway).

use super::Consumer;
use crate::barrier::Barrier;
use crate::error::RecvError;
use crate::fragment::{Assembler, Fragment, Push};
use crate::layout::slot::{SLOT_FIRST, SLOT_FRAGMENT, SLOT_LAST, SLOT_SKIPPED};
use crate::shared::Attached;
use crate::wait;
use std::time::{Duration, Instant};

/// How long a receive may wait: not at all (`try_`), or until a deadline (`None`: forever).
#[derive(Clone, Copy)]
enum Wait {
    Now,
    Until(Option<Instant>),
}

/// Whether a whole message is released as it is received, or by the caller afterwards.
#[derive(Clone, Copy, PartialEq, Eq)]
#[cfg_attr(loom, allow(dead_code))]
enum Release {
    Now,
    Later,
}

/// A message [`Consumer::recv_large`] received whole (its bytes are in the caller's buffer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Whole {
    /// Its sequence: for a message larger than a slot, its last fragment's (what a publisher
    /// confirm waits for).
    pub sequence: u64,
    /// A group worker's message that another worker may have received before: it was taken
    /// over from a worker that stopped holding it (see [`crate::Received::redelivered`]).
    pub redelivered: bool,
}

impl Consumer {
    /// The next message, whole, into `out` (replacing what it held), if one is available now.
    /// A message that fits a slot comes as from [`Consumer::try_recv`], copied into `out`; a
    /// larger one ([`crate::Producer::publish_large`]) comes once every fragment is here.
    /// Fragments of a message whose start this consumer never saw (it attached in the
    /// middle), or whose producer died before publishing all of them, are passed over. A
    /// group worker receives each message whole too: its group never cuts one between two
    /// workers' claims.
    ///
    /// # Errors
    ///
    /// [`RecvError::Empty`] if no whole message is available.
    pub fn try_recv_large(&mut self, out: &mut Vec<u8>) -> Result<Whole, RecvError> {
        self.recv_large_when(out, Wait::Now, Release::Now)
    }

    /// Like [`Consumer::try_recv_large`], waiting by the wait strategy.
    ///
    /// # Errors
    ///
    /// [`RecvError::Stopped`] only inside a handler that is being stopped.
    pub fn recv_large(&mut self, out: &mut Vec<u8>) -> Result<Whole, RecvError> {
        self.recv_large_when(out, Wait::Until(None), Release::Now)
    }

    /// Like [`Consumer::try_recv_large`], waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`RecvError::Timeout`] if no whole message arrived in time (what was copied of one is
    /// read again by the next receive).
    pub fn recv_large_timeout(&mut self, out: &mut Vec<u8>, timeout: Duration) -> Result<Whole, RecvError> {
        self.recv_large_when(out, Wait::Until(wait::deadline_after(timeout)), Release::Now)
    }

    /// [`Consumer::try_recv_large`] that keeps the message unacknowledged: the position
    /// stays at its first slot until [`Consumer::release_through`] its sequence, so that a
    /// caller that acts on it first (a responder publishes its reply) and then dies has it
    /// redelivered, as a [`crate::Received`] held past its action would be.
    #[cfg(not(loom))]
    pub(crate) fn try_recv_large_held(&mut self, out: &mut Vec<u8>) -> Result<Whole, RecvError> {
        self.recv_large_when(out, Wait::Now, Release::Later)
    }

    /// Releases every message up to and including `sequence` (the end of a message a
    /// `_held` receive returned).
    #[cfg(not(loom))]
    pub(crate) fn release_through(&mut self, sequence: u64) {
        self.release_to(sequence + 1);
    }

    fn recv_large_when(
        &mut self,
        out: &mut Vec<u8>,
        when: Wait,
        release: Release,
    ) -> Result<Whole, RecvError> {
        let mut assembler = Assembler::default();
        // The slot to look at next; the position stays at `read.next` until a message is
        // whole, or at the start of the one under way.
        let mut at = self.read.next;
        loop {
            if at >= self.read.end {
                if self.read.group.is_some() {
                    // A worker's claim is used up. Pieces of a message under way here were cut
                    // from their rest (a claim taken over from the middle of a message): they
                    // are passed over, and a new claim begins where the group has got to.
                    if assembler.under_way().is_some() {
                        assembler.reset();
                        self.release_to(at);
                    }
                    self.wait_beyond(at, when)?;
                    at = self.read.next;
                    continue;
                }
                self.wait_beyond(at, when)?;
            }
            let slots = self.att.slots();
            let header = slots.read_header(at);
            let push = if header.flags & SLOT_SKIPPED != 0 {
                self.skipped += 1;
                assembler.reset();
                Push::Dropped
            } else {
                // SAFETY: `at` is below `read.end` (published: the barrier said so) and at or
                // above the position, which is not released past it before the copy ends;
                // `len` is clamped to the payload.
                let payload = unsafe { std::slice::from_raw_parts(slots.payload(at), header.len) };
                assembler.push(out, at, Fragment::from_slot_flags(header.flags), payload)
            };
            at += 1;
            match push {
                Push::Complete => {
                    let redelivered = at - 1 < self.read.redelivered_until;
                    if release == Release::Now {
                        self.release_to(at);
                    }
                    return Ok(Whole {
                        sequence: at - 1,
                        redelivered,
                    });
                }
                // Held: the position stays at the message's first fragment.
                Push::More(_) => {}
                // Passed over: nothing below `at` is wanted again.
                Push::Dropped => self.release_to(at),
            }
        }
    }

    /// Waits (by `when`) until the slot of `at` (the next past what is known) is readable:
    /// a subscriber's barrier reaches past it, or a worker (whose claim ends at `at`) has a
    /// new claim.
    fn wait_beyond(&mut self, at: u64, when: Wait) -> Result<(), RecvError> {
        let worker = self.read.group.is_some();
        let ready = move |read: &mut super::ReadState, att: &Attached| {
            read.fill_range(att, super::MAX_LOOK) && (worker || read.end > at)
        };
        if ready(&mut self.read, &self.att) {
            return Ok(());
        }
        match when {
            Wait::Now => Err(RecvError::Empty),
            Wait::Until(deadline) => self.wait_until(deadline, ready),
        }
    }
}

/// Where a worker's claim from `from` ends, given that it may read up to `end`: `end` if a
/// message boundary lies there; else (the slot before `end` is a piece of a larger message,
/// not its last) past that message's last piece if all of it is readable, or before its
/// first piece if not, so that every message goes to one worker whole. A message that begins
/// at `from` and is not all readable yet gives `from`: nothing to claim until it is.
#[inline(always)]
pub(super) fn message_end(att: &Attached, barrier: &mut Barrier, from: u64, end: u64) -> u64 {
    if end <= from || !cuts(att.slots().read_header(end - 1).flags) {
        return end;
    }
    to_boundary(att, barrier, from, end)
}

/// Whether a claim ending after a slot with these flags cuts a message.
#[inline(always)]
fn cuts(flags: u8) -> bool {
    flags & SLOT_FRAGMENT != 0 && flags & (SLOT_LAST | SLOT_SKIPPED) == 0
}

/// [`message_end`] once the claim would cut a message.
#[cold]
#[inline(never)]
fn to_boundary(att: &Attached, barrier: &mut Barrier, from: u64, end: u64) -> u64 {
    let slots = att.slots();
    // Forward to its last piece, as far as the worker may read (and a ring's length: no
    // message is longer).
    let limit = barrier
        .available(att, end, att.shared().capacity())
        .min(from.saturating_add(att.shared().capacity()));
    for s in end..limit {
        let flags = slots.read_header(s).flags;
        if flags & SLOT_LAST != 0 && flags & SLOT_FRAGMENT != 0 {
            return s + 1;
        }
        if flags & SLOT_FRAGMENT == 0 || flags & (SLOT_FIRST | SLOT_SKIPPED) != 0 {
            // The run breaks off (its producer died publishing it): whoever reads its pieces
            // passes them over.
            return s;
        }
    }
    // Not all readable yet: back to its first piece, if the claim holds it.
    let mut first = end - 1;
    while first > from && slots.read_header(first).flags & SLOT_FIRST == 0 {
        first -= 1;
    }
    if slots.read_header(first).flags & SLOT_FIRST != 0 {
        first
    } else {
        end
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use crate::Ring;
    use crate::Start;

    /// A batch released only below a cut counts the skipped slots below it alone: those
    /// above are counted when the next receive reads them.
    #[test]
    fn a_partly_released_batch_counts_only_the_skipped_slots_it_passed() {
        let ring = Ring::builder()
            .capacity(16)
            .slot_size(64)
            .multi_producer()
            .build()
            .unwrap();
        let mut consumer = ring.subscriber("s").start(Start::Earliest).attach().unwrap();
        let mut producer = ring.producer().unwrap();
        producer.publish(b"a").unwrap();
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _claim = producer.claim_batch(2).unwrap();
            panic!("the writer dies: two skipped slots");
        }));
        assert!(panicked.is_err());
        producer.publish(b"b").unwrap();
        let batch = consumer.poll(16).unwrap();
        assert_eq!(batch.iter().count(), 2);
        batch.release_before(1);
        assert_eq!((consumer.position(), consumer.skipped()), (1, 0));
        let batch = consumer.poll(16).unwrap();
        assert_eq!(
            batch.iter().map(|m| m.to_vec()).collect::<Vec<_>>(),
            [b"b".to_vec()]
        );
        drop(batch);
        assert_eq!((consumer.position(), consumer.skipped()), (4, 2));
    }
}
