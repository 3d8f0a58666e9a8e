//! Local users' passwords: argon2id (the crate's defaults: 19 MiB, 2 passes), PHC strings.

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier, password_hash::SaltString};

use crate::secrets::{self, SecretError};

/// Shortest password accepted for a local user.
pub const MIN_LEN: usize = 12;

pub fn hash(password: &str) -> Result<String, SecretError> {
    let salt_bytes: [u8; 16] = secrets::random_array()?;
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|_| SecretError::Decrypt)?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| SecretError::Decrypt)
}

/// Whether `password` matches `phc`. With `None` (unknown user) a decoy hash is checked, so
/// the answer takes as long and reveals nothing about which users exist.
pub fn verify(phc: Option<&str>, password: &str) -> bool {
    const DECOY: &str = "$argon2id$v=19$m=19456,t=2,p=1$AAAAAAAAAAAAAAAAAAAAAA$\
                         2f9kTtZbPlp3o5p6s9Hnmq3wF0qQXqz7bZcR1m2yQ0E";
    let known = phc.is_some();
    let Ok(parsed) = PasswordHash::new(phc.unwrap_or(DECOY)) else {
        return false;
    };
    let matches = Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok();
    known && matches
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    #[test]
    fn round_trip_and_refusals() {
        let phc = super::hash("correct horse battery").unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(super::verify(Some(&phc), "correct horse battery"));
        assert!(!super::verify(Some(&phc), "correct horse batterx"));
        assert!(!super::verify(None, "correct horse battery"));
    }
}
