//! The whole system in one process, on a database and a Redis prefix of its own, for the
//! end-to-end tests (`tests/`) and the benchmarks (`src/bin/`), which both drive it as a client
//! would, over HTTP; and the chaos suite, which runs it as separate processes.

pub mod chaos;
pub mod pgbouncer;
pub mod process;
pub mod prometheus;
pub mod stats;
pub mod stores;
pub mod system;

pub use system::{Account, Options, PASSWORD, System};
