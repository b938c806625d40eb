//! Password hashing ([`Argon2PasswordHasher`], argon2id) and unpredictable strings
//! ([`OsSecretGenerator`]) for the account ports.

use std::sync::Arc;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{self, PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Version};
use async_trait::async_trait;
use dpg_core::error::CoreError;
use dpg_core::ports::{PasswordHasher, SecretGenerator};
use rand::distr::{Alphanumeric, SampleString};
use tokio::sync::Semaphore;

/// Cost parameters of argon2id (memory in KiB, iterations, lanes, output length).
pub use argon2::Params as Argon2Params;

/// argon2id password hashes as PHC strings (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`),
/// each with a fresh random salt. Hashing and verifying run on tokio's blocking threads, at
/// most as many at once as the machine has cores, so that a burst of sign-ins neither stalls
/// the request threads nor allocates the hash memory hundreds of times over.
///
/// Verification uses the parameters stored in the hash, so hashes made with other costs keep
/// verifying after the costs change.
#[derive(Clone)]
pub struct Argon2PasswordHasher {
    params: Argon2Params,
    permits: Arc<Semaphore>,
}

impl std::fmt::Debug for Argon2PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Argon2PasswordHasher")
            .field("m_cost", &self.params.m_cost())
            .field("t_cost", &self.params.t_cost())
            .field("p_cost", &self.params.p_cost())
            .finish()
    }
}

impl Default for Argon2PasswordHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl Argon2PasswordHasher {
    /// The recommended costs of OWASP's password storage guidance: 19 MiB of memory, two
    /// iterations, one lane.
    pub fn new() -> Self {
        Self::with_params(Argon2Params::DEFAULT)
    }

    /// Custom costs, e.g. from configuration.
    pub fn with_params(params: Argon2Params) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Argon2PasswordHasher {
            params,
            permits: Arc::new(Semaphore::new(cores)),
        }
    }

    /// The smallest costs argon2id allows (8 KiB, one iteration): fast, and far too weak for
    /// real passwords. For tests only.
    pub fn fast_for_tests() -> Self {
        let params = Argon2Params::new(Argon2Params::MIN_M_COST, 1, 1, None)
            .unwrap_or(Argon2Params::DEFAULT);
        Self::with_params(params)
    }

    pub fn params(&self) -> &Argon2Params {
        &self.params
    }

    /// Runs `work` on a blocking thread once a permit is free.
    async fn run_blocking<T, F>(&self, what: &'static str, work: F) -> Result<T, CoreError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| CoreError::internal(format!("{what}: no hashing permits")))?;
        tokio::task::spawn_blocking(move || {
            let result = work();
            drop(permit);
            result
        })
        .await
        .map_err(|err| {
            tracing::error!(error = %err, "{what} task failed");
            CoreError::internal(format!("{what} task failed"))
        })
    }
}

fn argon2id(params: Argon2Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

#[async_trait]
impl PasswordHasher for Argon2PasswordHasher {
    async fn hash(&self, password: &str) -> Result<String, CoreError> {
        let password = password.to_owned();
        let params = self.params.clone();
        let hashed = self
            .run_blocking("password hashing", move || {
                argon2id(params)
                    .hash_password(password.as_bytes())
                    .map(|hash| hash.to_string())
            })
            .await?;
        hashed.map_err(|err| {
            tracing::error!(error = %err, "password hashing failed");
            CoreError::internal("password hashing failed")
        })
    }

    async fn verify(&self, password: &str, hash: &str) -> Result<bool, CoreError> {
        let parsed = match PasswordHash::new(hash) {
            Ok(parsed) => parsed,
            Err(err) => {
                tracing::warn!(error = %err, "stored password hash is malformed");
                return Ok(false);
            }
        };
        let password = password.to_owned();
        let params = self.params.clone();
        let verified = self
            .run_blocking("password verification", move || {
                argon2id(params).verify_password(password.as_bytes(), &parsed)
            })
            .await?;
        match verified {
            Ok(()) => Ok(true),
            Err(password_hash::Error::PasswordInvalid) => Ok(false),
            Err(err) => {
                // Another algorithm, impossible parameters...: nothing can match it.
                tracing::warn!(error = %err, "stored password hash cannot be verified");
                Ok(false)
            }
        }
    }
}

/// Alphanumeric strings from the thread-local CSPRNG (ChaCha, seeded and reseeded from the
/// operating system), each character uniform over `[A-Za-z0-9]` by rejection sampling.
#[derive(Debug, Clone, Copy, Default)]
pub struct OsSecretGenerator;

impl OsSecretGenerator {
    pub fn new() -> Self {
        OsSecretGenerator
    }
}

impl SecretGenerator for OsSecretGenerator {
    fn alphanumeric(&self, length: usize) -> String {
        Alphanumeric.sample_string(&mut rand::rng(), length)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use super::*;

    fn hasher() -> Argon2PasswordHasher {
        Argon2PasswordHasher::fast_for_tests()
    }

    #[tokio::test]
    async fn hash_then_verify_round_trips() {
        let hasher = hasher();
        let hash = hasher.hash("correct horse").await.expect("hashes");
        assert!(hash.starts_with("$argon2id$v=19$m=8,t=1,p=1$"), "{hash}");
        assert!(
            hasher
                .verify("correct horse", &hash)
                .await
                .expect("verifies")
        );
    }

    #[tokio::test]
    async fn wrong_password_does_not_verify() {
        let hasher = hasher();
        let hash = hasher.hash("correct horse").await.expect("hashes");
        assert!(
            !hasher
                .verify("correct horsE", &hash)
                .await
                .expect("verifies")
        );
        assert!(!hasher.verify("", &hash).await.expect("verifies"));
    }

    #[tokio::test]
    async fn malformed_hashes_do_not_verify() {
        let hasher = hasher();
        let good = hasher.hash("pw").await.expect("hashes");
        let truncated = &good[..good.len() - 10];
        let other_algorithm = good.replacen("$argon2id$", "$scrypt$", 1);
        for bad in [
            "",
            "not a hash",
            "$argon2id$",
            "$argon2id$v=19$m=8,t=1,p=1$",
            "$2b$12$abcdefghijklmnopqrstuuJ1Vn1NnTnJ0Rl0e2A8R8Yk4.Yy6gXW",
            truncated,
            other_algorithm.as_str(),
        ] {
            assert!(
                !hasher.verify("pw", bad).await.expect("no error"),
                "{bad:?}"
            );
        }
    }

    #[tokio::test]
    async fn two_hashes_of_one_password_differ() {
        let hasher = hasher();
        let first = hasher.hash("same").await.expect("hashes");
        let second = hasher.hash("same").await.expect("hashes");
        assert_ne!(first, second, "fresh salt each time");
        assert!(hasher.verify("same", &first).await.expect("verifies"));
        assert!(hasher.verify("same", &second).await.expect("verifies"));
    }

    #[tokio::test]
    async fn verification_uses_the_costs_stored_in_the_hash() {
        let old = Argon2PasswordHasher::with_params(
            Argon2Params::new(16, 2, 1, None).expect("valid params"),
        );
        let hash = old.hash("pw").await.expect("hashes");
        assert!(hash.starts_with("$argon2id$v=19$m=16,t=2,p=1$"), "{hash}");
        assert!(hasher().verify("pw", &hash).await.expect("verifies"));
    }

    #[test]
    fn default_costs_are_owasps() {
        let params = Argon2PasswordHasher::new().params().clone();
        assert_eq!(
            (params.m_cost(), params.t_cost(), params.p_cost()),
            (19 * 1024, 2, 1)
        );
    }

    #[tokio::test]
    async fn concurrent_hashes_all_complete() {
        let hasher = Arc::new(hasher());
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let hasher = Arc::clone(&hasher);
                tokio::spawn(async move { hasher.hash(&format!("pw{i}")).await })
            })
            .collect();
        for task in tasks {
            task.await.expect("joins").expect("hashes");
        }
    }

    #[test]
    fn secrets_have_the_length_and_charset_asked_for() {
        let generator = OsSecretGenerator::new();
        for length in [0, 1, 16, 32, 64, 100] {
            let secret = generator.alphanumeric(length);
            assert_eq!(secret.len(), length);
            assert!(
                secret.chars().all(|c| c.is_ascii_alphanumeric()),
                "{secret}"
            );
        }
    }

    #[test]
    fn secrets_are_distinct() {
        let generator = OsSecretGenerator::new();
        let drawn: HashSet<String> = (0..1000).map(|_| generator.alphanumeric(32)).collect();
        assert_eq!(drawn.len(), 1000);
    }

    #[test]
    fn every_character_class_is_drawn_roughly_uniformly() {
        let generator = OsSecretGenerator::new();
        let sample = generator.alphanumeric(62_000);
        let mut counts: HashMap<char, usize> = HashMap::new();
        for c in sample.chars() {
            *counts.entry(c).or_default() += 1;
        }
        // All 62 characters, each near 1000 (a bias would show as a skewed subset).
        assert_eq!(counts.len(), 62);
        for (c, count) in counts {
            assert!((700..=1300).contains(&count), "{c}: {count}");
        }
    }
}

/// 32 bytes from the operating system's random source: the seed of a new signing key.
pub fn random_key_seed() -> [u8; 32] {
    use rand::Rng;
    let mut seed = [0u8; 32];
    rand::rng().fill_bytes(&mut seed);
    seed
}

#[cfg(test)]
mod seed_tests {
    #[test]
    fn seeds_differ() {
        assert_ne!(super::random_key_seed(), super::random_key_seed());
    }
}
