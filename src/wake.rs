//! Async waiters: futures that wait on one of a ring's events (published, released) in this
//! process, and the waker thread that turns the event's futex wake-ups into `Waker` calls.
//!
//! The protocol (tag `[async-wakeup]`) is `[wakeup]`'s (`wait.rs`) with the sleeping split in
//! two. A future's poll is the waiter's first half; the waker thread sleeps for it:
//!
//! ```text
//! future (poll)                        notifier (publish, release)    waker thread
//! waiters += 1 (once)                  store the position (Release)   loop {
//! fence(SeqCst)                        fence(SeqCst)                    w = word (Acquire)
//! observed = word (Acquire)            if waiters > 0 {                 wake entries whose
//! if condition holds { Ready }             word += 1 (Release)              observed != w
//! entry = (observed, waker)                FUTEX_WAKE(word, all)        none left: park
//! Pending                              }                                FUTEX_WAIT(word, w)
//!                                                                     }
//! ```
//!
//! A notifier whose store the future's check missed saw the future counted (store-buffering,
//! as in `[wakeup]`) and bumps the word after the future's `observed` load, so the word differs
//! from the entry's `observed` from then on. The waker thread compares under the entries'
//! lock: an entry it sees is woken if the word moved since the future looked, and a thread
//! that sleeps does so on a value every entry it saw had observed, so the bump (with its
//! FUTEX_WAKE) wakes it; an entry added after the thread's load has observed a value at least
//! as new, so if it differs the word already moved and FUTEX_WAIT returns at once. The thread
//! parks (no timer) while there are no entries; an insert into an empty set unparks it.
//! A publish with no future waiting still pays one fence and one load: no syscall.
//!
//! A notifier in the futures' own process wakes their entries itself, and issues the
//! `FUTEX_WAKE` only if the event's waiter count, read under the entries' lock, exceeds the
//! futures tallied there (tag `[async-local]`, [`AsyncWaiters::wake_local`]): otherwise
//! nobody but those futures waits, and the waker thread, asleep for them, is left asleep (a
//! thread wake-up less on every hop between two tasks of one process). So that it still
//! keeps the futures' deadlines, a future whose deadline comes before the thread's planned
//! wake-up bumps the word and wakes it.

use crate::atomic::{Word, Word32};
use crate::sync::{fence, Mutex, Ordering};
use std::task::Waker;
use std::time::{Duration, Instant};

/// One waiting future's entry.
struct Entry {
    key: u64,
    observed: u32,
    waker: Waker,
    deadline: Option<Instant>,
}

#[derive(Default)]
struct Inner {
    entries: Vec<Entry>,
    /// Futures of this process counted in the event's waiter count, tallied here under the
    /// lock after their count went up and untallied before it goes down: a notifier that
    /// reads the waiter count under the lock finds it at least this (`[async-local]`).
    tallied: u64,
    next_key: u64,
    /// Whether a waker thread runs (parked or not) for these waiters.
    thread: bool,
    /// Whether the thread is parked on `unpark` (no entries).
    parked: bool,
    /// When the thread, asleep on the word, wakes at the latest (`None`: it is not).
    wake_by: Option<Instant>,
}

/// The futures waiting on one event of one ring in this process.
#[derive(Default)]
pub(crate) struct AsyncWaiters {
    inner: Mutex<Inner>,
    #[cfg(not(loom))]
    unpark: std::sync::Condvar,
}

impl std::fmt::Debug for AsyncWaiters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncWaiters").finish_non_exhaustive()
    }
}

/// The futex words of the event a future waits on.
#[derive(Clone, Copy)]
pub(crate) struct Words<'a> {
    pub word: &'a Word32,
    pub waiters: &'a Word,
}

/// One future's place among an event's waiters: counted in the event's waiter count from its
/// first `Pending` until [`AsyncWaiters::finish`] (which its owner calls when it completes or
/// drops).
#[derive(Debug, Default)]
pub(crate) struct Place {
    key: Option<u64>,
    counted: bool,
    /// In [`Inner::tallied`].
    tallied: bool,
}

/// What a poll asks of the caller after `Pending`.
#[must_use]
pub(crate) enum Pending {
    /// Nothing: a waker thread runs.
    Nothing,
    /// Start the waker thread: none runs for these waiters.
    SpawnThread,
}

/// What one pass of the waker thread found.
pub(crate) enum Pass {
    /// Sleep on the word while it equals this, at most this long.
    Sleep(u32, Option<Duration>),
    /// No entries: the thread parked and was unparked (or timed out): go round again.
    Again,
    /// No entries for a whole park: the thread ends (the next waiter starts another).
    Exit,
}

impl AsyncWaiters {
    fn lock(&self) -> crate::sync::MutexGuard<'_, Inner> {
        // A panic while the lock was held leaves the entries consistent (each update is one
        // push, one replace or one retain).
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The future's side of `[async-wakeup]`: `Ok(Some(v))` if `check` holds (the place is
    /// finished), `Ok(None)` if `deadline` passed first, `Err(pending)` after registering
    /// `waker` for a wake-up.
    pub(crate) fn poll<T>(
        &self,
        place: &mut Place,
        words: Words<'_>,
        waker: &Waker,
        deadline: Option<Instant>,
        mut check: impl FnMut() -> Option<T>,
    ) -> Result<Option<T>, Pending> {
        if let Some(v) = check() {
            self.finish(place, words);
            return Ok(Some(v));
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            self.finish(place, words);
            return Ok(None);
        }
        if !place.counted {
            // Relaxed: the fence below orders it before the check.
            words.waiters.fetch_add_relaxed(1);
            place.counted = true;
        }
        // [async-wakeup] SeqCst: pairs with the fence in `Event::notify`.
        fence(Ordering::SeqCst);
        // Acquire: pairs with the Release bump in `Event::wake`.
        let observed = words.word.load_acquire();
        if let Some(v) = check() {
            self.finish(place, words);
            return Ok(Some(v));
        }
        let mut inner = self.lock();
        if !place.tallied {
            // [async-local] Under the lock, after the count went up (above, in this thread).
            inner.tallied += 1;
            place.tallied = true;
        }
        let key = *place.key.get_or_insert_with(|| {
            inner.next_key += 1;
            inner.next_key
        });
        let entry = Entry {
            key,
            observed,
            waker: waker.clone(),
            deadline,
        };
        match inner.entries.iter_mut().find(|e| e.key == key) {
            Some(e) => *e = entry,
            None => inner.entries.push(entry),
        }
        if !inner.thread {
            inner.thread = true;
            return Err(Pending::SpawnThread);
        }
        if inner.parked {
            inner.parked = false;
            #[cfg(not(loom))]
            self.unpark.notify_one();
        }
        // A thread asleep on the word until after this deadline would miss it: nothing else
        // need wake it (a notifier of this process wakes the futures itself). Bumping the
        // word wakes it even if it has not gone to sleep yet; the futures it finds moved
        // (this one included) poll once more.
        if let Some(d) = deadline.filter(|&d| inner.wake_by.is_some_and(|t| d < t)) {
            inner.wake_by = Some(d);
            drop(inner);
            // Release: pairs with the Acquire loads of the word (the thread's pass).
            words.word.fetch_add_release(1);
            words.word.wake_all();
        }
        Err(Pending::Nothing)
    }

    /// Takes the place out: its entry goes and it no longer counts as a waiter.
    pub(crate) fn finish(&self, place: &mut Place, words: Words<'_>) {
        if place.key.is_some() || place.tallied {
            let mut inner = self.lock();
            if let Some(key) = place.key.take() {
                inner.entries.retain(|e| e.key != key);
            }
            if std::mem::take(&mut place.tallied) {
                // [async-local] Under the lock, before the count goes down (below).
                inner.tallied -= 1;
            }
        }
        if std::mem::take(&mut place.counted) {
            // Relaxed: a notifier that still sees the count makes one spare wake.
            words.waiters.fetch_sub_relaxed(1);
        }
    }

    /// A notifier of this process bumped the word: wakes the entries that observed an older
    /// value at once, as the waker thread would a moment later (one thread wake-up less).
    /// Returns whether the event has waiters besides these futures (blocking threads, other
    /// processes' futures and threads), which only a `FUTEX_WAKE` reaches: when it has none,
    /// the notifier leaves the futex alone, and this process's waker thread asleep on it.
    ///
    /// `[async-local]`: a future is tallied under the lock after its count went up, and
    /// untallied under the lock before its count goes down, so the count read here under the
    /// lock is at least the tally; when it equals it, every waiter counted is one of the
    /// futures woken here. (A future counted and not yet tallied makes the count larger: a
    /// spare wake.)
    #[cfg(any(loom, feature = "async"))]
    pub(crate) fn wake_local(&self, words: Words<'_>) -> bool {
        let mut inner = self.lock();
        // Relaxed: ordered by the lock against the tallies (see above), and after the
        // notifier's SeqCst fence against waiters that counted themselves since.
        let others = words.waiters.load_relaxed() > inner.tallied;
        if inner.entries.is_empty() {
            return others;
        }
        // Acquire: pairs with the Release bump in `Event::wake`.
        let woken = take_due(&mut inner.entries, words.word.load_acquire(), None);
        drop(inner);
        wake_all(woken);
        others
    }

    /// The waker thread could not be started: the next registration starts one.
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn thread_failed(&self) {
        let mut inner = self.lock();
        inner.thread = false;
        for e in inner.entries.drain(..) {
            // Woken at once, each future polls again and starts a thread then.
            e.waker.wake();
        }
    }

    /// One pass of the waker thread: wakes the entries whose word moved or whose deadline
    /// passed; then says how to sleep, or parks for up to `idle` when none is left.
    pub(crate) fn pass(&self, words: Words<'_>, safety_net: Duration, idle: Duration) -> Pass {
        let mut inner = self.lock();
        // Acquire: pairs with the Release bump in `Event::wake`.
        let w = words.word.load_acquire();
        let now = Instant::now();
        let woken = take_due(&mut inner.entries, w, Some(now));
        let next = inner.entries.iter().filter_map(|e| e.deadline).min();
        let sleep = (!inner.entries.is_empty()).then(|| match next {
            Some(d) => d.saturating_duration_since(now).min(safety_net),
            None => safety_net,
        });
        inner.wake_by = sleep.and_then(|d| now.checked_add(d));
        drop(inner);
        wake_all(woken);
        if let Some(sleep) = sleep {
            return Pass::Sleep(w, Some(sleep));
        }
        // Nobody left to sleep for: the woken ran first; now the thread parks until a
        // registration (which finds `parked` and unparks it) or for `idle` at most.
        let mut inner = self.lock();
        if !inner.entries.is_empty() {
            return Pass::Again;
        }
        inner.parked = true;
        #[cfg(not(loom))]
        {
            let (guard, _) = self
                .unpark
                .wait_timeout_while(inner, idle, |i| i.parked)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            inner = guard;
        }
        #[cfg(loom)]
        let _ = idle;
        let exit = inner.parked && inner.entries.is_empty();
        inner.parked = false;
        if exit {
            inner.thread = false;
            Pass::Exit
        } else {
            Pass::Again
        }
    }
}

/// Takes out the entries whose word moved since they looked (`observed` is not `w`) or whose
/// deadline is at or before `now`; returns their wakers.
fn take_due(entries: &mut Vec<Entry>, w: u32, now: Option<Instant>) -> Vec<Waker> {
    let mut woken = Vec::new();
    entries.retain(|e| {
        let due = e.observed != w || now.zip(e.deadline).is_some_and(|(n, d)| n >= d);
        if due {
            woken.push(e.waker.clone());
        }
        !due
    });
    woken
}

fn wake_all(wakers: Vec<Waker>) {
    for waker in wakers {
        waker.wake();
    }
}

/// `RUSTFLAGS="--cfg loom" cargo test --release --lib loom_`: the `[async-wakeup]` handshake
/// between a future's poll, a notifier and the waker thread. A lost wake-up shows as a
/// deadlock (the waker thread sleeping on a word nobody bumps) or as the final assertion.
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::sync::Arc;
    use loom::sync::atomic::AtomicBool;
    use loom::thread;

    /// A waker that raises a flag.
    struct Flag(AtomicBool);

    impl std::task::Wake for Flag {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    struct Event {
        word: Word32,
        waiters: Word,
        data: Word,
    }

    impl Event {
        fn words(&self) -> Words<'_> {
            Words {
                word: &self.word,
                waiters: &self.waiters,
            }
        }

        /// The notifier's side of `[wakeup]`, as `wait::Event::notify` runs it.
        fn publish(&self) {
            self.data.store_release(1);
            fence(Ordering::SeqCst);
            if self.waiters.load_relaxed() != 0 {
                self.word.fetch_add_release(1);
                self.word.wake_all();
            }
        }
    }

    /// Runs `f` under loom, three preemptions deep unless `LOOM_MAX_PREEMPTIONS` says.
    fn model(f: impl Fn() + Sync + Send + 'static) {
        let mut builder = loom::model::Builder::new();
        if std::env::var_os("LOOM_MAX_PREEMPTIONS").is_none() {
            builder.preemption_bound = Some(3);
        }
        builder.check(f);
    }

    /// An event with nothing published and nobody waiting, and its futures' waiters.
    fn fresh() -> (Arc<Event>, Arc<AsyncWaiters>) {
        let event = Arc::new(Event {
            word: Word32::new(0),
            waiters: Word::new(0),
            data: Word::new(0),
        });
        (event, Arc::new(AsyncWaiters::default()))
    }

    #[test]
    fn loom_an_awaited_publish_is_never_lost() {
        model(|| {
            let (event, waiters) = fresh();
            let publisher = {
                let event = event.clone();
                thread::spawn(move || event.publish())
            };
            let flag = std::sync::Arc::new(Flag(AtomicBool::new(false)));
            let waker = Waker::from(flag.clone());
            let mut place = Place::default();
            // Acquire: pairs with the publisher's Release store of `data`.
            let check = || (event.data.load_acquire() == 1).then_some(());
            match waiters.poll(&mut place, event.words(), &waker, None, check) {
                Ok(seen) => assert!(seen.is_some()),
                Err(pending) => {
                    let thread = matches!(pending, Pending::SpawnThread).then(|| {
                        let (event, waiters) = (event.clone(), waiters.clone());
                        thread::spawn(move || loop {
                            match waiters.pass(event.words(), Duration::from_secs(1), Duration::ZERO) {
                                Pass::Sleep(w, timeout) => event.word.wait(w, timeout),
                                Pass::Again => {}
                                Pass::Exit => return,
                            }
                        })
                    });
                    if let Some(thread) = thread {
                        thread.join().unwrap();
                    }
                    // The waker thread ended only once it had no entry: it woke ours.
                    assert!(flag.0.load(Ordering::SeqCst), "the wake-up was lost");
                    let again = waiters.poll(&mut place, event.words(), &waker, None, check);
                    assert!(
                        matches!(again, Ok(Some(()))),
                        "woken, yet the publish is not visible"
                    );
                }
            }
            publisher.join().unwrap();
            waiters.finish(&mut place, event.words());
        });
    }

    /// `[async-local]`: a notifier of the future's own process wakes it directly and leaves
    /// the futex alone when it is the only waiter; a thread blocked on the same event
    /// (`wait::block`'s protocol) must still get its `FUTEX_WAKE` (a lost one shows as a
    /// deadlock), and a future the notifier did not wake must have had its futex woken (for
    /// the waker thread, modelled above).
    #[test]
    fn loom_a_local_notifier_skips_the_futex_only_when_its_futures_are_all_that_wait() {
        model(|| {
            let (event, waiters) = fresh();
            let notifier = {
                let (event, waiters) = (event.clone(), waiters.clone());
                thread::spawn(move || {
                    event.data.store_release(1);
                    fence(Ordering::SeqCst);
                    if event.waiters.load_relaxed() == 0 {
                        return None;
                    }
                    event.word.fetch_add_release(1);
                    let others = waiters.wake_local(event.words());
                    if others {
                        event.word.wake_all();
                    }
                    Some(others)
                })
            };
            let blocker = {
                let event = event.clone();
                thread::spawn(move || {
                    event.waiters.fetch_add_relaxed(1);
                    fence(Ordering::SeqCst);
                    loop {
                        let observed = event.word.load_acquire();
                        if event.data.load_acquire() == 1 {
                            break;
                        }
                        event.word.wait(observed, None);
                    }
                    event.waiters.fetch_sub_relaxed(1);
                })
            };
            let flag = std::sync::Arc::new(Flag(AtomicBool::new(false)));
            let waker = Waker::from(flag.clone());
            let mut place = Place::default();
            // Acquire: pairs with the notifier's Release store of `data`.
            let check = || (event.data.load_acquire() == 1).then_some(());
            let pending = waiters
                .poll(&mut place, event.words(), &waker, None, check)
                .is_err();
            let others = notifier.join().unwrap();
            blocker.join().unwrap();
            if pending && others == Some(false) {
                assert!(
                    flag.0.load(Ordering::SeqCst),
                    "the futex was left alone, yet the future was not woken"
                );
            }
            waiters.finish(&mut place, event.words());
        });
    }
}
