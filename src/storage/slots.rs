//! The slot array as a value: its base address and geometry copied out of the layout, so a
//! loop over many slots keeps them in registers. Through `&Shared` the compiler reloads every
//! field for every slot, because a payload written through a raw pointer might, for all it
//! knows, alias them.
//!
//! A [`SlotArray`] (and a [`KeptWord`], the address of one sequence word) is plain data; it is
//! only usable as [`Slots`] together with the [`Region`] it came from. `shared.rs` pairs the
//! two in a handle's `Attached`, which is the only place that turns kept addresses back into
//! references. Under loom the words are loom objects kept in the region, and the addresses
//! are replaced by offsets into it.

use super::Region;
use crate::atomic::{AtomicSequence, Word};
use crate::layout::slot::{stamp, SlotHeader};
use crate::layout::Layout;

/// The slot array's base address and geometry.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SlotArray {
    /// The first slot.
    #[cfg(not(loom))]
    base: *mut u8,
    /// The first slot's offset in the region.
    #[cfg(loom)]
    offset: usize,
    mask: u64,
    slot_size: usize,
    /// Bytes before the payload: the slot header, or 0 in a fixed-size ring.
    header_len: usize,
    payload_capacity: usize,
}

// SAFETY: the pointer is an address in a ring's region, dereferenced only through `Slots`,
// which borrows that region (`Slots::new`'s contract); every shared access through it follows
// the ring's protocol, as for `Region`.
unsafe impl Send for SlotArray {}
// SAFETY: as for `Send`.
unsafe impl Sync for SlotArray {}

impl SlotArray {
    /// The slot array of the ring laid out by `layout` in `region`.
    pub(crate) fn new(region: &Region, layout: &Layout) -> Self {
        let area = layout.index_mask as usize * layout.params.slot_size + layout.params.slot_size;
        assert!(
            layout.slots_offset + area <= region.len(),
            "ringmq bug: a slot area past the region"
        );
        SlotArray {
            // SAFETY: `slots_offset + area <= region.len()`, checked above.
            #[cfg(not(loom))]
            base: unsafe { region.bytes_unchecked(layout.slots_offset, area) },
            #[cfg(loom)]
            offset: layout.slots_offset,
            mask: layout.index_mask,
            slot_size: layout.params.slot_size,
            header_len: layout.header_len(),
            payload_capacity: layout.payload_capacity(),
        }
    }

    /// The number of slots.
    #[inline]
    pub(crate) fn capacity(&self) -> u64 {
        self.mask + 1
    }
}

/// The address of one sequence word of a region (a cursor, a consumer's position), kept by
/// the handle that stores to it, so that storing computes and checks no offset.
#[derive(Clone, Copy, Debug)]
pub(crate) struct KeptWord {
    #[cfg(not(loom))]
    word: *const AtomicSequence,
    #[cfg(loom)]
    offset: usize,
}

// SAFETY: as for `SlotArray`: an address in a ring's region, dereferenced only through
// `KeptWord::get`, whose callers pass that region; every access to the word is atomic.
unsafe impl Send for KeptWord {}
// SAFETY: as for `Send`.
unsafe impl Sync for KeptWord {}

impl KeptWord {
    /// The sequence word at `offset` of `region`.
    pub(crate) fn new(region: &Region, offset: usize) -> Self {
        let word = region.sequence(offset);
        #[cfg(loom)]
        let _ = word;
        KeptWord {
            #[cfg(not(loom))]
            word,
            #[cfg(loom)]
            offset,
        }
    }

    /// The word, without the offset check.
    ///
    /// # Safety
    ///
    /// - `self` came from [`KeptWord::new`] with this `region`.
    #[inline]
    pub(crate) unsafe fn get<'a>(&self, region: &'a Region) -> &'a AtomicSequence {
        #[cfg(loom)]
        return region.sequence(self.offset);
        #[cfg(not(loom))]
        {
            let _ = region;
            // SAFETY: `word` points at an 8-aligned sequence word of `region` (caller's
            // contract), which lives for `'a`; `AtomicSequence` is `repr(transparent)` over
            // `AtomicU64`, and every access to the word is atomic.
            unsafe { &*self.word }
        }
    }
}

/// A [`SlotArray`] for the duration of a borrow of its region.
#[derive(Clone, Copy)]
pub(crate) struct Slots<'a> {
    #[cfg(loom)]
    region: &'a Region,
    array: SlotArray,
    _region: std::marker::PhantomData<&'a Region>,
}

impl<'a> Slots<'a> {
    /// The slots of `array` in `region`.
    ///
    /// # Safety
    ///
    /// - `array` came from [`SlotArray::new`] with this `region`.
    #[inline]
    pub(crate) unsafe fn new(array: SlotArray, region: &'a Region) -> Self {
        #[cfg(not(loom))]
        let _ = region;
        Slots {
            #[cfg(loom)]
            region,
            array,
            _region: std::marker::PhantomData,
        }
    }

    /// The header word of the slot that holds `sequence` (not for fixed-size rings, where it
    /// is the payload's first word).
    #[inline]
    pub(crate) fn header(&self, sequence: u64) -> &'a Word {
        let index = (sequence & self.array.mask) as usize;
        #[cfg(loom)]
        return self.region.word(self.array.offset + index * self.array.slot_size);
        #[cfg(not(loom))]
        // SAFETY: the index is masked below the capacity, so the slot lies inside the slot
        // area `base` points to, valid for `'a` (`Slots::new`'s contract: it borrows the
        // region); slot offsets are multiples of 8 from a 128-aligned area; `Word` is
        // `repr(transparent)` over `AtomicU64` and every access to header words is atomic.
        unsafe {
            &*(self.array.base.add(index * self.array.slot_size) as *const Word)
        }
    }

    /// Pointer to the payload of the slot holding `sequence`, valid for
    /// [`Slots::payload_capacity`] bytes while the region lives.
    #[inline]
    pub(crate) fn payload(&self, sequence: u64) -> *mut u8 {
        let within = (sequence & self.array.mask) as usize * self.array.slot_size + self.array.header_len;
        #[cfg(loom)]
        // SAFETY: as below: the payload ends where the slot ends, inside the region.
        return unsafe {
            self.region
                .bytes_unchecked(self.array.offset + within, self.array.payload_capacity)
        };
        #[cfg(not(loom))]
        // SAFETY: as in `header`: the payload ends where the slot ends, inside the area.
        unsafe {
            self.array.base.add(within)
        }
    }

    /// Bytes of payload per slot.
    #[inline]
    pub(crate) fn payload_capacity(&self) -> usize {
        self.array.payload_capacity
    }

    /// How many of the `count` (at most a lap) slots from `start` lie before the slot array's
    /// end; the rest continue from its first slot.
    #[inline]
    pub(crate) fn before_wrap(&self, start: u64, count: u64) -> u64 {
        count.min(self.array.capacity() - (start & self.array.mask))
    }

    /// Whether this is a fixed-size ring (no slot headers).
    #[inline]
    pub(crate) fn fixed(&self) -> bool {
        self.array.header_len == 0
    }

    /// The header of the published slot holding `sequence`, its length clamped to the
    /// payload (the word is not trusted). A fixed-size ring's slots have none: there every
    /// message is the whole payload.
    #[inline(always)]
    pub(crate) fn read_header(&self, sequence: u64) -> SlotHeader {
        if self.fixed() {
            return SlotHeader {
                stamp: stamp(sequence),
                len: self.array.payload_capacity,
                flags: 0,
            };
        }
        // Acquire: pairs with the [stamp] Release (already synchronised by the sequencer's
        // `published_until`, and free on x86).
        let mut header = SlotHeader::decode(self.header(sequence).load_acquire());
        header.len = header.len.min(self.array.payload_capacity);
        header
    }
}
