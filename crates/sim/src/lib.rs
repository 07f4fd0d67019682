//! The trace-driven simulator: trace readers and a synthetic generator, load scaling, a
//! discrete-event driver around `sched::Engine`, metrics, a table and SVG plots.

pub mod driver;
pub mod forecast_eval;
pub mod metrics;
pub mod plot;
pub mod readers;
pub mod rng;
pub mod synthetic;
pub mod table;
pub mod trace;

pub use driver::{SimError, SimOptions, simulate};
pub use metrics::{Report, Stats};
pub use readers::{ReadOptions, TraceFormat, read_bytes, read_path};
pub use synthetic::SyntheticParams;
pub use trace::{BadRow, Trace, TraceError, TraceJob};
