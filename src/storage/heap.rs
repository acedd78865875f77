//! The heap backend: one zeroed, 128-byte aligned allocation, for rings inside one process.

use super::Storage;
use crate::error::BuildError;
use crate::layout::LINE;
use std::alloc::{self, Layout};
use std::ptr::NonNull;

/// A zeroed heap block that holds a ring.
#[derive(Debug)]
pub(crate) struct HeapStorage {
    ptr: NonNull<u8>,
    layout: Layout,
}

impl HeapStorage {
    /// Allocates `len` zeroed bytes aligned to a 128-byte line.
    pub(crate) fn new(len: usize) -> Result<Self, BuildError> {
        let layout =
            Layout::from_size_align(len.max(LINE), LINE).map_err(|_| BuildError::OutOfMemory { len })?;
        // SAFETY: `layout` has a non-zero size (at least one line).
        let ptr = unsafe { alloc::alloc_zeroed(layout) };
        let ptr = NonNull::new(ptr).ok_or(BuildError::OutOfMemory { len })?;
        Ok(HeapStorage { ptr, layout })
    }
}

impl Drop for HeapStorage {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from `alloc_zeroed` with exactly `self.layout` and is freed once.
        unsafe { alloc::dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

// SAFETY: the block is plain memory owned by this value; sharing it between threads is the
// ring protocol's business (all shared words are atomics), and the pointer is not tied to a
// thread.
unsafe impl Send for HeapStorage {}
// SAFETY: see `Send`.
unsafe impl Sync for HeapStorage {}

// SAFETY: `ptr` is valid for `layout.size()` bytes until drop, aligned to LINE, never moves,
// and `alloc_zeroed` zeroed it.
unsafe impl Storage for HeapStorage {
    fn base(&self) -> NonNull<u8> {
        self.ptr
    }

    fn len(&self) -> usize {
        self.layout.size()
    }
}
