//! What a new password, a username, an email address and a role must be. Passwords follow
//! NIST SP 800-63B: a minimum length, a maximum only to bound hashing, no composition rules,
//! and a list of passwords known from breaches.

use std::collections::HashSet;
use std::sync::LazyLock;

use super::{UserError, MAX_PASSWORD_BYTES};

pub const MIN_PASSWORD_CHARS: usize = 8;
pub const MAX_USERNAME_CHARS: usize = 64;
pub const MAX_EMAIL_BYTES: usize = 254;
pub const MAX_ROLES: usize = 32;
pub const MAX_ROLE_CHARS: usize = 64;
/// Profile fields (names, phone, city…) longer than this are refused.
pub const MAX_PROFILE_FIELD_BYTES: usize = 256;

/// Lower-cased; see `common-passwords.md` for the source.
static COMMON_PASSWORDS: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| include_str!("common-passwords.txt").lines().collect());

/// Why a new password is refused, as the client is told.
pub fn check_new_password(password: &str, username: &str) -> Result<(), UserError> {
    let weak = |reason: &'static str| Err(UserError::WeakPassword(reason));
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return weak("The password must have at least 8 characters.");
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return weak("The password must have at most 1024 bytes.");
    }
    let lowered = password.to_lowercase();
    if COMMON_PASSWORDS.contains(lowered.as_str()) {
        return weak("This password is one of the most common ones; choose another.");
    }
    if lowered == username.trim().to_lowercase() {
        return weak("The password must not be the username.");
    }
    Ok(())
}

/// The username as stored: trimmed, 1 to 64 characters, none of them control characters.
pub fn normalize_username(username: &str) -> Result<String, UserError> {
    let username = username.trim();
    let chars = username.chars().count();
    if chars == 0 || chars > MAX_USERNAME_CHARS || username.chars().any(char::is_control) {
        return Err(UserError::Invalid(
            "The username must have 1 to 64 characters, none of them control characters.",
        ));
    }
    Ok(username.to_owned())
}

/// An address mail can be sent to (`local@domain`), trimmed; empty stays empty.
pub fn normalize_email(email: &str) -> Result<String, UserError> {
    let email = email.trim();
    if email.is_empty() {
        return Ok(String::new());
    }
    let valid = email.len() <= MAX_EMAIL_BYTES && email.parse::<lettre::Address>().is_ok();
    if !valid {
        return Err(UserError::Invalid("The email address is not valid."));
    }
    Ok(email.to_owned())
}

/// Sorted, without duplicates; each of letters, digits and `_ - . :`.
pub fn normalize_roles<S: AsRef<str>>(roles: &[S]) -> Result<Vec<String>, UserError> {
    let mut normalized: Vec<String> = roles.iter().map(|r| r.as_ref().trim().to_owned()).collect();
    normalized.sort();
    normalized.dedup();
    let valid = |role: &String| {
        !role.is_empty()
            && role.chars().count() <= MAX_ROLE_CHARS
            && role
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))
    };
    if normalized.len() > MAX_ROLES || !normalized.iter().all(valid) {
        return Err(UserError::Invalid(
            "Roles are at most 32 names of 1 to 64 letters, digits, '_', '-', '.' or ':'.",
        ));
    }
    Ok(normalized)
}

/// A profile field (name, gender, phone, city): trimmed, bounded, no control characters.
pub fn normalize_profile_field(value: &str) -> Result<String, UserError> {
    let value = value.trim();
    if value.len() > MAX_PROFILE_FIELD_BYTES || value.chars().any(char::is_control) {
        return Err(UserError::Invalid(
            "Profile fields must have at most 256 bytes and no control characters.",
        ));
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_is_large_and_lower_case() {
        assert!(
            COMMON_PASSWORDS.len() >= 10_000,
            "{}",
            COMMON_PASSWORDS.len()
        );
        assert!(COMMON_PASSWORDS
            .iter()
            .all(|p| *p == p.to_lowercase() && p.chars().count() >= MIN_PASSWORD_CHARS));
    }

    #[test]
    fn weak_passwords_are_refused_with_a_reason() {
        for (password, reason) in [
            ("short", "at least 8"),
            ("Password1", "most common"),
            ("iloveyou", "most common"),
            ("alice-the-great", "username"),
        ] {
            match check_new_password(password, "Alice-The-Great") {
                Err(UserError::WeakPassword(text)) => assert!(text.contains(reason), "{text}"),
                other => panic!("{password}: {other:?}"),
            }
        }
        let too_long = "x".repeat(MAX_PASSWORD_BYTES + 1);
        assert!(check_new_password(&too_long, "alice").is_err());
        // Eight characters of more than eight bytes count as eight.
        check_new_password("äöüßéèêë", "alice").expect("8 characters");
        check_new_password("correct horse battery staple", "alice").expect("a passphrase");
    }

    #[test]
    fn roles_are_sorted_and_checked() {
        assert_eq!(
            normalize_roles(&["editor", "admin", "editor"]).expect("valid"),
            ["admin", "editor"]
        );
        assert!(normalize_roles(&["a,b"]).is_err());
        assert!(normalize_roles(&[""]).is_err());
    }

    #[test]
    fn emails_must_be_addresses() {
        assert_eq!(
            normalize_email(" a@example.com ").expect("valid"),
            "a@example.com"
        );
        assert_eq!(normalize_email("").expect("empty"), "");
        for bad in ["no-at-sign", "a@", "@b", "a b@c.d", "a@b@c"] {
            assert!(normalize_email(bad).is_err(), "{bad}");
        }
    }
}
