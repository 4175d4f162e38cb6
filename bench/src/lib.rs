//! What the benchmarks (`src/bin/`) share: the workspace's binaries started as processes of
//! their own with what `/proc` says they used ([`process`]), the stores they run on, direct or
//! scaled out ([`stores`], [`pgbouncer`]), Prometheus text read back ([`prometheus`]), and how
//! figures are summed up ([`stats`]). The in-process system they also measure is
//! `testkit::spawn_system`.

pub mod pgbouncer;
pub mod process;
pub mod prometheus;
pub mod stats;
pub mod stores;
