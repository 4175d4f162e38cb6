//! The product's domain, free of I/O: what a menu request may say and how it is validated
//! ([`request`]), what a menu is ([`menu`]), the rules every generated day must pass
//! ([`rules`]), what the rules know about foods ([`foods`]), the grocery list a menu adds up to
//! ([`grocery`]) and the brief a day's prompt is built from ([`prompt`]). The API, the worker
//! and the stand-in LLM all use it; nothing here talks to PostgreSQL, Redis or the network.

pub mod field_error;
pub mod foods;
pub mod grocery;
pub mod menu;
pub mod prompt;
pub mod request;
pub mod rules;
pub mod tokens;
pub mod vocabulary;
