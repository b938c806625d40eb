//! Checks and digests of credentials.

use sha2::{Digest, Sha256};

use crate::error::{CoreError, ErrorCode};

pub const MIN_PASSWORD_CHARS: usize = 8;
pub const MAX_PASSWORD_CHARS: usize = 128;
const MAX_EMAIL_CHARS: usize = 254;
const MAX_NAME_CHARS: usize = 200;

/// SHA-256 (hex) of a session token or API key: what is stored and compared.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Equality of two digests in time independent of where they differ.
pub fn digests_equal(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Trims and lower-cases an email and checks its shape (`local@domain`, no spaces).
pub fn normalize_email(raw: &str) -> Result<String, CoreError> {
    let email = raw.trim().to_lowercase();
    let valid = email.chars().count() <= MAX_EMAIL_CHARS
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.contains('@')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        });
    if !valid {
        return Err(CoreError::invalid(ErrorCode::InvalidEmail, "Invalid email"));
    }
    Ok(email)
}

pub fn check_password(password: &str) -> Result<(), CoreError> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(CoreError::invalid(
            ErrorCode::PasswordTooShort,
            "Password too short",
        ));
    }
    if chars > MAX_PASSWORD_CHARS {
        return Err(CoreError::invalid(
            ErrorCode::PasswordTooLong,
            "Password too long",
        ));
    }
    if password.contains('\0') {
        return Err(CoreError::invalid(
            ErrorCode::InvalidPassword,
            "Password must not contain NUL characters",
        ));
    }
    Ok(())
}

pub fn check_name(name: &str) -> Result<String, CoreError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(CoreError::invalid(
            ErrorCode::NameRequired,
            "Name is required",
        ));
    }
    if name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(CoreError::invalid(
            ErrorCode::InvalidInput,
            "Name is too long or has control characters",
        ));
    }
    Ok(name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalized_and_checked() {
        assert_eq!(
            normalize_email("  Asha@Example.ORG ").as_deref(),
            Ok("asha@example.org")
        );
        for bad in [
            "",
            "asha",
            "@x.org",
            "a@b",
            "a b@x.org",
            "a@x.org.",
            "a@@x.org",
            "a@.org",
        ] {
            assert!(normalize_email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_are_bounded() {
        assert_eq!(
            check_password("short").expect_err("short").code(),
            ErrorCode::PasswordTooShort
        );
        assert_eq!(
            check_password(&"x".repeat(129)).expect_err("long").code(),
            ErrorCode::PasswordTooLong
        );
        assert!(check_password("correct horse").is_ok());
    }

    #[test]
    fn digests_compare_in_full() {
        let a = hash_secret("one");
        assert!(digests_equal(&a, &hash_secret("one")));
        assert!(!digests_equal(&a, &hash_secret("two")));
        assert!(!digests_equal(&a, &a[..10]));
    }
}
