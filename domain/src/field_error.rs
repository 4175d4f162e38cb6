//! The answer to input that does not pass validation: one entry per field at fault, so that a
//! client learns every problem at once. Request validation, password rules, pagination and the
//! admin filters all produce it, and the API sends the list as its 422 response's `details`; so
//! it is a module of its own rather than part of `request`.

use serde::Serialize;
use utoipa::ToSchema;

/// A problem with one field of a client's input. `field` is a dotted path, with an index for a
/// list item (`macros.protein`, `disliked_foods[2]`); `code` is a stable snake_case word for
/// programs (`out_of_range`, `too_many`, `too_long`, `empty`, `invalid_text`, ...); `message`
/// is an English sentence for people, naming the allowed range where there is one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    pub field: String,
    pub code: &'static str,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, code: &'static str, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            code,
            message: message.into(),
        }
    }
}
