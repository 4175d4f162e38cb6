//! The system end to end, driven as a client would over HTTP: the tests (`tests/`) start it in
//! their process with `testkit::spawn_system`; the chaos tool ([`chaos`], binary `chaos`) runs
//! it as separate processes, to kill and restart them.

pub mod chaos;
