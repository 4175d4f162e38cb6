//! Fault injection: the stand-in misbehaves as a real provider does, so the worker's error
//! handling can be tested against the real shapes. `kinds` names every fault, `errors` gives
//! the provider-shaped answers of those that are HTTP errors, and a call's fault comes from the
//! `script` ("the next N calls get X") or, at the configured rate, at `random`.

mod errors;
mod kinds;
mod random;
mod script;

pub use errors::{
    CallFacts, error, insert_headers, invalid_api_key, model_not_found, model_not_found_body,
};
pub use kinds::{BodyStyle, BrokenRule, Fault, RateLimitFault};
pub use random::RandomFaults;
pub use script::{Script, Step};
