//! An email address as clients send it, one rule for registration and invitations alike: read
//! as any string, checked by [`checked_email`], and documented by [`Email`]'s schema with
//! [`EMAIL_PATTERN`], a pattern a test holds to the check.

use domain::field_error::FieldError;
use serde::Deserialize;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::{PartialSchema, ToSchema};

/// What [`checked_email`] accepts, as an ECMA-262 pattern for the document: optional
/// whitespace, 3 to 254 characters with no whitespace or control character, one `@` with
/// something before it and a dot in the domain, which does not end with a dot.
pub const EMAIL_PATTERN: &str = r"^[\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*(?=[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]{3,254}[\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$)[^@\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+@[^@.\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+\.[^@\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*[^@.\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$";

/// An email address as a client sends it: read as any string, checked by [`checked_email`],
/// documented with [`EMAIL_PATTERN`] (a schema attribute takes only a literal, and the rule is
/// used by more than one body).
#[derive(Deserialize)]
#[serde(transparent)]
pub struct Email(pub String);

impl PartialSchema for Email {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(EMAIL_PATTERN))
            .description(Some(
                "An address of a plausible shape (`name@example.com`), at most 254 characters \
                 once trimmed",
            ))
            .into()
    }
}

impl ToSchema for Email {}

/// The longest address SMTP can deliver to.
const EMAIL_CHARS: usize = 254;

/// A trimmed email address of a plausible shape: one `@`, something on each side, a dot in the
/// domain, no spaces. Whether it is deliverable only a mail could tell.
pub fn checked_email(field: &str, raw: &str) -> Result<String, FieldError> {
    let email = raw.trim();
    let plausible = email.chars().count() <= EMAIL_CHARS
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.contains('@')
                && domain
                    .split_once('.')
                    .is_some_and(|(head, tail)| !head.is_empty() && !tail.is_empty())
                && !domain.ends_with('.')
        });
    if plausible {
        Ok(email.to_string())
    } else {
        Err(FieldError::new(
            field,
            "invalid_email",
            format!("{field} must be an email address like name@example.com"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_email_pattern_accepts_what_the_check_accepts() {
        let pattern = fancy_regex::Regex::new(EMAIL_PATTERN).unwrap();
        for email in [
            "a@b.co",
            " Ann.Lee+menus@example.org ",
            "x@sub.domain.io",
            "\tå@é.fr\n",
            "",
            "ann",
            "@b.co",
            "a@",
            "a@b",
            "a@@b.co",
            "a b@c.co",
            "a@b.",
            "a@.co",
            "a\u{7}@b.co",
            "a@b.c\u{2028}o",
            &format!("{}@b.co", "a".repeat(250)),
            &format!("{}@b.co", "a".repeat(249)),
        ] {
            assert_eq!(
                pattern.is_match(email).unwrap(),
                checked_email("email", email).is_ok(),
                "{email:?}"
            );
        }
    }

    #[test]
    fn plausible_emails_pass_and_others_are_named() {
        for good in ["a@b.co", " Ann.Lee+menus@example.org ", "x@sub.domain.io"] {
            assert!(checked_email("email", good).is_ok(), "{good}");
        }
        for bad in [
            "", "ann", "@b.co", "a@", "a@b", "a@@b.co", "a b@c.co", "a@b.", "a@.co",
        ] {
            let e = checked_email("email", bad).unwrap_err();
            assert_eq!(
                (e.field.as_str(), e.code),
                ("email", "invalid_email"),
                "{bad}"
            );
        }
    }
}
