//! Passwords: the rules a new one must meet, and hashing with argon2id. Hashing and verifying
//! are CPU-bound by design (tens of milliseconds): call them off the async threads, under a
//! bound.

use std::ops::RangeInclusive;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};

use domain::field_error::FieldError;

/// A new password's length in characters. At least 12 (NIST SP 800-63B-4 §3.1.1.2 asks for at
/// least 15 where a password is the only factor and 8 otherwise; OWASP's ASVS 5.0 §6.2.1 asks
/// for 12); at most 1,024, so that nobody makes the server hash a megabyte.
pub const LENGTH: RangeInclusive<usize> = 12..=1024;

/// argon2id's memory in KiB, passes and lanes: OWASP's Password Storage Cheat Sheet's first
/// configuration (m = 19 MiB, t = 2, p = 1), which is also the `argon2` crate's default.
pub const PARAMS: (u32, u32, u32) = (19 * 1024, 2, 1);

/// The hasher, with [`PARAMS`]. A stored hash carries its own parameters, so hashes made with
/// other ones still verify.
fn argon2() -> Argon2<'static> {
    let (m, t, p) = PARAMS;
    let params = Params::new(m, t, p, None).expect("PARAMS are within argon2's bounds");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// What is wrong with `password` as the new password of the account with `email`, as a problem
/// of `field`: `invalid_length` outside [`LENGTH`], `password_is_email` when it is the email
/// (compared trimmed and case-insensitively).
pub fn problem(field: &str, password: &str, email: &str) -> Option<FieldError> {
    let chars = password.chars().count();
    if !LENGTH.contains(&chars) {
        return Some(FieldError::new(
            field,
            "invalid_length",
            format!(
                "{field} must be {} to {} characters long",
                LENGTH.start(),
                LENGTH.end()
            ),
        ));
    }
    if password.trim().to_lowercase() == email.trim().to_lowercase() {
        return Some(FieldError::new(
            field,
            "password_is_email",
            format!("{field} must not be the account's email"),
        ));
    }
    None
}

/// A PHC string (`$argon2id$v=19$…`) with a fresh random salt.
pub fn hash(password: &str) -> Result<String, argon2::password_hash::Error> {
    Ok(argon2().hash_password(password.as_bytes())?.to_string())
}

/// Whether `password` matches the stored hash. A malformed hash never matches.
pub fn verify(password: &str, stored_hash: &str) -> bool {
    PasswordHash::new(stored_hash)
        .is_ok_and(|h| argon2().verify_password(password.as_bytes(), &h).is_ok())
}

/// A hash of nothing anyone knows, verified when an email is unknown so that a login takes as
/// long whether or not the account exists.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| hash("no account has this password").unwrap_or_default());
    &DUMMY
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_password_is_12_to_1024_characters_and_not_the_email() {
        let email = "Ann@example.com";
        for (password, code) in [
            ("short pw 11", Some("invalid_length")),
            ("twelve chars", None),
            (&"é".repeat(1024), None),
            (&"x".repeat(1025), Some("invalid_length")),
            (" ann@EXAMPLE.com ", Some("password_is_email")),
            ("ann@example.com!", None),
        ] {
            let found = problem("password", password, email).map(|p| p.code);
            assert_eq!(found, code, "{password:?}");
        }
    }

    #[test]
    fn hashes_carry_the_stated_parameters() {
        let h = hash("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
    }

    #[test]
    fn a_hash_verifies_its_password_only() {
        let h = hash("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("correct horse", &h));
        assert!(!verify("wrong horse", &h));
        assert!(!verify("correct horse", "not a hash"));
    }
}
