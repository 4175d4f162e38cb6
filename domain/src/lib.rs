//! The product's domain, free of I/O: the words requests and menus are made of
//! ([`vocabulary`]), what a menu request may say and how it is validated ([`request`], its
//! refusals as [`field_error`]s), what a menu is ([`menu`]), the rules every generated day must
//! pass ([`rules`]), what the rules know about foods ([`foods`]), the grocery list a menu adds up
//! to ([`grocery`]), the brief a day's prompt is built from ([`prompt`]) and how many tokens it
//! takes ([`tokens`]). The API, the worker and the stand-in LLM all use it; nothing here talks to
//! PostgreSQL, Redis or the network.

pub mod field_error;
pub mod foods;
pub mod grocery;
pub mod menu;
pub mod prompt;
pub mod request;
pub mod rules;
pub mod tokens;
pub mod vocabulary;
