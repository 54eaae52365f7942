//! Profiling a real Pulley `Vm`.
//!
//! - Pulley publishes the PC of the instruction it executes in an
//!   `ExecutingPc` cell (feature `profile`); pcprof samples that cell
//!   directly, so the interpreter pays nothing beyond Pulley's own store.
//! - Pulley leaves the PC of the last `ret` in the cell after a call returns:
//!   a Vm idle between calls would be sampled as executing that `ret`
//!   forever. [`ProfiledVm`] wraps `Vm::call` and marks the interpreter busy
//!   only while bytecode runs; the sampler skips it otherwise.

use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use pulley_interpreter::interp::{DoneReason, RegType, Val, Vm};
use pulley_interpreter::profile::ExecutingPc;

use crate::{Error, PcSource, ProfilerHandle};

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
    vm: Vm,
    busy: Arc<AtomicBool>,
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
        profiler.register_source(
            label,
            PulleySource {
                pc: vm.executing_pc().clone(),
                busy: Arc::clone(&busy),
            },
        )?;
        Ok(ProfiledVm { vm, busy })
    }

    /// The Vm, for setting up registers and memory.
    pub fn vm_mut(&mut self) -> &mut Vm {
        &mut self.vm
    }

    /// Runs `f` with the interpreter marked busy: samples are taken only
    /// while it runs.
    pub fn busy<R>(&mut self, f: impl FnOnce(&mut Vm) -> R) -> R {
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
        self.busy(|vm| {
            // SAFETY: the caller upholds `Vm::call`'s contract.
            match unsafe { vm.call(func, args, rets) } {
                DoneReason::ReturnToHost(vals) => DoneReason::ReturnToHost(vals.collect()),
                DoneReason::Trap { pc, kind } => DoneReason::Trap { pc, kind },
                DoneReason::CallIndirectHost { id, resume } => {
                    DoneReason::CallIndirectHost { id, resume }
                }
            }
        })
    }
}
