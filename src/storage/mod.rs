//! Where a ring's bytes live, and the typed view of them the rest of the crate uses.
//!
//! A [`Storage`] backend owns a zeroed, 128-byte aligned block of memory: the heap
//! (`heap.rs`) or a shared mapping of a file in /dev/shm or on disk (`file.rs`, with the
//! checks of who may have put the file there in `trust.rs`). [`Region`] wraps one and hands
//! out the atomic words of the layout by offset, so the ring code never touches a raw pointer
//! except for payload copies; [`Slots`] (`slots.rs`) is the slot array as a value, for loops.
//!
//! Under loom the words come from arrays of loom atomics (loom cannot model atomics laid over
//! raw memory) and every slot has a loom `UnsafeCell` that tracks payload reads and writes, so
//! a missing happens-before between a producer's write and a consumer's read is a loom error.

#[cfg(not(loom))]
mod file;
mod heap;
mod slots;
#[cfg(not(loom))]
pub(crate) mod trust;
#[cfg(not(loom))]
pub use trust::Trust;

#[cfg(not(loom))]
pub use file::FileKind;
#[cfg(not(loom))]
pub(crate) use file::{
    classify, create_temp, io_error, open as open_file, remove_ring, user_shm_dir, FileStorage,
};
pub(crate) use heap::HeapStorage;
pub(crate) use slots::{KeptWord, SlotArray, Slots};

use crate::atomic::{AtomicSequence, Word, Word32};
use std::fmt;
use std::ptr::NonNull;

/// A block of memory that holds one ring.
///
/// # Safety
///
/// - `base()` returns a pointer valid for reads and writes of `len()` bytes for as long as
///   the storage lives, aligned to [`crate::layout::LINE`], and never changes.
/// - The bytes were zero when the storage was handed to [`Region::new`], or hold a ring laid
///   out by this crate.
pub(crate) unsafe trait Storage: Send + Sync + fmt::Debug {
    /// The first byte of the block.
    fn base(&self) -> NonNull<u8>;
    /// The length of the block in bytes.
    fn len(&self) -> usize;
}

/// The typed view of a ring's memory.
pub(crate) struct Region {
    base: NonNull<u8>,
    len: usize,
    // Kept for its Drop: `base` points into it.
    _storage: Box<dyn Storage>,
    /// Loom atomics for the words the layout uses (`None` elsewhere: fewer loom objects make
    /// every modelled fence cheaper).
    #[cfg(loom)]
    words: Box<[Option<Word>]>,
    #[cfg(loom)]
    words32: Box<[Option<Word32>]>,
    #[cfg(loom)]
    slots: Box<[loom::cell::UnsafeCell<()>]>,
}

// SAFETY: the region is a block of shared memory whose every concurrently accessed word is
// an atomic; payload bytes are handed out only under the ring's sequencing protocol (a slot is
// written by the one producer that claimed it, and read only after its publish and before the
// reader's release). The storage itself is `Send + Sync` by the trait bound.
unsafe impl Send for Region {}
// SAFETY: as for `Send`: shared access goes through atomics or the sequencing protocol.
unsafe impl Sync for Region {}

impl fmt::Debug for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Region")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl Region {
    /// Wraps `storage`, which holds (or will hold) a ring laid out by `layout`.
    pub(crate) fn new(storage: Box<dyn Storage>, layout: &crate::layout::Layout) -> Self {
        let base = storage.base();
        let len = storage.len();
        debug_assert_eq!(base.as_ptr() as usize % crate::layout::LINE, 0);
        #[cfg(not(loom))]
        let _ = layout;
        Region {
            base,
            len,
            _storage: storage,
            #[cfg(loom)]
            words: (0..len / 8)
                .map(|i| layout.is_word(8 * i).then(|| Word::new(0)))
                .collect(),
            #[cfg(loom)]
            words32: (0..len / 8)
                .map(|i| layout.is_futex_word(8 * i).then(|| Word32::new(0)))
                .collect(),
            #[cfg(loom)]
            slots: (0..layout.params.capacity)
                .map(|_| loom::cell::UnsafeCell::new(()))
                .collect(),
        }
    }

    /// The region's length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Checks an offset of an 8-byte word. Offsets come from `Layout`, which validated them
    /// against the region's length, so this never fires on any input; it guards the crate's
    /// own arithmetic. The failure is a call with the two values in registers: an `assert!`
    /// with a formatted message stored its arguments to the stack on every access, a store
    /// on every publish that queued behind the slot writes (see `word_out_of_bounds`).
    #[inline]
    fn check_word(&self, offset: usize) {
        if offset % 8 != 0 || offset > self.len.saturating_sub(8) {
            word_out_of_bounds(offset, self.len);
        }
    }

    /// The 64-bit word at `offset`.
    #[inline]
    pub(crate) fn word(&self, offset: usize) -> &Word {
        self.check_word(offset);
        #[cfg(loom)]
        return self.words[offset / 8]
            .as_ref()
            .expect("ringmq bug: the layout does not list this word");
        #[cfg(not(loom))]
        // SAFETY: `offset` is 8-aligned and `offset + 8 <= len` (checked above); `base` is
        // 128-aligned and valid for `len` bytes while `self` lives (Storage contract). `Word`
        // is `repr(transparent)` over `AtomicU64`, which has the size and alignment of u64, and
        // every access to these bytes in the crate is atomic.
        unsafe {
            &*(self.base.as_ptr().add(offset) as *const Word)
        }
    }

    /// The 64-bit word at `offset`, without the bounds check.
    ///
    /// # Safety
    ///
    /// - `offset` is a multiple of 8 and `offset + 8 <= self.len()`.
    #[inline]
    pub(crate) unsafe fn word_unchecked(&self, offset: usize) -> &Word {
        debug_assert!(offset % 8 == 0 && offset + 8 <= self.len);
        #[cfg(loom)]
        return self.word(offset);
        #[cfg(not(loom))]
        // SAFETY: the caller guarantees alignment and bounds; otherwise as in `word`.
        unsafe {
            &*(self.base.as_ptr().add(offset) as *const Word)
        }
    }

    /// A pointer to `len` bytes at `offset`, without the bounds check.
    ///
    /// # Safety
    ///
    /// - `offset + len <= self.len()`.
    #[inline]
    pub(crate) unsafe fn bytes_unchecked(&self, offset: usize, len: usize) -> *mut u8 {
        debug_assert!(offset + len <= self.len);
        // SAFETY: the caller guarantees `offset + len <= len`, so the result stays inside the
        // block `base` points to.
        unsafe { self.base.as_ptr().add(offset) }
    }

    /// The sequence word at `offset`.
    #[inline]
    pub(crate) fn sequence(&self, offset: usize) -> &AtomicSequence {
        let word: &Word = self.word(offset);
        // SAFETY: `AtomicSequence` and `Word` are both `repr(transparent)` over the same
        // atomic type, so one may be viewed as the other.
        unsafe { &*(word as *const Word as *const AtomicSequence) }
    }

    /// The futex word at `offset` (8-aligned; the word occupies its first 4 bytes).
    #[inline]
    pub(crate) fn word32(&self, offset: usize) -> &Word32 {
        self.check_word(offset);
        #[cfg(loom)]
        return self.words32[offset / 8]
            .as_ref()
            .expect("ringmq bug: the layout does not list this futex word");
        #[cfg(not(loom))]
        // SAFETY: as in `word`: in bounds, aligned, valid while `self` lives, and `Word32` is
        // `repr(transparent)` over `AtomicU32`; these bytes are only ever accessed atomically.
        unsafe {
            &*(self.base.as_ptr().add(offset) as *const Word32)
        }
    }

    /// Marks the start of a payload read of slot `index` (a no-op outside loom).
    #[inline]
    pub(crate) fn track_read(&self, index: usize) -> ReadTrack {
        #[cfg(loom)]
        return ReadTrack(Some(self.slots[index].get()));
        #[cfg(not(loom))]
        {
            let _ = index;
            ReadTrack
        }
    }

    /// Marks the start of a payload write of slot `index` (a no-op outside loom).
    #[inline]
    pub(crate) fn track_write(&self, index: usize) -> WriteTrack {
        #[cfg(loom)]
        return WriteTrack(Some(self.slots[index].get_mut()));
        #[cfg(not(loom))]
        {
            let _ = index;
            WriteTrack
        }
    }
}

/// While alive (until [`ReadTrack::end`]), loom counts a read of one slot's payload.
#[cfg(loom)]
#[derive(Debug)]
pub(crate) struct ReadTrack(Option<loom::cell::ConstPtr<()>>);
/// Loom's read tracking; a zero-sized no-op outside loom.
#[cfg(not(loom))]
#[derive(Debug)]
pub(crate) struct ReadTrack;

impl ReadTrack {
    /// Ends the tracked read (before the slot is released).
    #[inline]
    pub(crate) fn end(&mut self) {
        #[cfg(loom)]
        {
            self.0 = None;
        }
    }
}

/// While alive (until [`WriteTrack::end`]), loom counts a write of one slot's payload.
#[cfg(loom)]
#[derive(Debug)]
pub(crate) struct WriteTrack(Option<loom::cell::MutPtr<()>>);
/// Loom's write tracking; a zero-sized no-op outside loom.
#[cfg(not(loom))]
#[derive(Debug)]
pub(crate) struct WriteTrack;

impl WriteTrack {
    /// Ends the tracked write (before the slot is published).
    #[inline]
    pub(crate) fn end(&mut self) {
        #[cfg(loom)]
        {
            self.0 = None;
        }
    }
}

/// [`Region::check_word`]'s failure, out of line so that the check's hot path stores nothing.
#[cold]
#[inline(never)]
#[track_caller]
fn word_out_of_bounds(offset: usize, len: usize) -> ! {
    panic!("ringmq bug: word offset {offset} outside a region of {len} bytes")
}
