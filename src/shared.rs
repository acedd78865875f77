//! What every handle of one ring shares: its memory, its validated layout and this process's
//! liveness tokens, with a typed accessor for each word of the layout. No protocol lives here:
//! the sequencer, gating, the tables and the reaper are functions of a `&Shared`.
//!
//! [`Attached`] is a handle's own view: the `Arc<Shared>` together with the slot array and
//! the sequence word the handle stores to, copied out as plain addresses so the hot paths
//! read nothing through the `Arc`. Only this module builds one, from the `Shared` the
//! addresses point into, so turning them back into references is safe everywhere else.

use crate::atomic::{AtomicSequence, Word};
use crate::layout::slot::slot_header;
use crate::layout::{self, header, Layout};
use crate::liveness::Liveness;
use crate::storage::{KeptWord, Region, SlotArray, Slots, Storage};
use crate::sync::Arc;
use crate::wait::Event;
use std::fmt;
use std::path::PathBuf;

/// What every handle of one ring shares: its memory and its validated layout.
///
/// Aligned to a line pair so that no other allocation shares its lines: every publish and
/// every poll reads these fields, and a neighbour written by one side (a handle, a closure's
/// captures) would bounce them between the cores on every write.
#[repr(align(128))]
pub(crate) struct Shared {
    pub(crate) region: Region,
    pub(crate) layout: Layout,
    /// Copied from the header at creation: whether notifiers run the `[wakeup]` protocol.
    pub(crate) wakeups: bool,
    /// This process's liveness tokens (OFD locks for file-backed rings).
    pub(crate) liveness: Liveness,
    /// The ring file, for file-backed rings.
    pub(crate) path: Option<PathBuf>,
    /// This process's futures waiting on the "published" and "released" events
    /// (`[async-wakeup]`).
    #[cfg(all(feature = "async", not(loom)))]
    pub(crate) async_waiters: [crate::wake::AsyncWaiters; 2],
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("layout", &self.layout)
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// Lays a new ring out in zeroed storage: header fields, hot words, slot stamps, and the
    /// init word last.
    pub(crate) fn create(
        layout: Layout,
        storage: Box<dyn Storage>,
        liveness: Liveness,
        path: Option<PathBuf>,
    ) -> Self {
        let params = layout.params;
        let region = Region::new(storage, &layout);
        // Every slot offset `Layout::slot` computes lies below `total_len`; `slot_header` and
        // `payload` rely on this check instead of one per access.
        assert!(
            region.len() >= layout.total_len,
            "ringmq bug: storage of {} bytes for a layout of {}",
            region.len(),
            layout.total_len
        );
        let shared = Shared {
            region,
            layout,
            wakeups: params.wakeups,
            liveness,
            path,
            #[cfg(all(feature = "async", not(loom)))]
            async_waiters: Default::default(),
        };
        // Relaxed stores throughout: nobody else can see the ring until the init word below.
        for (offset, value) in header::fields(&layout) {
            shared.region.word(offset).store_relaxed(value);
        }
        let initial = params.initial_sequence;
        shared.claim().store_relaxed(initial);
        shared.cursor().store_relaxed(initial);
        shared.write_limit().store_relaxed(initial);
        // Each slot starts stamped as holding the sequence one lap before the first one that
        // lands in it, so "published for this lap" is never true of a fresh slot, whatever
        // the initial sequence. (A fixed-size ring's slots have no stamps.)
        for i in (0..params.capacity).filter(|_| !params.fixed) {
            let first = initial + ((i.wrapping_sub(initial)) & layout.index_mask);
            let header = slot_header(first.wrapping_sub(params.capacity), 0, 0);
            shared.slot_header(first).store_relaxed(header);
        }
        // Release: pairs with the Acquire of the init word by an opener (`Shared::open`):
        // everything above is visible to whoever sees INIT_DONE.
        shared
            .region
            .word(header::H_INIT)
            .store_release(header::INIT_DONE);
        shared
    }

    /// Maps an existing ring: waits up to `timeout` for its init word, then decodes and
    /// checks its header (against the file's length and `expected`, if given). Nothing else
    /// in the file is trusted either, but the header fixes the layout.
    #[cfg(not(loom))]
    pub(crate) fn open(
        storage: crate::storage::FileStorage,
        path: &std::path::Path,
        expected: Option<&layout::Params>,
        timeout: std::time::Duration,
    ) -> Result<Self, crate::error::OpenError> {
        use crate::error::OpenError;
        use std::time::{Duration, Instant};
        let shown = || path.display().to_string();
        // `open` mapped at least one line, so every header word is readable.
        let word = |offset| storage.header_word(offset).unwrap_or(0);
        let started = Instant::now();
        // Acquire (in `header_word`): pairs with the creator's Release of the init word, so
        // every field read after it is the creator's.
        while word(header::H_INIT) != header::INIT_DONE {
            let magic = word(header::H_MAGIC);
            if magic != 0 && magic != header::MAGIC {
                return Err(OpenError::NotARing { path: shown() });
            }
            if started.elapsed() >= timeout {
                return Err(OpenError::NotInitialised {
                    path: shown(),
                    waited: timeout,
                });
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let layout = header::decode(word).map_err(|e| match e {
            header::HeaderError::NotARing => OpenError::NotARing { path: shown() },
            header::HeaderError::Version(found) => OpenError::IncompatibleVersion {
                path: shown(),
                found,
                supported: header::VERSION,
            },
            header::HeaderError::Corrupt(reason) => OpenError::Corrupt {
                path: shown(),
                reason,
            },
        })?;
        let len = Storage::len(&storage) as u64;
        if len < layout.total_len as u64 {
            return Err(OpenError::Truncated {
                path: shown(),
                len,
                expected: layout.total_len as u64,
            });
        }
        if let Some((field, expected, found)) = expected.and_then(|e| layout.params.difference(e)) {
            return Err(OpenError::ParamsMismatch {
                path: shown(),
                field,
                expected,
                found,
            });
        }
        let owner = storage
            .file()
            .try_clone()
            .map_err(|e| crate::storage::io_error(path, "dup", &e))?;
        let liveness = Liveness::file(owner).map_err(|e| crate::storage::io_error(path, "reopen", &e))?;
        Ok(Shared {
            region: Region::new(Box::new(storage), &layout),
            wakeups: layout.params.wakeups,
            layout,
            liveness,
            path: Some(path.to_owned()),
            #[cfg(all(feature = "async", not(loom)))]
            async_waiters: Default::default(),
        })
    }

    /// The ring's file, for messages (empty for a heap ring).
    pub(crate) fn shown_path(&self) -> String {
        self.path
            .as_ref()
            .map_or_else(String::new, |p| p.display().to_string())
    }

    #[inline]
    pub(crate) fn capacity(&self) -> u64 {
        self.layout.params.capacity
    }

    #[inline]
    pub(crate) fn claim(&self) -> &AtomicSequence {
        self.region.sequence(layout::CLAIM)
    }

    #[inline]
    pub(crate) fn cursor(&self) -> &AtomicSequence {
        self.region.sequence(layout::CURSOR)
    }

    #[inline]
    pub(crate) fn write_limit(&self) -> &AtomicSequence {
        self.region.sequence(layout::WRITE_LIMIT)
    }

    #[inline]
    pub(crate) fn attach_epoch(&self) -> &Word {
        self.region.word(layout::ATTACH_EPOCH)
    }

    #[inline]
    pub(crate) fn producer_owned(&self) -> &Word {
        self.region.word(layout::PRODUCER_OWNED)
    }

    /// Statistic: messages redelivered by groups.
    pub(crate) fn redelivered(&self) -> &Word {
        self.region.word(layout::REDELIVERED_COUNT)
    }

    /// Statistic: slots skipped after their producer died.
    pub(crate) fn skipped_total(&self) -> &Word {
        self.region.word(layout::SKIPPED_COUNT)
    }

    #[inline]
    pub(crate) fn active_mask(&self) -> &Word {
        self.region.word(layout::ACTIVE_MASK)
    }

    #[inline]
    pub(crate) fn group_mask(&self) -> &Word {
        self.region.word(layout::GROUP_MASK)
    }

    fn event(&self, line: usize) -> Event<'_> {
        Event {
            #[cfg(all(feature = "async", not(loom)))]
            local: &self.async_waiters[usize::from(line != layout::PUBLISHED_EVENT)],
            word: self.region.word32(line),
            waiters: self.region.word(line + layout::EVENT_WAITERS),
            safety_net: if self.liveness.is_shared() {
                crate::wait::SHARED_SAFETY_NET
            } else {
                crate::wait::SAFETY_NET
            },
        }
    }

    /// Producers to consumers.
    #[inline]
    pub(crate) fn published_event(&self) -> Event<'_> {
        self.event(layout::PUBLISHED_EVENT)
    }

    /// Consumers to producers and to dependent consumers.
    #[inline]
    pub(crate) fn released_event(&self) -> Event<'_> {
        self.event(layout::RELEASED_EVENT)
    }

    /// After a publish: the notifier's side of `[wakeup]` on the "published" event, if the
    /// ring has wake-ups (checked first, so a ring without them pays one predictable branch).
    #[inline]
    pub(crate) fn notify_published(&self) {
        if self.wakeups {
            self.published_event().notify();
        }
    }

    /// After a release: the same on the "released" event.
    #[inline]
    pub(crate) fn notify_released(&self) {
        if self.wakeups {
            self.released_event().notify();
        }
    }

    /// The position (or a group's claim counter) of consumer table entry `index`.
    #[inline]
    pub(crate) fn entry_sequence(&self, index: usize) -> &AtomicSequence {
        self.region
            .sequence(self.layout.entry(index) + layout::table::E_SEQUENCE)
    }

    /// Field `field` (a `layout::table::E_*` offset) of consumer table entry `index`.
    #[inline]
    pub(crate) fn entry_word(&self, index: usize, field: usize) -> &Word {
        self.region.word(self.layout.entry(index) + field)
    }

    /// Field `field` (a `layout::table::P_*` offset) of producer table entry `index`.
    #[inline]
    pub(crate) fn producer_word(&self, index: usize, field: usize) -> &Word {
        self.region.word(self.layout.producer_entry(index) + field)
    }

    /// The slot array, for a loop over slots on a path that keeps no [`Attached`].
    #[inline]
    pub(crate) fn slots(&self) -> Slots<'_> {
        let array = SlotArray::new(&self.region, &self.layout);
        // SAFETY: the array was made from this region just now.
        unsafe { Slots::new(array, &self.region) }
    }

    /// The header word of the slot that holds `sequence`. Not for fixed-size rings, whose
    /// slots have none (there it is the payload's first word).
    #[inline]
    pub(crate) fn slot_header(&self, sequence: u64) -> &Word {
        let offset = self.layout.slot(sequence);
        // SAFETY: `Layout::slot` masks the sequence to an index below the capacity, so
        // `offset + slot_size <= total_len <= region.len()` (asserted in `create`, checked by
        // `open`); slot offsets are multiples of 8 (validated slot size, 128-aligned slot
        // area).
        unsafe { self.region.word_unchecked(offset) }
    }
}

/// A handle's view of its ring: the ring, and the addresses a hot path needs (the slot array,
/// and the sequence word the handle stores to: a producer's cursor, a consumer's position),
/// copied out of it so that nothing on that path is loaded through the `Arc`.
///
/// Only [`Attached::producer`] and [`Attached::entry`] build one, from the ring the addresses
/// point into, and the ring lives as long as this value: so [`Attached::slots`] and
/// [`Attached::sequence`] are safe.
pub(crate) struct Attached {
    shared: Arc<Shared>,
    slots: SlotArray,
    sequence: KeptWord,
}

impl fmt::Debug for Attached {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attached").finish_non_exhaustive()
    }
}

impl Attached {
    /// A producer's view: its sequence word is the cursor.
    pub(crate) fn producer(shared: Arc<Shared>) -> Self {
        let slots = SlotArray::new(&shared.region, &shared.layout);
        let sequence = KeptWord::new(&shared.region, layout::CURSOR);
        Attached {
            shared,
            slots,
            sequence,
        }
    }

    /// A consumer's view: its sequence word is table entry `index`'s position.
    pub(crate) fn entry(shared: Arc<Shared>, index: usize) -> Self {
        let slots = SlotArray::new(&shared.region, &shared.layout);
        let offset = shared.layout.entry(index) + layout::table::E_SEQUENCE;
        let sequence = KeptWord::new(&shared.region, offset);
        Attached {
            shared,
            slots,
            sequence,
        }
    }

    /// The ring.
    #[inline]
    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    /// The ring's `Arc`, to share with a thread that outlives this borrow.
    #[cfg(not(loom))]
    #[inline]
    pub(crate) fn arc(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The slot array, from the kept addresses.
    #[inline]
    pub(crate) fn slots(&self) -> Slots<'_> {
        // SAFETY: `self.slots` was made from this ring's region (in `producer` or `entry`),
        // which `self.shared` keeps alive.
        unsafe { Slots::new(self.slots, &self.shared.region) }
    }

    /// This handle's sequence word (the cursor, or the consumer's position), from its kept
    /// address.
    #[inline]
    pub(crate) fn sequence(&self) -> &AtomicSequence {
        // SAFETY: as in `slots`: made from this ring's region, which `self.shared` keeps.
        unsafe { self.sequence.get(&self.shared.region) }
    }
}
