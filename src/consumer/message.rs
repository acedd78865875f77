//! What consumers receive: [`Received`] (one message from `recv`, released when it drops),
//! [`Batch`] (the messages of one poll, released together) and [`Message`] (one message of a
//! batch or of a handler's call: a borrowed view that releases nothing).

use super::Consumer;
use crate::error::TypeError;
use crate::fragment::Fragment;
use crate::layout::slot::{SlotHeader, SLOT_SKIPPED};
use crate::shared::Shared;
use crate::storage::{ReadTrack, Slots};
use std::fmt;
use std::ops::{Deref, Range};

/// One received message; the consumer releases it (acknowledges it) when this drops.
///
/// Derefs to the payload bytes.
pub struct Received<'a> {
    consumer: &'a mut Consumer,
    sequence: u64,
    data: *const u8,
    len: usize,
    /// The slot header's flags.
    flags: u8,
    /// Loom's read tracking; ended before the release in `drop`.
    track: ReadTrack,
}

impl fmt::Debug for Received<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Received")
            .field("sequence", &self.sequence)
            .field("len", &self.len)
            .finish()
    }
}

impl<'a> Received<'a> {
    /// The message at the consumer's `next`, whose header `skip_to_message` returned.
    #[inline(always)]
    pub(super) fn new(consumer: &'a mut Consumer, header: SlotHeader) -> Self {
        let sequence = consumer.read.next;
        let shared = consumer.att.shared();
        let track = shared
            .region
            .track_read(crate::atomic::slot_index(sequence, shared.capacity()));
        let data = consumer.att.slots().payload(sequence);
        Received {
            consumer,
            sequence,
            data,
            len: header.len,
            flags: header.flags,
            track,
        }
    }

    /// The message's sequence.
    #[inline]
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    /// Whether this message was delivered before, to a worker of the group that stopped
    /// (died, or detached) without acknowledging it: process it idempotently. Always false
    /// for subscribers.
    #[inline]
    pub fn redelivered(&self) -> bool {
        self.sequence < self.consumer.read.redelivered_until
    }

    /// Which piece of a message larger than a slot this is ([`crate::Producer::publish_large`]);
    /// `None` for a whole message. [`Consumer::recv_large`] puts the pieces together.
    #[inline]
    pub fn fragment(&self) -> Option<Fragment> {
        Fragment::from_slot_flags(self.flags)
    }

    /// Copies the payload out as a `T`.
    ///
    /// # Errors
    ///
    /// [`TypeError::Mismatch`] if the message is shorter than `T`.
    #[inline]
    pub fn value<T: bytemuck::AnyBitPattern>(&self) -> Result<T, TypeError> {
        read_value(self)
    }

    /// Gives the message back unreleased: the consumer's position stays at it and its next
    /// receive starts there again (for a caller that finds a fragment and turns to
    /// [`Consumer::recv_large`] for the whole message).
    #[cfg(not(loom))]
    pub(crate) fn put_back(self) {
        let mut this = std::mem::ManuallyDrop::new(self);
        this.track.end();
    }
}

impl Deref for Received<'_> {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        // SAFETY: the slot holding `sequence` is published (the consumer's barrier said so)
        // and cannot be reused before this guard releases it on drop (the consumer's position
        // gates producers); `len` was clamped to the payload capacity.
        unsafe { std::slice::from_raw_parts(self.data, self.len) }
    }
}

impl Drop for Received<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        // The read ends before the release lets a producer reuse the slot.
        self.track.end();
        let upto = self.sequence + 1;
        self.consumer.release_to(upto);
    }
}

#[inline]
fn read_value<T: bytemuck::AnyBitPattern>(bytes: &[u8]) -> Result<T, TypeError> {
    let size = std::mem::size_of::<T>();
    if bytes.len() < size {
        return Err(TypeError::Mismatch {
            size,
            align: std::mem::align_of::<T>(),
            capacity: bytes.len(),
        });
    }
    Ok(bytemuck::pod_read_unaligned(&bytes[..size]))
}

/// The messages of one poll; released together, with one store, when this drops.
pub struct Batch<'a> {
    consumer: &'a mut Consumer,
    range: Range<u64>,
    /// Skipped slots the iterators passed over (the highest count: iterating twice does not
    /// count twice).
    skipped: std::cell::Cell<u64>,
}

impl fmt::Debug for Batch<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batch").field("range", &self.range).finish()
    }
}

impl<'a> Batch<'a> {
    /// Up to `max` of the consumer's known messages.
    #[inline]
    pub(super) fn new(consumer: &'a mut Consumer, max: u64) -> Self {
        let start = consumer.read.next;
        let end = consumer.read.end.min(start.saturating_add(max));
        Batch {
            consumer,
            range: start..end,
            skipped: std::cell::Cell::new(0),
        }
    }

    /// The sequences this batch covers (skipped slots included).
    #[inline]
    pub fn sequences(&self) -> Range<u64> {
        self.range.clone()
    }

    /// Whether the batch covers no sequence.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.range.is_empty()
    }

    /// A fixed-size ring's batch as values of `T`, in place: the messages in sequence order,
    /// in two slices because the batch may wrap around the ring's end (the second is empty
    /// when it does not). No copy and no per-message work: the fastest way to read a batch.
    ///
    /// A fixed-size ring has no skipped slots. For a group worker, the batch's first messages
    /// may be redeliveries: [`Message::redelivered`] through [`Batch::iter`] tells which.
    ///
    /// ```
    /// use ringmq::{Ring, Start, TypedProducer};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let ring = Ring::builder().capacity(8).fixed_size(8).build()?;
    /// let mut consumer = ring.subscriber("sum").start(Start::Earliest).attach()?;
    /// let mut producer = TypedProducer::<u64>::new(ring.producer()?)?;
    /// producer.try_publish_slice(&[1, 2, 3])?;
    /// let batch = consumer.try_poll(64);
    /// let (a, b) = batch.as_slices::<u64>()?;
    /// assert_eq!(a.iter().chain(b).sum::<u64>(), 6);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`TypeError::NotFixedSizeOf`] if the ring is not fixed-size, its messages are not
    /// `size_of::<T>()` bytes, or its slots are not aligned for `T` (only a `T` aligned to more
    /// than 128 bytes).
    #[inline]
    pub fn as_slices<T: bytemuck::AnyBitPattern>(&self) -> Result<(&[T], &[T]), TypeError> {
        let slots = self.consumer.att.slots();
        let size = std::mem::size_of::<T>();
        let mismatch = || TypeError::NotFixedSizeOf {
            size,
            align: std::mem::align_of::<T>(),
        };
        if !slots.fixed() || slots.payload_capacity() != size {
            return Err(mismatch());
        }
        let count = self.range.end - self.range.start;
        let first = slots.before_wrap(self.range.start, count);
        let view = |from: u64, n: u64| -> Result<&[T], TypeError> {
            if n == 0 {
                // Not a cast: an empty byte slice's dangling address need not be aligned for T.
                return Ok(&[]);
            }
            // SAFETY: a fixed-size ring's slots are its payloads, back to back from the first
            // slot, so the `n` slots from `from` (not past the ring's end: `first`) are one
            // run of `n * size` bytes; they are published (the batch came from the barrier)
            // and not released before this batch, which the returned slices borrow, drops.
            let bytes = unsafe { std::slice::from_raw_parts(slots.payload(from), n as usize * size) };
            bytemuck::try_cast_slice(bytes).map_err(|_| mismatch())
        };
        Ok((
            view(self.range.start, first)?,
            view(self.range.start + first, count - first)?,
        ))
    }

    /// The messages, in sequence order, skipped slots left out.
    #[inline]
    pub fn iter(&self) -> BatchIter<'_> {
        BatchIter {
            shared: self.consumer.att.shared(),
            slots: self.consumer.att.slots(),
            range: self.range.clone(),
            skipped: 0,
            total: &self.skipped,
            redelivered_until: self.consumer.read.redelivered_until,
        }
    }
}

impl<'b> IntoIterator for &'b Batch<'_> {
    type Item = Message<'b>;
    type IntoIter = BatchIter<'b>;

    #[inline]
    fn into_iter(self) -> BatchIter<'b> {
        self.iter()
    }
}

impl Batch<'_> {
    /// Ends the batch without releasing it: the consumer reads on from its end, but its
    /// position (what gates the producers) stays where it was, for whoever publishes it
    /// later through a [`super::PositionHandle`] (the journal stage, once a sync has made the
    /// batch durable).
    #[cfg(not(loom))]
    pub(crate) fn keep(self) {
        let mut this = std::mem::ManuallyDrop::new(self);
        this.consumer.skipped += this.skipped.get();
        this.consumer.read.next = this.range.end;
    }
}

impl Batch<'_> {
    /// Releases only the sequences below `upto` (a large message from `upto` on is not yet
    /// whole): the next receive starts there again.
    #[cfg(not(loom))]
    pub(crate) fn release_before(self, upto: u64) {
        let mut this = std::mem::ManuallyDrop::new(self);
        let upto = upto.clamp(this.range.start, this.range.end);
        // Only the skipped slots below the cut are passed: those above it are read (and
        // counted) again by the next receive.
        let slots = this.consumer.att.slots();
        let passed = (this.range.start..upto)
            .filter(|&s| slots.read_header(s).flags & SLOT_SKIPPED != 0)
            .count() as u64;
        this.consumer.skipped += passed;
        this.consumer.release_to(upto);
    }
}

impl Drop for Batch<'_> {
    #[inline]
    fn drop(&mut self) {
        if self.range.is_empty() {
            return;
        }
        self.consumer.skipped += self.skipped.get();
        self.consumer.release_to(self.range.end);
    }
}

/// Iterator over the messages of a [`Batch`].
pub struct BatchIter<'b> {
    shared: &'b Shared,
    /// The slot array, held by value so the loop keeps it in registers.
    slots: Slots<'b>,
    range: Range<u64>,
    skipped: u64,
    total: &'b std::cell::Cell<u64>,
    redelivered_until: u64,
}

impl fmt::Debug for BatchIter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchIter").field("range", &self.range).finish()
    }
}

impl<'b> Iterator for BatchIter<'b> {
    type Item = Message<'b>;

    #[inline]
    fn next(&mut self) -> Option<Message<'b>> {
        let shared = self.shared;
        let slots = self.slots;
        if slots.fixed() {
            // A fixed-size ring has no headers to read and no skipped slots (one producer,
            // which never skips): every message is the whole payload. Kept apart so a loop
            // over it holds only the range and the slot array: the general loop's skip
            // counters spill a caller's loop state to the stack (the `perf/` spsc64 scenario
            // guards this).
            let sequence = self.range.next()?;
            let track = shared
                .region
                .track_read(crate::atomic::slot_index(sequence, shared.capacity()));
            // SAFETY: published (the batch came from the barrier) and not released until the
            // batch that `'b` borrows drops; a fixed-size slot is its payload, all of it.
            let data =
                unsafe { std::slice::from_raw_parts(slots.payload(sequence), slots.payload_capacity()) };
            return Some(Message {
                sequence,
                data,
                flags: 0,
                redelivered: sequence < self.redelivered_until,
                _track: track,
            });
        }
        for sequence in self.range.by_ref() {
            let header = slots.read_header(sequence);
            if header.flags & SLOT_SKIPPED != 0 {
                self.skipped += 1;
                self.total.set(self.total.get().max(self.skipped));
                continue;
            }
            let track = shared
                .region
                .track_read(crate::atomic::slot_index(sequence, shared.capacity()));
            // SAFETY: as in `Received::deref`: published, not released until the batch that
            // `'b` borrows drops, and `len` is clamped to the payload.
            let data = unsafe { std::slice::from_raw_parts(slots.payload(sequence), header.len) };
            return Some(Message {
                sequence,
                data,
                flags: header.flags,
                redelivered: sequence < self.redelivered_until,
                _track: track,
            });
        }
        None
    }
}

/// One message of a [`Batch`], or handed to a handler: a view of its slot, valid while the
/// batch is. Derefs to the payload bytes.
pub struct Message<'a> {
    sequence: u64,
    data: &'a [u8],
    /// The slot header's flags.
    flags: u8,
    redelivered: bool,
    _track: ReadTrack,
}

impl fmt::Debug for Message<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("sequence", &self.sequence)
            .field("len", &self.data.len())
            .finish()
    }
}

impl<'a> Message<'a> {
    /// The message's sequence.
    #[inline]
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    /// Whether this message was delivered before; see [`Received::redelivered`].
    #[inline]
    pub fn redelivered(&self) -> bool {
        self.redelivered
    }

    /// Which piece of a message larger than a slot this is; see [`Received::fragment`].
    #[inline]
    pub fn fragment(&self) -> Option<Fragment> {
        Fragment::from_slot_flags(self.flags)
    }

    /// The payload bytes, for the batch's lifetime.
    #[inline]
    pub fn bytes(&self) -> &'a [u8] {
        self.data
    }

    /// Copies the payload out as a `T`.
    ///
    /// # Errors
    ///
    /// [`TypeError::Mismatch`] if the message is shorter than `T`.
    #[inline]
    pub fn value<T: bytemuck::AnyBitPattern>(&self) -> Result<T, TypeError> {
        read_value(self.data)
    }
}

impl Deref for Message<'_> {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        self.data
    }
}
