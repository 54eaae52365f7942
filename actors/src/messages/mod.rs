//! Every message the actors exchange, below the actors: an actor depends on
//! the messages it sends and receives, never on another actor.
//!
//! - One file per actor's mailbox: [`registry`], [`timing`] (the ticker's and
//!   the sampler's thread), [`writer`], [`supervisor`].
//! - Public enums (`TickerMsg`, `SamplerMsg`, `WriterMsg`, `RegistryMsg`,
//!   `SupervisorMsg`) are what embedders may send; the threads' mailbox
//!   enums wrap them beside internal messages (records, shutdown steps)
//!   that only this crate can build.
//! - Queries are named `Get*`.

pub mod registry;
pub mod supervisor;
pub mod timing;
pub mod writer;
