//! Receiving messages larger than a slot whole: [`Consumer::recv_large`] and its `try_` and
//! `_timeout` forms (the fragments and their reassembly are `crate::fragment`'s).
//!
//! The consumer's position stays at a large message's first fragment until its last one has
//! been copied out, and only then moves past the whole message: a durable subscriber that
//! dies half-way through one reads it again from its first fragment when it re-attaches,
//! never from the middle. The ring holds every fragment until then (the position gates the
//! producers), and the producer published them all at once, so the wait for the last one
//! is a wait for the publish, not for another producer.

use super::Consumer;
use crate::error::RecvError;
use crate::fragment::{Assembler, Fragment, Push};
use crate::layout::slot::SLOT_SKIPPED;
use crate::wait;
use std::time::{Duration, Instant};

/// How long a receive may wait: not at all (`try_`), or until a deadline (`None`: forever).
#[derive(Clone, Copy)]
enum Wait {
    Now,
    Until(Option<Instant>),
}

impl Consumer {
    /// The next message, whole, into `out` (replacing what it held), if one is available now.
    /// Returns the message's sequence: for a large message, its last fragment's. A message
    /// that fits a slot comes as from [`Consumer::try_recv`], copied into `out`; a larger one
    /// ([`crate::Producer::publish_large`]) comes once every fragment is here. Fragments of a
    /// message whose start this subscriber never saw (it attached in the middle), or whose
    /// producer died before publishing all of them, are passed over.
    ///
    /// # Errors
    ///
    /// [`RecvError::Empty`] if no whole message is available; [`RecvError::NotSubscriber`]
    /// for a group worker (its group hands out slots, not messages).
    pub fn try_recv_large(&mut self, out: &mut Vec<u8>) -> Result<u64, RecvError> {
        self.recv_large_when(out, Wait::Now)
    }

    /// Like [`Consumer::try_recv_large`], waiting by the wait strategy.
    ///
    /// # Errors
    ///
    /// [`RecvError::NotSubscriber`]; [`RecvError::Stopped`] only inside a handler that is
    /// being stopped.
    pub fn recv_large(&mut self, out: &mut Vec<u8>) -> Result<u64, RecvError> {
        self.recv_large_when(out, Wait::Until(None))
    }

    /// Like [`Consumer::try_recv_large`], waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`RecvError::Timeout`] if no whole message arrived in time (what was copied of one is
    /// read again by the next receive); [`RecvError::NotSubscriber`].
    pub fn recv_large_timeout(&mut self, out: &mut Vec<u8>, timeout: Duration) -> Result<u64, RecvError> {
        self.recv_large_when(out, Wait::Until(wait::deadline_after(timeout)))
    }

    fn recv_large_when(&mut self, out: &mut Vec<u8>, when: Wait) -> Result<u64, RecvError> {
        if self.read.group.is_some() {
            return Err(RecvError::NotSubscriber);
        }
        let mut assembler = Assembler::default();
        // The slot to look at next; the position stays at `read.next` until a message is
        // whole, or at the start of the one under way.
        let mut at = self.read.next;
        loop {
            if at >= self.read.end {
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
                    self.release_to(at);
                    return Ok(at - 1);
                }
                // Held: the position stays at the message's first fragment.
                Push::More(_) => {}
                // Passed over: nothing below `at` is wanted again.
                Push::Dropped => self.release_to(at),
            }
        }
    }

    /// Waits (by `when`) until the slot of `at` (the next past what is known) is readable.
    fn wait_beyond(&mut self, at: u64, when: Wait) -> Result<(), RecvError> {
        let ready = move |read: &mut super::ReadState, att: &crate::shared::Attached| {
            read.fill_range(att, super::MAX_LOOK);
            read.end > at
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
