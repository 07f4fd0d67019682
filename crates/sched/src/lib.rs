//! The scheduling engine: a deterministic state machine. The driver (the live server with
//! wall-clock time and real executors, or the simulator with a virtual clock) feeds it
//! events with [`Engine::apply`] and asks for decisions with [`Engine::schedule`]. No
//! clock, thread, socket or database lives here: the same input gives the same schedule.

mod engine;
pub mod forecast;
mod policy;
mod predict;
mod resources;

pub use engine::{
    Decision, Engine, EngineError, EngineStats, Event, NodeView, Outcome, PoolView, PreemptReason, RejectReason,
    Reservation, RunningView, Snapshot, WaitingView,
};
pub use policy::{AifactoryParams, LasParams, MultifactorParams, PolicyConfig, PolicyName};
pub use predict::{Prediction, PredictionSource, RuntimePredictor};
pub use resources::{NodeAlloc, NodeStatus, Strategy};
