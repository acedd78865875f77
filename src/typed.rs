//! Typed handles: producers and consumers of one plain-old-data type.
//!
//! A message is the bytes of a `T: bytemuck::Pod`, copied in and out (or written in place
//! through [`TypedProducer::try_publish_with`]; in a fixed-size ring of `T`s, whole slices at
//! once through [`TypedProducer::try_publish_slice`] and [`crate::Batch::as_slices`]). The
//! type is checked once, when the handle is made. The handles carry `T` in their type, so
//! they are `Send` only when `T` is:
//!
//! ```compile_fail
//! use bytemuck::{Pod, Zeroable};
//! use std::marker::PhantomData;
//!
//! // Plain old data that must stay on its thread.
//! #[derive(Clone, Copy, Zeroable, Pod)]
//! #[repr(C)]
//! struct Local { value: u64, _not_send: PhantomData<*const u8> }
//!
//! fn assert_send<S: Send>(_: &S) {}
//! let ring = ringmq::Ring::builder().build().unwrap();
//! let producer = ringmq::TypedProducer::<Local>::new(ring.producer().unwrap()).unwrap();
//! assert_send(&producer);
//! ```
//!
//! ```compile_fail
//! use bytemuck::{Pod, Zeroable};
//! use std::marker::PhantomData;
//!
//! #[derive(Clone, Copy, Zeroable, Pod)]
//! #[repr(C)]
//! struct Local { value: u64, _not_send: PhantomData<*const u8> }
//!
//! fn assert_send<S: Send>(_: &S) {}
//! let ring = ringmq::Ring::builder().build().unwrap();
//! let consumer = ring.subscriber("c").attach().unwrap();
//! let consumer = ringmq::TypedConsumer::<Local>::new(consumer).unwrap();
//! assert_send(&consumer);
//! ```
//!
//! The same code with a `Send` payload compiles:
//!
//! ```
//! fn assert_send<S: Send>(_: &S) {}
//! let ring = ringmq::Ring::builder().build().unwrap();
//! let producer = ringmq::TypedProducer::<u64>::new(ring.producer().unwrap()).unwrap();
//! let consumer = ringmq::TypedConsumer::<u64>::new(ring.subscriber("c").attach().unwrap()).unwrap();
//! assert_send(&producer);
//! assert_send(&consumer);
//! ```

use crate::consumer::Consumer;
use crate::error::{PublishError, RecvError, TypeError};
use crate::layout::slot::check_type;
use crate::producer::{Producer, When};
use bytemuck::Pod;
use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

/// A producer of `T` values.
pub struct TypedProducer<T> {
    inner: Producer,
    _type: PhantomData<T>,
}

impl<T> fmt::Debug for TypedProducer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypedProducer")
            .field("inner", &self.inner)
            .finish()
    }
}

impl<T: Pod> TypedProducer<T> {
    /// Wraps a producer.
    ///
    /// # Errors
    ///
    /// [`TypeError::Mismatch`] if `T` does not fit a slot's payload (in a fixed-size ring: is
    /// not its message size) or needs alignment above 8.
    pub fn new(inner: Producer) -> Result<Self, TypeError> {
        check_type::<T>(inner.max_message_len(), inner.is_fixed_size())?;
        Ok(TypedProducer {
            inner,
            _type: PhantomData,
        })
    }

    /// Publishes `value` if there is room now; returns its sequence.
    ///
    /// # Errors
    ///
    /// As [`Producer::try_publish`].
    // Always inlined, as `Producer::try_publish`: the copy then has a constant length.
    #[inline(always)]
    pub fn try_publish(&mut self, value: &T) -> Result<u64, PublishError> {
        self.inner.try_publish(bytemuck::bytes_of(value))
    }

    /// Publishes `value`, waiting for room.
    ///
    /// # Errors
    ///
    /// As [`Producer::publish`].
    #[inline(always)]
    pub fn publish(&mut self, value: &T) -> Result<u64, PublishError> {
        self.inner.publish(bytemuck::bytes_of(value))
    }

    /// Publishes `value`, waiting at most `timeout` for room.
    ///
    /// # Errors
    ///
    /// As [`Producer::publish_timeout`].
    #[inline]
    pub fn publish_timeout(&mut self, value: &T, timeout: Duration) -> Result<u64, PublishError> {
        self.inner.publish_timeout(bytemuck::bytes_of(value), timeout)
    }

    /// Publishes each of `values` as one message, with one publish, if there is room for all
    /// of them now; returns the first sequence. In a fixed-size ring of `size_of::<T>()`-byte
    /// messages the slice is copied in whole (in two parts if it wraps around the ring's
    /// end): the fastest way to publish values that already sit in a slice; read them back
    /// with [`crate::Batch::as_slices`]. Values built only to be published go faster written
    /// in place by [`Producer::try_publish_batch_with`] (no staging stores).
    ///
    /// # Errors
    ///
    /// [`PublishError::Full`], [`PublishError::BatchTooLarge`], [`PublishError::Exhausted`].
    #[inline(always)]
    pub fn try_publish_slice(&mut self, values: &[T]) -> Result<u64, PublishError> {
        self.inner.publish_values_when(values, When::Now)
    }

    /// Like [`TypedProducer::try_publish_slice`], waiting while the ring is full.
    ///
    /// # Errors
    ///
    /// [`PublishError::BatchTooLarge`], [`PublishError::Exhausted`].
    #[inline(always)]
    pub fn publish_slice(&mut self, values: &[T]) -> Result<u64, PublishError> {
        self.inner.publish_values_when(values, When::Until(None))
    }

    /// Like [`TypedProducer::try_publish_slice`], waiting at most `timeout` for room.
    ///
    /// # Errors
    ///
    /// [`PublishError::Timeout`], otherwise as [`TypedProducer::publish_slice`].
    #[inline]
    pub fn publish_slice_timeout(&mut self, values: &[T], timeout: Duration) -> Result<u64, PublishError> {
        self.inner
            .publish_values_when(values, When::Until(crate::wait::deadline_after(timeout)))
    }

    /// Claims a slot if there is room now and lets `fill` write the value in place (zero
    /// copy); publishes when `fill` returns. The slot starts zeroed or with an old message.
    ///
    /// # Errors
    ///
    /// As [`Producer::try_claim_slot`].
    pub fn try_publish_with(&mut self, fill: impl FnOnce(&mut T)) -> Result<u64, PublishError> {
        Self::fill_claim(self.inner.try_claim_slot()?, fill)
    }

    /// Like [`TypedProducer::try_publish_with`], waiting while the ring is full.
    ///
    /// # Errors
    ///
    /// As [`Producer::claim_slot`].
    pub fn publish_with(&mut self, fill: impl FnOnce(&mut T)) -> Result<u64, PublishError> {
        Self::fill_claim(self.inner.claim_slot()?, fill)
    }

    /// Like [`TypedProducer::try_publish_with`], waiting at most `timeout` for room.
    ///
    /// # Errors
    ///
    /// As [`Producer::claim_slot_timeout`].
    pub fn publish_with_timeout(
        &mut self,
        fill: impl FnOnce(&mut T),
        timeout: Duration,
    ) -> Result<u64, PublishError> {
        Self::fill_claim(self.inner.claim_slot_timeout(timeout)?, fill)
    }

    fn fill_claim(mut claim: crate::Claim<'_>, fill: impl FnOnce(&mut T)) -> Result<u64, PublishError> {
        let sequence = claim.sequence();
        // `new` checked size and alignment, and payloads are 8-aligned: this cannot fail.
        if let Ok(value) = claim.value_mut::<T>() {
            fill(value);
        }
        Ok(sequence)
    }

    /// The underlying byte producer.
    #[inline]
    pub fn into_inner(self) -> Producer {
        self.inner
    }
}

/// A consumer of `T` values.
pub struct TypedConsumer<T> {
    inner: Consumer,
    _type: PhantomData<T>,
}

impl<T> fmt::Debug for TypedConsumer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypedConsumer")
            .field("inner", &self.inner)
            .finish()
    }
}

impl<T: Pod> TypedConsumer<T> {
    /// Wraps a consumer.
    ///
    /// # Errors
    ///
    /// [`TypeError::Mismatch`] if `T` does not fit a slot's payload (in a fixed-size ring: is
    /// not its message size) or needs alignment above 8.
    pub fn new(inner: Consumer) -> Result<Self, TypeError> {
        check_type::<T>(inner.max_message_len(), inner.is_fixed_size())?;
        Ok(TypedConsumer {
            inner,
            _type: PhantomData,
        })
    }

    /// The next value if one is available now, with its sequence. A message shorter than
    /// `T` (published by a byte producer) is zero-extended.
    ///
    /// # Errors
    ///
    /// [`RecvError::Empty`].
    #[inline]
    pub fn try_recv(&mut self) -> Result<(u64, T), RecvError> {
        let message = self.inner.try_recv()?;
        Ok((message.sequence(), decode(&message)))
    }

    /// The next value, waiting by the wait strategy.
    ///
    /// # Errors
    ///
    /// As [`Consumer::recv`].
    #[inline]
    pub fn recv(&mut self) -> Result<(u64, T), RecvError> {
        let message = self.inner.recv()?;
        Ok((message.sequence(), decode(&message)))
    }

    /// The next value, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`RecvError::Timeout`].
    #[inline]
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<(u64, T), RecvError> {
        let message = self.inner.recv_timeout(timeout)?;
        Ok((message.sequence(), decode(&message)))
    }

    /// Calls `f` on every value available now (up to `max`), releasing them with one store.
    /// Returns how many there were.
    #[inline]
    pub fn try_poll(&mut self, max: usize, mut f: impl FnMut(u64, T)) -> usize {
        let batch = self.inner.try_poll(max);
        let mut n = 0;
        for message in batch.iter() {
            f(message.sequence(), decode(&message));
            n += 1;
        }
        n
    }

    /// The underlying byte consumer.
    #[inline]
    pub fn into_inner(self) -> Consumer {
        self.inner
    }
}

fn decode<T: Pod>(bytes: &[u8]) -> T {
    let size = std::mem::size_of::<T>();
    if bytes.len() >= size {
        return bytemuck::pod_read_unaligned(&bytes[..size]);
    }
    let mut value = T::zeroed();
    bytemuck::bytes_of_mut(&mut value)[..bytes.len()].copy_from_slice(bytes);
    value
}
