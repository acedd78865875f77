//! Typed handles: producers and consumers of one plain-old-data type.
//!
//! A message is the bytes of a `T: bytemuck::Pod`, copied in and out (or written in place
//! through [`TypedProducer::try_publish_with`]). The handles carry `T` in their type, so they
//! are `Send` only when `T` is:
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
use crate::error::{Error, PublishError, RecvError};
use crate::producer::Producer;
use bytemuck::Pod;
use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

/// `T` fits the payload (a fixed-size ring's: is its message size) and needs no more than
/// the slots' 8-byte alignment.
fn check_type<T: Pod>(capacity: usize, fixed: bool) -> Result<(), Error> {
    let size = std::mem::size_of::<T>();
    let align = std::mem::align_of::<T>();
    if size > capacity || align > 8 || (fixed && size != capacity) {
        return Err(Error::TypeMismatch {
            size,
            align,
            capacity,
        });
    }
    Ok(())
}

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
    /// [`Error::TypeMismatch`] if `T` does not fit a slot's payload or needs alignment above 8.
    pub fn new(inner: Producer) -> Result<Self, Error> {
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
    #[inline]
    pub fn try_publish(&mut self, value: &T) -> Result<u64, PublishError> {
        self.inner.try_publish(bytemuck::bytes_of(value))
    }

    /// Publishes `value`, waiting for room.
    ///
    /// # Errors
    ///
    /// As [`Producer::publish`].
    #[inline]
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

    /// Claims a slot if there is room now and lets `fill` write the value in place (zero
    /// copy); publishes when `fill` returns. The slot starts zeroed or with an old message.
    ///
    /// # Errors
    ///
    /// As [`Producer::try_claim_slot`].
    pub fn try_publish_with(&mut self, fill: impl FnOnce(&mut T)) -> Result<u64, PublishError> {
        let mut claim = self.inner.try_claim_slot()?;
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
    /// [`Error::TypeMismatch`] if `T` does not fit a slot's payload or needs alignment above 8.
    pub fn new(inner: Consumer) -> Result<Self, Error> {
        check_type::<T>(inner.shared_payload_capacity(), inner.shared_fixed())?;
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
        for msg in batch.iter() {
            f(msg.sequence(), decode(&msg));
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
