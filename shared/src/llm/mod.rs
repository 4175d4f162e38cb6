//! The OpenAI-compatible Chat Completions client: one call asks for one day of a menu.
//!
//! Every outcome of a call is classified here, once (DESIGN.md §4), so the worker reacts by
//! class and never inspects HTTP details.

pub mod client;
pub mod error;
pub mod schema;
pub mod stats;
pub mod wait;
pub mod wire;

pub use client::{Call, CallId, LlmClient, Prompt};
pub use error::{ErrorClass, LlmError, TRUNCATED};
