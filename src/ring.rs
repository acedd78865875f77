//! The ring: its creation, the handle users hold, and the shared state behind every handle.

use crate::consumer::{table, ConsumerBuilder, ConsumerInfo};
use crate::error::Error;
use crate::layout::{self, Layout, Params, ProducerMode};
use crate::liveness::Liveness;
use crate::producer::Producer;
use crate::sequence::{Sequence, Word, MAX_SEQUENCE};
#[cfg(not(loom))]
use crate::storage::FileStorage;
use crate::storage::{HeapStorage, Region};
use crate::sync::{fence, Arc, Ordering};
use crate::wait::{Event, WaitStrategy};
use std::fmt;
use std::path::Path;
use std::path::PathBuf;
use std::time::Duration;
#[cfg(not(loom))]
use std::time::Instant;

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
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("layout", &self.layout)
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// Lays a new ring out in zeroed storage: header fields, slot stamps, and the init word
    /// last.
    pub(crate) fn create(
        layout: Layout,
        storage: Box<dyn crate::storage::Storage>,
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
        };
        let r = &shared.region;
        let initial = params.initial_sequence;
        // Relaxed stores throughout: nobody else can see the ring until the init word below.
        r.word(layout::H_MAGIC).store_relaxed(layout::MAGIC);
        r.word(layout::H_VERSION).store_relaxed(layout::VERSION);
        r.word(layout::H_CAPACITY).store_relaxed(params.capacity);
        r.word(layout::H_SLOT_SIZE).store_relaxed(params.slot_size as u64);
        r.word(layout::H_MODE).store_relaxed(params.mode.to_word());
        r.word(layout::H_MAX_CONSUMERS)
            .store_relaxed(params.max_consumers as u64);
        let flags = if params.wakeups { layout::FLAG_WAKEUPS } else { 0 }
            | if params.fixed { layout::FLAG_FIXED } else { 0 };
        r.word(layout::H_FLAGS).store_relaxed(flags);
        r.word(layout::H_INITIAL_SEQUENCE).store_relaxed(initial);
        r.word(layout::H_TOTAL_LEN).store_relaxed(layout.total_len as u64);
        shared.claim().store_relaxed(initial);
        shared.cursor().store_relaxed(initial);
        shared.write_limit().store_relaxed(initial);
        // Each slot starts stamped as holding the sequence one lap before the first one that
        // lands in it, so "published for this lap" is never true of a fresh slot, whatever
        // the initial sequence. (A fixed-size ring's slots have no stamps.)
        for i in (0..params.capacity).filter(|_| !params.fixed) {
            let first = initial + ((i.wrapping_sub(initial)) & layout.index_mask);
            let header = layout::slot_header(first.wrapping_sub(params.capacity), 0, 0);
            shared.slot_header(first).store_relaxed(header);
        }
        // Release: pairs with the Acquire of the init word by an opener (cross-process
        // backends): everything above is visible to whoever sees INIT_DONE.
        r.word(layout::H_INIT).store_release(layout::INIT_DONE);
        shared
    }

    /// Maps an existing ring: waits up to `timeout` for its init word, then validates every
    /// header field against the others and the file's length (and against `expected`, if
    /// given). Nothing else in the file is trusted either, but the header fixes the layout.
    #[cfg(not(loom))]
    pub(crate) fn open(
        storage: FileStorage,
        path: &Path,
        expected: Option<&Params>,
        timeout: Duration,
    ) -> Result<Self, Error> {
        let shown = || path.display().to_string();
        // `open` mapped at least one line, so every header word is readable.
        let word = |offset| storage.header_word(offset).unwrap_or(0);
        let started = Instant::now();
        loop {
            // Acquire (in `header_word`): pairs with the creator's Release of the init word,
            // so every field read below is the creator's.
            if word(layout::H_INIT) == layout::INIT_DONE {
                break;
            }
            let magic = word(layout::H_MAGIC);
            if magic != 0 && magic != layout::MAGIC {
                return Err(Error::NotARing { path: shown() });
            }
            if started.elapsed() >= timeout {
                return Err(Error::NotInitialised {
                    path: shown(),
                    waited: timeout,
                });
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        if word(layout::H_MAGIC) != layout::MAGIC {
            return Err(Error::NotARing { path: shown() });
        }
        let version = word(layout::H_VERSION);
        if version != layout::VERSION {
            return Err(Error::IncompatibleVersion {
                path: shown(),
                found: version,
                supported: layout::VERSION,
            });
        }
        let corrupt = |reason: String| Error::Corrupt {
            path: shown(),
            reason,
        };
        let mode = match word(layout::H_MODE) {
            1 => ProducerMode::Single,
            2 => ProducerMode::Multi,
            other => return Err(corrupt(format!("producer mode {other}"))),
        };
        let flags = word(layout::H_FLAGS);
        if flags & !(layout::FLAG_WAKEUPS | layout::FLAG_FIXED) != 0 {
            return Err(corrupt(format!("unknown flags {flags:#x}")));
        }
        let params = Params {
            capacity: word(layout::H_CAPACITY),
            slot_size: usize::try_from(word(layout::H_SLOT_SIZE)).unwrap_or(usize::MAX),
            mode,
            max_consumers: usize::try_from(word(layout::H_MAX_CONSUMERS)).unwrap_or(usize::MAX),
            initial_sequence: word(layout::H_INITIAL_SEQUENCE),
            wakeups: flags & layout::FLAG_WAKEUPS != 0,
            fixed: flags & layout::FLAG_FIXED != 0,
        };
        let ring_layout = params.validate().map_err(|e| corrupt(e.to_string()))?;
        let total = word(layout::H_TOTAL_LEN);
        if total != ring_layout.total_len as u64 {
            return Err(corrupt(format!(
                "header says {total} bytes, its parameters make {}",
                ring_layout.total_len
            )));
        }
        if (crate::storage::Storage::len(&storage) as u64) < total {
            return Err(Error::Truncated {
                path: shown(),
                len: crate::storage::Storage::len(&storage) as u64,
                expected: total,
            });
        }
        if let Some(expected) = expected {
            params.check_same(expected, path)?;
        }
        let liveness = Liveness::file(
            storage
                .file()
                .try_clone()
                .map_err(|e| crate::storage::io_error(path, "dup", &e))?,
        )
        .map_err(|e| crate::storage::io_error(path, "reopen", &e))?;
        Ok(Shared {
            region: Region::new(Box::new(storage), &ring_layout),
            layout: ring_layout,
            wakeups: params.wakeups,
            liveness,
            path: Some(path.to_owned()),
        })
    }

    #[inline]
    pub(crate) fn capacity(&self) -> u64 {
        self.layout.params.capacity
    }

    #[inline]
    pub(crate) fn multi_producer(&self) -> bool {
        self.layout.params.mode == ProducerMode::Multi
    }

    #[inline]
    pub(crate) fn claim(&self) -> &Sequence {
        self.region.sequence(layout::CLAIM)
    }

    #[inline]
    pub(crate) fn cursor(&self) -> &Sequence {
        self.region.sequence(layout::CURSOR)
    }

    #[inline]
    pub(crate) fn write_limit(&self) -> &Sequence {
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

    /// Cleans up after dead processes: their consumers (`table::reap_dead`) and the slots
    /// their multi-producers claimed and never published (`producers::reap_dead`). Returns
    /// how many consumer entries and slots it dealt with.
    pub(crate) fn reap_dead(&self) -> usize {
        table::reap_dead(self) + crate::producers::reap_dead(self) as usize
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

    #[inline]
    pub(crate) fn entry_sequence(&self, index: usize) -> &Sequence {
        self.region
            .sequence(self.layout.entry(index) + layout::E_SEQUENCE)
    }

    /// [`Shared::entry_sequence`]'s address, for a handle to keep (see [`SequenceRef`]).
    pub(crate) fn entry_sequence_ref(&self, index: usize) -> SequenceRef {
        SequenceRef {
            #[cfg(not(loom))]
            word: self.entry_sequence(index),
            #[cfg(loom)]
            index,
        }
    }

    /// The sequence word a kept [`SequenceRef`] names, without the offset check.
    ///
    /// # Safety
    ///
    /// `word` came from this `Shared`'s [`Shared::entry_sequence_ref`].
    #[inline]
    pub(crate) unsafe fn sequence_with(&self, word: &SequenceRef) -> &Sequence {
        #[cfg(loom)]
        return self.entry_sequence(word.index);
        #[cfg(not(loom))]
        // SAFETY: `word.word` points at a sequence word of this region (caller's contract),
        // 8-aligned in a 128-aligned region that lives as long as `self`; `Sequence` is
        // `repr(transparent)` over `AtomicU64`, and every access to the word is atomic.
        unsafe {
            &*word.word
        }
    }

    #[inline]
    pub(crate) fn entry_word(&self, index: usize, field: usize) -> &Word {
        self.region.word(self.layout.entry(index) + field)
    }

    /// The slot array's geometry as a value, for loops over many slots; see [`Slots`].
    #[inline]
    pub(crate) fn slots(&self) -> Slots<'_> {
        // SAFETY: the geometry is this ring's, made just now.
        unsafe { self.slots_with(self.geometry()) }
    }

    /// The slot geometry and the cursor's address, for a handle to keep (see [`Geometry`]).
    #[inline]
    pub(crate) fn geometry(&self) -> Geometry {
        let layout = &self.layout;
        let area = layout.index_mask as usize * layout.params.slot_size + layout.params.slot_size;
        Geometry {
            // SAFETY: the slot area is `capacity * slot_size` bytes from `slots_offset`, inside
            // the region (`total_len <= region.len()`, asserted in `create` / checked on open).
            base: unsafe { self.region.bytes_unchecked(layout.slots_offset, area) },
            mask: layout.index_mask,
            slot_size: layout.params.slot_size,
            header_len: layout.header_len(),
            payload_capacity: layout.payload_capacity(),
            // SAFETY: the cursor's 8 bytes lie in the header lines, below `slots_offset`.
            #[cfg(not(loom))]
            cursor: unsafe { self.region.bytes_unchecked(layout::CURSOR, 8) } as *const Sequence,
        }
    }

    /// [`Shared::slots`] from a geometry kept by the caller: nothing of `self` is read.
    ///
    /// # Safety
    ///
    /// `geometry` came from this `Shared`'s [`Shared::geometry`].
    #[inline]
    pub(crate) unsafe fn slots_with(&self, geometry: Geometry) -> Slots<'_> {
        Slots {
            #[cfg(loom)]
            shared: self,
            geometry,
            _shared: std::marker::PhantomData,
        }
    }

    /// [`Shared::cursor`] from a geometry kept by the caller, without the offset check.
    ///
    /// # Safety
    ///
    /// As for [`Shared::slots_with`].
    #[inline]
    pub(crate) unsafe fn cursor_with(&self, geometry: &Geometry) -> &Sequence {
        #[cfg(loom)]
        {
            let _ = geometry;
            self.cursor()
        }
        #[cfg(not(loom))]
        // SAFETY: `geometry.cursor` points at this region's cursor word (caller's contract),
        // 8-aligned in a 128-aligned region that lives as long as `self`; `Sequence` is
        // `repr(transparent)` over `AtomicU64`, and every access to the word is atomic.
        unsafe {
            &*geometry.cursor
        }
    }

    /// The header word of the slot that holds `sequence`. Not for fixed-size rings, whose
    /// slots have none (there it is the payload's first word).
    #[inline]
    pub(crate) fn slot_header(&self, sequence: u64) -> &Word {
        let offset = self.layout.slot(sequence);
        // SAFETY: `Layout::slot` masks the sequence to an index below the capacity, so
        // `offset + slot_size <= total_len <= region.len()` (asserted in `create`); slot offsets
        // are multiples of 8 (validated slot size, 128-aligned slot area).
        unsafe { self.region.word_unchecked(offset) }
    }

    /// Pointer to the payload of the slot holding `sequence`, valid for
    /// `payload_capacity()` bytes.
    #[inline]
    pub(crate) fn payload(&self, sequence: u64) -> *mut u8 {
        let offset = self.layout.slot(sequence) + self.layout.header_len();
        // SAFETY: as in `slot_header`: the payload ends where the slot ends, inside the region.
        unsafe {
            self.region
                .bytes_unchecked(offset, self.layout.payload_capacity())
        }
    }

    /// The next sequence to be published (single producer) or claimed (multi producer).
    pub(crate) fn next_sequence(&self) -> u64 {
        if self.multi_producer() {
            // Acquire: pairs with the producers' AcqRel claims.
            return self.claim().load_acquire();
        }
        // Acquire: pairs with the producer's [cursor] Release store.
        let cursor = self.cursor().load_acquire();
        if self.layout.params.fixed {
            return cursor;
        }
        self.stamped_past(cursor)
    }

    /// Where the run of stamped slots that starts at a single producer's `cursor` ends: the
    /// first unpublished sequence, since single publishes let the cursor lag their stamps
    /// (`CURSOR_EVERY`) and a producer may die between its stamps and its cursor. At most a
    /// lap is looked at (the cursor may come from a peer writing into the mapping).
    pub(crate) fn stamped_past(&self, cursor: u64) -> u64 {
        self.first_unstamped(cursor, cursor.saturating_add(self.capacity()).min(MAX_SEQUENCE))
    }

    /// The first sequence in `from..end` whose slot does not hold it, published (`end` if
    /// every one does).
    #[inline(always)]
    pub(crate) fn first_unstamped(&self, from: u64, end: u64) -> u64 {
        let mut s = from;
        while s < end && self.is_stamped(s) {
            s += 1;
        }
        s
    }

    /// The first sequence at or after `from` that is not yet published, looking at most
    /// `max` slots ahead.
    ///
    /// Single producer: the stamps of up to [`STAMP_SCAN`] slots from `from`, then, if all are
    /// published, the cursor. A consumer that has caught up so polls one word, on the line the
    /// producer writes next, and a message reaches it in one line transfer (reading the
    /// cursor first would add a second, serialised one). A consumer a few messages behind a
    /// producer that publishes one at a time finds them by their stamps, on lines it reads
    /// next anyway, and leaves alone the cursor, which that producer writes per message
    /// (reading it on every poll made its line bounce between the cores on every poll). A
    /// longer run of stamps means a batch, and the cursor (written once per batch) gives its
    /// extent, so the consumer touches only slots the producer has finished with. A batch
    /// stamps its first slot last (`write_slots`), so the stamp a caught-up consumer waits on
    /// shows the batch whole: it never chases the producer slot by slot through a batch
    /// (which bounced each line several times and cost 4x in throughput). Single publishes
    /// store the cursor only every `Layout::cursor_every` messages (so a consumer reading it
    /// does not pull its line away on nearly every one of them): the few stamped slots past
    /// it are read after it. A single producer stores headers with Release, so a stamp alone
    /// publishes its slot; one taking over from a dead producer starts past any slot its
    /// predecessor stamped and unstamps what it left of a batch (`Producer::new`). Multi producer: the stamps alone, all the way, since
    /// claimed slots are published out of order. Fixed size: the cursor alone, as the
    /// Disruptor does (there are no stamps).
    #[inline]
    pub(crate) fn published_until(&self, from: u64, max: u64) -> u64 {
        let end = from.saturating_add(max.min(self.capacity()));
        if self.layout.params.fixed {
            // [cursor] Acquire: as below. Clamped to `end`: a cursor written by a peer into
            // the mapping may be anything.
            return self.cursor().load_acquire().clamp(from, end);
        }
        let multi = self.multi_producer();
        // Saturating: `from` may come from shared memory.
        let scan_end = if multi {
            end
        } else {
            from.saturating_add(STAMP_SCAN).min(end)
        };
        let s = self.first_unstamped(from, scan_end);
        if multi || s < scan_end || s == end {
            return s;
        }
        self.published_past(s, end)
    }

    /// `published_until` for a single-producer consumer that found `STAMP_SCAN` stamps up
    /// to `stamped`: the cursor's extent. Out of line: a consumer that keeps up never gets
    /// here, and its polls stay short.
    #[inline(never)]
    fn published_past(&self, stamped: u64, end: u64) -> u64 {
        // [cursor] Acquire: pairs with the producer's Release stores (`publish_range`,
        // `write_one`, its drop): every slot below the cursor is written. It may lag the
        // stamps just seen, and single publishes past it (`CURSOR_EVERY`): those few are
        // found by their stamps.
        let cursor = self.cursor().load_acquire().max(stamped).min(end);
        let lag_end = cursor.saturating_add(self.layout.cursor_every() - 1).min(end);
        self.first_unstamped(cursor, lag_end)
    }

    /// The word that every publish of `sequence` writes: its slot's header (or, in a
    /// fixed-size ring, the cursor). A busy-spinning consumer waits for it to change, a load
    /// whose address it computed once, and then asks `published_until`.
    #[inline]
    pub(crate) fn publish_word(&self, sequence: u64) -> &Word {
        if self.layout.params.fixed {
            return self.region.word(layout::CURSOR);
        }
        self.slot_header(sequence)
    }

    /// Whether the slot of `sequence` holds `sequence`, published.
    #[inline]
    pub(crate) fn is_stamped(&self, sequence: u64) -> bool {
        // [stamp] Acquire: pairs with the producer's Release header store in
        // `commit_header`: the payload written before it is visible.
        let header = self.slot_header(sequence).load_acquire();
        layout::SlotHeader::decode(header).stamp == layout::stamp(sequence)
    }

    /// The lowest position of every gating consumer, or `fallback` if none is lower.
    ///
    /// Group claim counters are read before any worker's position (tag `[group]`): a worker
    /// publishes its position before it moves the counter past it, so whichever counter value
    /// this sees, the positions of workers that claimed below it are visible too.
    pub(crate) fn gating_minimum(&self, fallback: u64) -> u64 {
        // Acquire on the masks: pairs with the AcqRel updates in `table`, so the positions of
        // entries whose bits we see are initialised.
        // The masks come from shared memory: keep to the entries the table has.
        let valid = table::valid_mask(self);
        let groups = self.group_mask().load_acquire() & valid;
        let mut min = fallback;
        for index in bits(groups) {
            // [group] Acquire: pairs with the workers' AcqRel CAS of the counter.
            min = min.min(self.entry_sequence(index).load_acquire());
        }
        let others = self.active_mask().load_acquire() & valid & !groups;
        for index in bits(others) {
            // [released] Acquire: pairs with the consumer's Release store of its position;
            // the consumer's reads of the slots below it happened before.
            min = min.min(self.entry_sequence(index).load_acquire());
        }
        min
    }

    /// Recomputes the limit below which a producer at `own` may write, and records it in
    /// the shared write limit, by the attach protocol (tag `[attach]`).
    ///
    /// An attaching consumer bumps the epoch and then reads the write limit; a producer
    /// raises the write limit and then re-reads the epoch. A SeqCst fence on each side makes
    /// this a store-buffering pair: either the producer sees the new epoch and recomputes
    /// (now seeing the new consumer), or the consumer sees the raised limit and starts no
    /// lower than `limit - capacity`, which the producer will not overwrite.
    ///
    /// `known` is the limit this producer acted on last (returned by an earlier call, so
    /// already in the shared write limit and checked against the epoch). A limit no higher
    /// returns `known` at once, without the read-modify-write and the fence: every consumer
    /// that attached since started no lower than `known - capacity`, which slots below
    /// `known` do not overwrite. A producer on a full ring so spins on loads alone, as it
    /// would on any queue, instead of a fence and a locked instruction per try (which also
    /// slowed the consumer it waits for).
    #[cold]
    #[inline(never)]
    pub(crate) fn refresh_limit(&self, own: u64, known: u64) -> u64 {
        loop {
            // Acquire: pairs with the attacher's AcqRel epoch bump, which follows its
            // position store and mask update.
            let epoch = self.attach_epoch().load_acquire();
            let limit = self
                .gating_minimum(own)
                .saturating_add(self.capacity())
                .min(MAX_SEQUENCE);
            if limit <= known {
                return known;
            }
            self.write_limit().fetch_max_acqrel(limit);
            // [attach] SeqCst: pairs with the fence in `table::settle_start`.
            fence(Ordering::SeqCst);
            // Acquire: as above.
            if self.attach_epoch().load_acquire() == epoch {
                return limit;
            }
        }
    }
}

/// The set bits of `mask`, lowest first.
pub(crate) fn bits(mut mask: u64) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        if mask == 0 {
            return None;
        }
        let i = mask.trailing_zeros() as usize;
        mask &= mask - 1;
        Some(i)
    })
}

/// A ring of sequence-numbered slots shared by producers and consumers.
///
/// `Ring` is a cheap handle (`Clone` shares the same ring). Create one with
/// [`Ring::builder`], then take [`Producer`]s from [`Ring::producer`] and consumers from
/// [`Ring::subscriber`] (every consumer sees every message) or [`Ring::worker`] (the workers
/// of a group share the messages, each delivered to one of them).
///
/// ```
/// use ringmq::{Ring, Start};
///
/// let ring = Ring::builder().capacity(64).slot_size(64).build()?;
/// let mut consumer = ring.subscriber("reader").start(Start::Earliest).attach()?;
/// let mut producer = ring.producer()?;
/// producer.try_publish(b"hello")?;
/// let message = consumer.try_recv()?;
/// assert_eq!(&*message, b"hello");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct Ring {
    pub(crate) shared: Arc<Shared>,
}

/// Options for a new ring; see [`Ring::builder`].
#[derive(Clone, Debug)]
pub struct RingBuilder {
    params: Params,
    mode: u32,
    init_timeout: Duration,
}

impl Default for RingBuilder {
    fn default() -> Self {
        RingBuilder {
            params: Params {
                capacity: 1024,
                slot_size: 64,
                mode: ProducerMode::Single,
                max_consumers: 32,
                initial_sequence: 0,
                wakeups: true,
                fixed: false,
            },
            mode: 0o600,
            init_timeout: Duration::from_secs(2),
        }
    }
}

impl RingBuilder {
    /// Number of slots, a power of two up to 2^30 (default 1024).
    pub fn capacity(mut self, capacity: u64) -> Self {
        self.params.capacity = capacity;
        self
    }

    /// Bytes per slot including the 8-byte slot header: a multiple of 8, at least 16
    /// (default 64, so 56 bytes of payload). In a fixed-size ring
    /// ([`RingBuilder::fixed_size`]), the message size.
    pub fn slot_size(mut self, slot_size: usize) -> Self {
        self.params.slot_size = slot_size;
        self
    }

    /// Makes every message exactly `message_len` bytes, in slots without the 8-byte slot
    /// header: a slot is the payload alone (`slot_size` becomes `message_len`), so a
    /// stream of small values moves half the bytes (an 8-byte message takes 8 bytes, not 16)
    /// and streams at the speed of the memory. `message_len` is a multiple of 8, from 8.
    ///
    /// What it costs: one producer only (the producer's cursor is the only publish; a
    /// multi-producer ring needs its per-slot stamps, and [`RingBuilder::build`] says
    /// [`Error::FixedSizeMultiProducer`]); a publish of any other length is
    /// [`crate::PublishError::WrongSize`]; a producer that panics in a claim or a batch
    /// publishes none of that claim (there is no skip flag). Consumers learn of new messages
    /// from the cursor alone, as the Disruptor's do (a caught-up consumer reads the cursor's
    /// line and then the slot's, where a header ring's reads one stamp; in the `perf/`
    /// ping-pong the fixed-size ring's round trip was 0-10 ns longer on this project's
    /// machine). Everything else (subscribers, groups, dependencies, wait strategies, /dev/shm
    /// and files, a producer taking over from a dead one at the cursor) is the same.
    pub fn fixed_size(mut self, message_len: usize) -> Self {
        self.params.fixed = true;
        self.params.slot_size = message_len;
        self
    }

    /// Single producer (default) or any number of producers.
    pub fn producer_mode(mut self, mode: ProducerMode) -> Self {
        self.params.mode = mode;
        self
    }

    /// Shorthand for `producer_mode(ProducerMode::Multi)`.
    pub fn multi_producer(self) -> Self {
        self.producer_mode(ProducerMode::Multi)
    }

    /// Size of the consumer table: how many consumers, groups and workers can be attached at
    /// once, 1 to 64 (default 32). A group takes one entry plus one per worker.
    pub fn max_consumers(mut self, max_consumers: usize) -> Self {
        self.params.max_consumers = max_consumers;
        self
    }

    /// The sequence of the first message (default 0), at most [`crate::MAX_SEQUENCE`].
    /// Starting high lets tests exercise the arithmetic far from zero.
    pub fn initial_sequence(mut self, initial_sequence: u64) -> Self {
        self.params.initial_sequence = initial_sequence;
        self
    }

    /// Whether publishers and consumers run the futex wake-up protocol (default true).
    ///
    /// With wake-ups, every publish and every release costs one full fence (and a futex
    /// wake only when somebody sleeps), and handles may use [`WaitStrategy::Backoff`] and
    /// [`WaitStrategy::Block`]. Without, those strategies are refused with
    /// [`Error::WakeupsDisabled`] and the fence is gone: the fastest setting for busy-spinning
    /// or yielding handles.
    pub fn wakeups(mut self, wakeups: bool) -> Self {
        self.params.wakeups = wakeups;
        self
    }

    /// Creates the ring on the heap.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidCapacity`], [`Error::InvalidSlotSize`], [`Error::InvalidMaxConsumers`],
    /// [`Error::InvalidInitialSequence`] or [`Error::TooLarge`] for bad parameters;
    /// [`Error::OutOfMemory`] if the allocation fails.
    pub fn build(self) -> Result<Ring, Error> {
        let layout = self.params.validate()?;
        let storage = HeapStorage::new(layout.total_len)?;
        Ok(Ring {
            shared: Arc::new(Shared::create(
                layout,
                Box::new(storage),
                Liveness::process(),
                None,
            )),
        })
    }

    /// Permission bits of a new ring file (default `0o600`: only the creating user). Applied
    /// exactly, whatever the umask.
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode & 0o7777;
        self
    }

    /// How long [`RingBuilder::open_or_create`] waits for another creator to finish
    /// initialising the ring (default 2 s).
    pub fn init_timeout(mut self, timeout: Duration) -> Self {
        self.init_timeout = timeout;
        self
    }

    /// Creates the ring in a new file at `path` and maps it shared: every process that opens
    /// the file ([`Ring::open`]) uses the same ring. For a ring in /dev/shm by name, pass
    /// [`crate::shm_path`]`("name")?` (its directory is created when missing).
    ///
    /// The file is fully allocated (a full disk or tmpfs is [`Error::NoSpace`] now, never a
    /// `SIGBUS` later) and initialised under a temporary name, then linked to `path`: no
    /// process can open a half-made ring.
    ///
    /// # Errors
    ///
    /// The parameter errors of [`RingBuilder::build`]; [`Error::AlreadyExists`] if `path`
    /// exists; [`Error::PermissionDenied`], [`Error::NotFound`] (no such directory),
    /// [`Error::NoSpace`], [`Error::InvalidPath`], [`Error::Io`].
    #[cfg(not(loom))]
    pub fn create(self, path: impl AsRef<Path>) -> Result<Ring, Error> {
        let path = path.as_ref();
        let layout = self.params.validate()?;
        crate::storage::ensure_shm_dir(path)?;
        let (storage, temp) = crate::storage::create_temp(path, layout.total_len, self.mode)?;
        let owner = storage
            .file()
            .try_clone()
            .map_err(|e| crate::storage::io_error(path, "dup", &e))?;
        let liveness = Liveness::file(
            owner
                .try_clone()
                .map_err(|e| crate::storage::io_error(path, "dup", &e))?,
        )
        .map_err(|e| crate::storage::io_error(path, "reopen", &e))?;
        crate::hooks::pause_at("create");
        let shared = Shared::create(layout, Box::new(storage), liveness, Some(path.to_owned()));
        temp.publish(&owner, path)?;
        Ok(Ring {
            shared: Arc::new(shared),
        })
    }

    /// Opens the ring at `path` if it exists (checking that its parameters are this
    /// builder's), or creates it. Safe when several processes race to do this for the same
    /// path: exactly one creates, the others open its ring.
    ///
    /// # Errors
    ///
    /// Those of [`RingBuilder::create`] and [`Ring::open`], and [`Error::ParamsMismatch`] if
    /// the existing ring differs from this builder's parameters.
    #[cfg(not(loom))]
    pub fn open_or_create(self, path: impl AsRef<Path>) -> Result<Ring, Error> {
        let path = path.as_ref();
        for _ in 0..100 {
            match Ring::open_inner(path, Some(&self.params), self.init_timeout) {
                Err(Error::NotFound { .. }) => {}
                other => return other,
            }
            match self.clone().create(path) {
                Err(Error::AlreadyExists { .. }) => {}
                other => return other,
            }
            // Created and removed again between our two attempts: try once more.
        }
        Err(Error::NotFound {
            path: path.display().to_string(),
        })
    }
}

impl Ring {
    /// Options for a new ring, with defaults: 1024 slots of 64 bytes, single producer, 32
    /// consumer entries, wake-ups on.
    pub fn builder() -> RingBuilder {
        RingBuilder::default()
    }

    /// A producer that waits with [`WaitStrategy::Backoff`] (or `Yield` on a ring without
    /// wake-ups).
    ///
    /// # Errors
    ///
    /// [`Error::ProducerTaken`] if this is a single-producer ring whose producer is alive.
    pub fn producer(&self) -> Result<Producer, Error> {
        let wait = if self.shared.wakeups {
            WaitStrategy::Backoff
        } else {
            WaitStrategy::Yield
        };
        self.producer_with(wait)
    }

    /// A producer that waits on a full ring by `wait`.
    ///
    /// # Errors
    ///
    /// [`Error::ProducerTaken`] as for [`Ring::producer`]; [`Error::WakeupsDisabled`] for a
    /// blocking strategy on a ring created without wake-ups.
    pub fn producer_with(&self, wait: WaitStrategy) -> Result<Producer, Error> {
        Producer::new(Arc::clone(&self.shared), wait)
    }

    /// Starts attaching a subscriber named `name`: it will see every message, in order.
    pub fn subscriber(&self, name: &str) -> ConsumerBuilder<'_> {
        ConsumerBuilder::new(self, name, None)
    }

    /// Starts attaching worker `name` to the group `group` (created by its first worker):
    /// each message reaches exactly one worker of the group.
    pub fn worker(&self, group: &str, name: &str) -> ConsumerBuilder<'_> {
        ConsumerBuilder::new(self, name, Some(group))
    }

    /// Number of slots.
    pub fn capacity(&self) -> u64 {
        self.shared.capacity()
    }

    /// Bytes per slot, header included.
    pub fn slot_size(&self) -> usize {
        self.shared.layout.params.slot_size
    }

    /// The largest message, in bytes.
    pub fn max_message_len(&self) -> usize {
        self.shared.layout.payload_capacity()
    }

    /// Single or multi producer.
    pub fn producer_mode(&self) -> ProducerMode {
        self.shared.layout.params.mode
    }

    /// The sequence of the first message.
    pub fn initial_sequence(&self) -> u64 {
        self.shared.layout.params.initial_sequence
    }

    /// Whether the ring runs the futex wake-up protocol.
    pub fn wakeups(&self) -> bool {
        self.shared.wakeups
    }

    /// A fixed-size ring's message size ([`RingBuilder::fixed_size`]); `None` for a ring
    /// with slot headers, whose messages are 0 to [`Ring::max_message_len`] bytes.
    pub fn fixed_size(&self) -> Option<usize> {
        let params = &self.shared.layout.params;
        params.fixed.then_some(params.slot_size)
    }

    /// The next sequence to be published: in single-producer mode every sequence below it
    /// is published; in multi-producer mode every sequence below it is claimed (some may
    /// still be being written).
    pub fn cursor(&self) -> u64 {
        self.shared.next_sequence()
    }

    /// Opens the ring in the file at `path` (a path, or [`crate::shm_path`]`("name")?`),
    /// waiting up to 2 s for its creator to finish initialising it.
    ///
    /// Everything in the header is validated before use, and nothing read from the mapping
    /// later is trusted: a peer writing garbage into it can make operations fail or stall
    /// (until their timeouts), never read or write outside the ring or panic.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`], [`Error::PermissionDenied`], [`Error::NotARing`],
    /// [`Error::IncompatibleVersion`], [`Error::Truncated`], [`Error::Corrupt`],
    /// [`Error::NotInitialised`], [`Error::Io`].
    #[cfg(not(loom))]
    pub fn open(path: impl AsRef<Path>) -> Result<Ring, Error> {
        Ring::open_inner(path.as_ref(), None, Duration::from_secs(2))
    }

    #[cfg(not(loom))]
    fn open_inner(path: &Path, expected: Option<&Params>, timeout: Duration) -> Result<Ring, Error> {
        let storage = crate::storage::open_file(path)?;
        Ok(Ring {
            shared: Arc::new(Shared::open(storage, path, expected, timeout)?),
        })
    }

    /// Removes the ring file at `path`. Processes that have it open keep using it; new opens
    /// fail with [`Error::NotFound`] (or find a new ring of that name).
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`], [`Error::PermissionDenied`], [`Error::Io`].
    #[cfg(not(loom))]
    pub fn remove(path: impl AsRef<Path>) -> Result<(), Error> {
        let path = path.as_ref();
        std::fs::remove_file(path).map_err(|e| crate::storage::io_error(path, "unlink", &e))
    }

    /// The ring's file, or `None` for a heap ring.
    pub fn path(&self) -> Option<&Path> {
        self.shared.path.as_deref()
    }

    /// How many messages groups have redelivered since the ring was created (claims taken
    /// over from workers that died or detached holding them).
    pub fn redelivered_count(&self) -> u64 {
        // Relaxed: a statistic.
        self.shared.redelivered().load_relaxed()
    }

    /// How many slots were skipped since the ring was created because the producer that
    /// claimed them died before publishing.
    pub fn skipped_count(&self) -> u64 {
        // Relaxed: a statistic.
        self.shared.skipped_total().load_relaxed()
    }

    /// Cleans up after processes that died while attached: detaches their ephemeral
    /// subscribers, hands their workers' claims to their groups, evicts dead durable
    /// subscribers past their delay, skips the slots their producers claimed and never
    /// published. Returns how many entries and slots it cleaned up. Handles of a shared ring
    /// do this on their own while they wait, every 50 ms; this is for tools (`ringmq stat`)
    /// and for heap rings, where it evicts detached durable subscribers past their delay.
    pub fn reap_dead(&self) -> usize {
        self.shared.reap_dead()
    }

    /// A snapshot of the attached consumers, groups and workers.
    pub fn consumers(&self) -> Vec<ConsumerInfo> {
        table::snapshot(&self.shared)
    }
}

/// How many slot stamps a single-producer consumer reads before it asks the cursor how far a
/// batch goes (see `Shared::published_until`).
pub(crate) const STAMP_SCAN: u64 = 8;

/// The slot array's geometry and the cursor's address, copied out of [`Shared`]: a loop over
/// slots that holds it in a local keeps it in registers, where through `&Shared` the compiler
/// reloads every field for every slot (a payload written through a raw pointer might, for
/// all it knows, alias them). A handle may keep one for its ring ([`Shared::slots_with`]).
#[derive(Clone, Copy)]
// Under loom the slot accessors go through `Shared` (loom objects), leaving the addresses unread.
#[cfg_attr(loom, allow(dead_code))]
pub(crate) struct Geometry {
    /// The first slot.
    base: *mut u8,
    mask: u64,
    slot_size: usize,
    /// Bytes before the payload: the slot header, or 0 in a fixed-size ring.
    header_len: usize,
    payload_capacity: usize,
    /// The cursor word (under loom the words are loom objects kept apart: see `cursor_with`).
    #[cfg(not(loom))]
    cursor: *const Sequence,
}

// SAFETY: the pointers are addresses in a ring's region, dereferenced only through
// `Shared::slots_with` and `Shared::cursor_with`, whose callers hold that ring's `Shared`
// (which owns the region) for as long as they use them; every shared access through them
// follows the ring's protocol, as for `Region`.
unsafe impl Send for Geometry {}
// SAFETY: as for `Send`.
unsafe impl Sync for Geometry {}

impl Geometry {
    /// Bytes of payload per slot.
    #[inline]
    pub(crate) fn payload_capacity(&self) -> usize {
        self.payload_capacity
    }
}

/// The address of a consumer table entry's sequence word, kept by the handle that owns the
/// entry so that storing its position computes and checks no offset (under loom, the entry's
/// index: the words are loom objects).
#[derive(Clone, Copy)]
pub(crate) struct SequenceRef {
    #[cfg(not(loom))]
    word: *const Sequence,
    #[cfg(loom)]
    index: usize,
}

// SAFETY: as for `Geometry`: the pointer is an address in a ring's region, dereferenced only
// through `Shared::sequence_with`, whose callers hold that ring's `Shared`; every access to
// the word is atomic.
unsafe impl Send for SequenceRef {}
// SAFETY: as for `Send`.
unsafe impl Sync for SequenceRef {}

/// [`Geometry`] for the duration of a borrow of its [`Shared`].
#[derive(Clone, Copy)]
pub(crate) struct Slots<'a> {
    #[cfg(loom)]
    shared: &'a Shared,
    geometry: Geometry,
    _shared: std::marker::PhantomData<&'a Shared>,
}

impl<'a> Slots<'a> {
    /// The header word of the slot that holds `sequence` (as [`Shared::slot_header`]; not for
    /// fixed-size rings).
    #[inline]
    pub(crate) fn header(&self, sequence: u64) -> &'a Word {
        #[cfg(loom)]
        return self.shared.slot_header(sequence);
        #[cfg(not(loom))]
        // SAFETY: the index is masked below the capacity, so the slot lies inside the slot
        // area `base` points to, valid for `'a` (it borrows the `Shared`); slot offsets are
        // multiples of 8 from a 128-aligned area; `Word` is `repr(transparent)` over
        // `AtomicU64` and every access to header words is atomic.
        unsafe {
            &*(self
                .geometry
                .base
                .add((sequence & self.geometry.mask) as usize * self.geometry.slot_size)
                as *const Word)
        }
    }

    /// Pointer to the payload of the slot holding `sequence`, valid for
    /// [`Slots::payload_capacity`] bytes (as [`Shared::payload`]).
    #[inline]
    pub(crate) fn payload(&self, sequence: u64) -> *mut u8 {
        #[cfg(loom)]
        return self.shared.payload(sequence);
        #[cfg(not(loom))]
        // SAFETY: as in `header`: the payload ends where the slot ends, inside the area.
        unsafe {
            self.geometry.base.add(
                (sequence & self.geometry.mask) as usize * self.geometry.slot_size + self.geometry.header_len,
            )
        }
    }

    /// Bytes of payload per slot.
    #[inline]
    pub(crate) fn payload_capacity(&self) -> usize {
        self.geometry.payload_capacity
    }

    /// How many of the `count` (at most a lap) slots from `start` lie before the slot array's
    /// end; the rest continue from its first slot.
    #[inline]
    pub(crate) fn before_wrap(&self, start: u64, count: u64) -> u64 {
        let capacity = self.geometry.mask + 1;
        count.min(capacity - (start & self.geometry.mask))
    }

    /// Whether this is a fixed-size ring (no slot headers).
    #[inline]
    pub(crate) fn fixed(&self) -> bool {
        self.geometry.header_len == 0
    }

    /// The header of the published slot holding `sequence`, its length clamped to the
    /// payload (the word is not trusted). A fixed-size ring's slots have none: there every
    /// message is the whole payload.
    #[inline(always)]
    pub(crate) fn read_header(&self, sequence: u64) -> layout::SlotHeader {
        if self.fixed() {
            return layout::SlotHeader {
                stamp: layout::stamp(sequence),
                len: self.geometry.payload_capacity,
                flags: 0,
            };
        }
        // Acquire: pairs with the [stamp] Release (already synchronised by
        // `Shared::published_until`, and free on x86).
        let mut header = layout::SlotHeader::decode(self.header(sequence).load_acquire());
        header.len = header.len.min(self.geometry.payload_capacity);
        header
    }
}
