//! Everything the API, the worker and the stand-in LLM share: the domain (requests, menus, the
//! rules a day must pass), configuration, database queries, the Redis queue and the LLM client.

pub mod batch;
pub mod budget;
pub mod circuit;
pub mod config;
pub mod db;
pub mod events;
pub mod foods;
pub mod grocery;
pub mod job;
pub mod lifecycle;
pub mod llm;
pub mod menu;
pub mod password;
pub mod prompt;
pub mod queue;
pub mod redis_conn;
pub mod request;
pub mod rules;
pub mod telemetry;
