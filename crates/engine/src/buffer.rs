//! Output buffers that a kernel fills completely, allocated without zeroing them first.
//!
//! `vec![0.0; n]` asks the allocator for zeroed memory: mimalloc clears every block it reuses
//! (`memset`) and the kernel clears every fresh page it maps, work that is thrown away when the
//! kernel then overwrites every element. On the GPT's training step that zeroing took about a
//! quarter of the time. Kernels that overwrite their whole output therefore write into
//! [`MaybeUninit`] slots, which Rust lets them do safely, and [`filled`] turns the slots into a
//! `Vec` once they are all written.

use std::mem::MaybeUninit;

/// A vector of `len` elements, every one of which `fill` writes into the uninitialised slots it is
/// given (`fill(&mut slots)` with `slots.len() == len`).
///
/// # Safety
/// `fill` must write every element of the slice it receives. If it panics, nothing unsound
/// happens: the vector is dropped with length 0.
pub(crate) unsafe fn filled<F>(len: usize, fill: impl FnOnce(&mut [MaybeUninit<F>])) -> Vec<F> {
    let mut v = Vec::with_capacity(len);
    fill(&mut v.spare_capacity_mut()[..len]);
    // SAFETY: the first `len` slots were written (the caller's contract), and the capacity is at
    // least `len`.
    unsafe { v.set_len(len) };
    v
}

/// An initialised slice as slots to overwrite, for kernels that take [`MaybeUninit`] output (or
/// that read and add to their output, as an accumulating matrix product does).
///
/// # Safety
/// Nothing may write [`MaybeUninit::uninit`] into the returned slots: `xs` must stay initialised.
pub(crate) unsafe fn as_slots<F>(xs: &mut [F]) -> &mut [MaybeUninit<F>] {
    // SAFETY: `MaybeUninit<F>` has the layout of `F`; the caller keeps every element initialised.
    unsafe { &mut *(xs as *mut [F] as *mut [MaybeUninit<F>]) }
}

/// The value of a slot that a kernel has written.
///
/// # Safety
/// `slot` must have been written.
#[inline(always)]
pub(crate) unsafe fn written<F: Copy>(slot: &MaybeUninit<F>) -> F {
    // SAFETY: the caller's contract.
    unsafe { slot.assume_init() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filled_keeps_every_written_element() {
        // SAFETY: the closure writes every slot.
        let v: Vec<f32> = unsafe {
            filled(5, |slots| {
                for (i, s) in slots.iter_mut().enumerate() {
                    s.write(i as f32 * 0.5);
                }
            })
        };
        assert_eq!(v, [0.0, 0.5, 1.0, 1.5, 2.0]);
        // SAFETY: nothing is written.
        let empty: Vec<f64> = unsafe { filled(0, |_| {}) };
        assert!(empty.is_empty());
    }

    #[test]
    fn slots_of_an_initialised_slice_overwrite_it() {
        let mut xs = vec![1.0f64, 2.0, 3.0];
        // SAFETY: only initialised values are written.
        let slots = unsafe { as_slots(&mut xs) };
        slots[1].write(7.0);
        // SAFETY: every slot of an initialised slice is written.
        assert_eq!(unsafe { written(&slots[0]) }, 1.0);
        assert_eq!(xs, [1.0, 7.0, 3.0]);
    }
}
