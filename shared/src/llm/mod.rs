//! The LLM fleet: everything between a day's brief and an OpenAI-compatible provider.
//!
//! - [`client`] sends one Chat Completions call for one day ([`wire`] is its format, [`schema`]
//!   the day's Structured Outputs schema) and classifies every outcome once, in [`error`]
//!   (DESIGN.md §4), so the worker reacts by class and never inspects HTTP details;
//! - [`endpoint`] is where calls may go (a primary and its fallbacks), [`price`] what their
//!   tokens cost per model and lane;
//! - [`batches`] is the Files and Batches API the batch lane submits whole menus through;
//! - [`wait`] says how long to wait before calling again;
//! - [`budget`] (RPM/TPM per endpoint and model), [`circuit`] (per endpoint and model) and [`stats`] (calls per minute)
//!   are fleet-wide, kept in Redis and shared by every worker process.

pub mod batches;
pub mod budget;
pub mod circuit;
pub mod client;
pub mod endpoint;
pub mod error;
pub mod price;
pub mod schema;
pub mod stats;
pub mod wait;
pub mod wire;

pub use client::{Call, CallId, LlmClient, Prompt};
pub use error::{ErrorClass, LlmError, TRUNCATED};
