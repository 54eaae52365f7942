//! Profiling a real Pulley `Vm`.
//!
//! - Pulley publishes the PC of the instruction it executes in an
//!   `ExecutingPc` cell (feature `profile`); pcprof samples that cell
//!   directly, so the interpreter pays nothing beyond Pulley's own store.
//! - Pulley leaves the PC of the last `ret` in the cell after a call returns:
//!   a Vm idle between calls would be sampled as executing that `ret`
//!   forever. [`ProfiledVm`] wraps `Vm::call` and marks the interpreter busy
//!   only while bytecode runs; the sampler skips it otherwise.
//! - [`ProfiledVm::new`] registers the Vm on the activity protocol
//!   (`ProfilerHandle::register_source_on_demand`): each call is an
//!   `enter` (the bit set before the busy flag) and a `leave` (the flag
//!   cleared before the bit), so the cell reads as idle whenever the bit
//!   is clear, and the sampler reads the cells of the Vms inside a call
//!   only. A server with a Store (and a Vm) per request, thousands of them
//!   idle, costs a tick a bit each for those. Pulley itself returns to the
//!   host at every host call (`CallIndirectHost`), so calls never nest on
//!   one Vm; the Vm's drop (Pulley's `done`) comes before the bit is set
//!   for the finish. A Vm with a shadow stack ([`ProfiledVm::with_stack`])
//!   too: its stack is read after each PC while it is inside a call.
//! - Call stacks ([`ProfiledVm::with_stack`]): Pulley cannot publish its
//!   own calls without a patch (its frame pointer and link register are
//!   private to the interpreter loop), so the stack holds what the host
//!   sees: each `call` pushes the entry of the function the host called
//!   into (every sample is rooted there), and a call made while an earlier
//!   one is suspended in a host call (`CallIndirectHost`) nests above it;
//!   a call that continues the suspended one (at its `resume` PC) takes
//!   its place. Calls inside the bytecode show as the leaf's function
//!   under the root.

use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use pulley_interpreter::interp::{DoneReason, RegType, Val, Vm};
use pulley_interpreter::profile::ExecutingPc;

use crate::{Activity, Error, PcSource, ProfilerHandle, StackHandle};

/// Pulley's PC cell plus pcprof's busy flag.
#[derive(Clone)]
struct PulleySource {
    pc: ExecutingPc,
    busy: Arc<AtomicBool>,
}

impl PcSource for PulleySource {
    #[inline]
    fn pc(&self) -> Option<usize> {
        if self.busy.load(Ordering::Relaxed) {
            self.pc.get()
        } else {
            None
        }
    }

    fn is_finished(&self) -> bool {
        self.pc.is_done()
    }
}

/// A Pulley `Vm` registered with a profiler; sampled only inside
/// [`ProfiledVm::call`].
pub struct ProfiledVm {
    // Dropped first: Pulley marks its cell done, then the activity's drop
    // sets the bit so the sampler sees it (field order is drop order).
    vm: Vm,
    busy: Arc<AtomicBool>,
    /// The shadow stack, with the calls suspended in a host call: the
    /// stack's depth with the call's frame, and where it resumes.
    stack: Option<(StackHandle, Vec<(usize, usize)>)>,
    /// The Vm's bit in the activity bitmap.
    activity: Activity,
}

impl std::fmt::Debug for ProfiledVm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProfiledVm")
            .field("busy", &self.busy.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Clears the busy flag even if the call unwinds.
struct BusyGuard<'a>(&'a AtomicBool);

impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

impl ProfiledVm {
    /// Registers `vm` with the profiler under `label`.
    pub fn new(
        vm: Vm,
        profiler: &ProfilerHandle,
        label: Option<&str>,
    ) -> Result<ProfiledVm, Error> {
        let busy = Arc::new(AtomicBool::new(false));
        let activity = profiler.register_source_on_demand(
            label,
            PulleySource {
                pc: vm.executing_pc().clone(),
                busy: Arc::clone(&busy),
            },
        )?;
        Ok(ProfiledVm {
            vm,
            busy,
            stack: None,
            activity,
        })
    }

    /// Registers `vm` with a shadow stack of up to `capacity` frames: each
    /// sample is rooted at the function the host called into, host-to-guest
    /// re-entries nested (see the module docs for why that is all Pulley
    /// allows).
    pub fn with_stack(
        vm: Vm,
        profiler: &ProfilerHandle,
        label: Option<&str>,
        capacity: usize,
    ) -> Result<ProfiledVm, Error> {
        let busy = Arc::new(AtomicBool::new(false));
        let (activity, stack) = profiler.register_source_with_stack_on_demand(
            label,
            PulleySource {
                pc: vm.executing_pc().clone(),
                busy: Arc::clone(&busy),
            },
            capacity,
        )?;
        Ok(ProfiledVm {
            vm,
            busy,
            stack: Some((stack, Vec::new())),
            activity,
        })
    }

    /// The shadow stack's depth (0 without one): the calls from the host
    /// that have not returned.
    pub fn stack_depth(&self) -> usize {
        self.stack.as_ref().map_or(0, |(s, _)| s.depth())
    }

    /// The Vm, for setting up registers and memory.
    pub fn vm_mut(&mut self) -> &mut Vm {
        &mut self.vm
    }

    /// Runs `f` with the interpreter entered and marked busy: samples are
    /// taken only while it runs.
    pub fn busy<R>(&mut self, f: impl FnOnce(&mut Vm) -> R) -> R {
        // The bit before the flag; dropped in reverse order, the flag
        // (the cell reads as idle) before the bit, even on unwinding.
        let _entered = self.activity.enter();
        self.busy.store(true, Ordering::Relaxed);
        let _guard = BusyGuard(&self.busy);
        f(&mut self.vm)
    }

    /// `Vm::call`, sampled while it runs; returns the values of `rets` on
    /// a return to the host.
    ///
    /// # Safety
    /// As `pulley_interpreter::interp::Vm::call`: `func` must point to the
    /// start of valid Pulley bytecode taking `args` and returning `rets`.
    pub unsafe fn call(
        &mut self,
        func: NonNull<u8>,
        args: &[Val],
        rets: impl IntoIterator<Item = RegType>,
    ) -> DoneReason<Vec<Val>> {
        // The frame of this call: a new one, or the suspended call it
        // continues.
        let entry = func.as_ptr() as usize;
        let depth = self.stack.as_mut().map(|(stack, suspended)| {
            match suspended.last() {
                Some(&(depth, resume)) if resume == entry => {
                    suspended.pop();
                    stack.set_depth(depth);
                }
                _ => stack.call(entry),
            }
            stack.depth()
        });
        let done = self.busy(|vm| {
            // SAFETY: the caller upholds `Vm::call`'s contract.
            match unsafe { vm.call(func, args, rets) } {
                DoneReason::ReturnToHost(vals) => DoneReason::ReturnToHost(vals.collect()),
                DoneReason::Trap { pc, kind } => DoneReason::Trap { pc, kind },
                DoneReason::CallIndirectHost { id, resume } => {
                    DoneReason::CallIndirectHost { id, resume }
                }
            }
        });
        if let (Some((stack, suspended)), Some(depth)) = (self.stack.as_mut(), depth) {
            match &done {
                DoneReason::CallIndirectHost { resume, .. } => {
                    suspended.push((depth, resume.as_ptr() as usize));
                }
                // Returned or trapped: its frame goes, with any it left.
                _ => {
                    suspended.retain(|&(d, _)| d < depth);
                    stack.set_depth(depth.saturating_sub(1));
                }
            }
        }
        done
    }
}
