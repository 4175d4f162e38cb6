//! What the API and the worker share beyond the pure domain (the `domain` crate): configuration,
//! the database queries, the job's life, the Redis queue and keyspace, job and account events,
//! the weekly batch, password hashing and the LLM fleet (client, budget, circuit, statistics).

pub mod batch;
pub mod config;
pub mod db;
pub mod events;
pub mod job;
pub mod keyspace;
pub mod lifecycle;
pub mod llm;
pub mod password;
pub mod queue;
