//! The ractor face of an actor that lives on its own OS thread (the ticker
//! and the sampler on the timing thread, the writer on its thread).
//!
//! - One generic actor, [`Face`], for all three: its message type is the
//!   actor's public message enum (`TickerMsg`, `SamplerMsg`, `WriterMsg`),
//!   and it forwards each message, unchanged, to the thread's mailbox. So
//!   embedders reach those actors with `ractor::call!` like any other, and
//!   no message enum is mirrored.
//! - A face failing (its thread gone) is a supervision event; the shutdown
//!   talks to the mailboxes directly, so a failed face never keeps data from
//!   the disk.

use std::marker::PhantomData;
use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tracing::{debug, trace};

use crate::error::Error;

/// How a face hands a message to its thread.
pub(crate) type Forward<M> = Arc<dyn Fn(M) -> Result<(), Error> + Send + Sync>;

/// The face of an actor that lives on its own thread.
pub struct Face<M>(PhantomData<fn(M)>);

impl<M> Face<M> {
    pub(crate) fn new() -> Face<M> {
        Face(PhantomData)
    }
}

impl<M> std::fmt::Debug for Face<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Face")
    }
}

/// The face's argument and state: the actor's role and its forwarder.
pub struct FaceState<M> {
    role: &'static str,
    forward: Forward<M>,
}

impl<M> FaceState<M> {
    pub(crate) fn new(role: &'static str, forward: Forward<M>) -> FaceState<M> {
        FaceState { role, forward }
    }
}

impl<M> std::fmt::Debug for FaceState<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaceState")
            .field("role", &self.role)
            .finish()
    }
}

impl<M> Actor for Face<M>
where
    M: ractor::Message + std::fmt::Debug,
{
    type Msg = M;
    type State = FaceState<M>;
    type Arguments = FaceState<M>;

    async fn pre_start(
        &self,
        _myself: ActorRef<M>,
        state: FaceState<M>,
    ) -> Result<FaceState<M>, ActorProcessingErr> {
        debug!(name: "face.started", actor = state.role);
        Ok(state)
    }

    async fn handle(
        &self,
        _myself: ActorRef<M>,
        msg: M,
        state: &mut FaceState<M>,
    ) -> Result<(), ActorProcessingErr> {
        trace!(name: "face.message", actor = state.role, msg = ?msg);
        (state.forward)(msg)?;
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<M>,
        state: &mut FaceState<M>,
    ) -> Result<(), ActorProcessingErr> {
        debug!(name: "face.stopped", actor = state.role);
        Ok(())
    }
}
