//! The consumer's futures (feature `async`): a message, a batch, a stream. Each waits on the
//! event its blocking forms sleep on (the producers' "published", or for a consumer that runs
//! after others, "released"), through this process's waker thread for that event: no polling,
//! no timer, and a producer in another process wakes it.

use super::{Batch, Consumer, Received};
use crate::await_event::{Awaiting, Which};
use crate::error::RecvError;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

impl Consumer {
    /// Whether the next message is here (passing over skipped slots): `try_recv` then
    /// returns it.
    fn message_ready(&mut self) -> bool {
        self.fill(1) && self.skip_to_message().is_some()
    }

    fn which(&self) -> Which {
        if self.read.barrier.on_producers() {
            Which::Published
        } else {
            Which::Released
        }
    }

    /// Waits until a message is here, or `deadline` passes (then `false`).
    pub(crate) async fn ready_async(&mut self, deadline: Option<Instant>) -> bool {
        if self.message_ready() {
            return true;
        }
        let mut awaiting = Awaiting::new(self.att.arc(), self.which());
        std::future::poll_fn(|cx| awaiting.poll(cx, deadline, || self.message_ready().then_some(())))
            .await
            .is_some()
    }

    /// The next message, awaited: [`Consumer::recv`] without blocking the thread. A message
    /// already here costs what [`Consumer::try_recv`] does, and one await of a ready future.
    /// Dropping the future before it completes loses nothing.
    ///
    /// # Errors
    ///
    /// None in practice (the type is the receive's).
    pub async fn recv_async(&mut self) -> Result<Received<'_>, RecvError> {
        self.ready_async(None).await;
        self.try_recv()
    }

    /// The available messages, up to `max`, awaited until there is at least one:
    /// [`Consumer::poll`] without blocking the thread.
    ///
    /// # Errors
    ///
    /// None in practice (the type is the receive's).
    pub async fn poll_async(&mut self, max: usize) -> Result<Batch<'_>, RecvError> {
        self.ready_async(None).await;
        Ok(self.try_poll(max))
    }

    /// The messages as a [`futures_core::Stream`] of (sequence, payload) pairs, each payload
    /// copied out (and the message acknowledged) as it is yielded. It never ends.
    pub fn stream(&mut self) -> MessageStream<'_> {
        MessageStream {
            consumer: self,
            awaiting: None,
        }
    }
}

/// The messages of a consumer as a stream; see [`Consumer::stream`].
pub struct MessageStream<'a> {
    consumer: &'a mut Consumer,
    awaiting: Option<Awaiting>,
}

impl std::fmt::Debug for MessageStream<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageStream")
            .field("consumer", &self.consumer.name())
            .finish_non_exhaustive()
    }
}

impl futures_core::Stream for MessageStream<'_> {
    type Item = (u64, Vec<u8>);

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let consumer = &mut *this.consumer;
        if !consumer.message_ready() {
            let awaiting = this
                .awaiting
                .get_or_insert_with(|| Awaiting::new(consumer.att.arc(), consumer.which()));
            if awaiting
                .poll(cx, None, || consumer.message_ready().then_some(()))
                .is_pending()
            {
                return Poll::Pending;
            }
        }
        // Done waiting: the place among the waiters goes until the next wait.
        this.awaiting = None;
        match this.consumer.try_recv() {
            Ok(message) => Poll::Ready(Some((message.sequence(), message.to_vec()))),
            // Not after `message_ready`; should it be, the next poll waits again.
            Err(_) => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }
    }
}
