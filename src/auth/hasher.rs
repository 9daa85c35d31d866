//! Password hashing: Argon2id with OWASP's parameters, behind a small
//! trait so the room's rules can be tested with a fast fake.
//!
//! Why Argon2id, and why it is slow on purpose: a stolen accounts file
//! must not give the passwords back. A fast hash (SHA-256) can be tried
//! billions of times a second on a GPU; Argon2id makes every guess cost
//! 19 MiB of memory and two passes over it (OWASP Password Storage Cheat
//! Sheet: m=19456 KiB, t=2, p=1): tens of milliseconds of one core per
//! hash (43–64 ms measured on a busy 2-core machine with the `hash_cost`
//! test below; unoptimized, ~10× that, which is why `Cargo.toml` builds
//! the hashing crates optimized even in debug builds). The salt (16 random bytes, inside the PHC string) makes every
//! hash unique, so equal passwords do not show up as equal lines.
//!
//! That cost is why hashing never runs on the reactor thread: read
//! `worker.rs` next.

use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, PasswordHash, Version};

/// OWASP's Argon2id memory cost, in KiB (19 MiB).
pub const MEMORY_KIB: u32 = 19 * 1024;
/// OWASP's Argon2id time cost (passes over the memory).
pub const PASSES: u32 = 2;
/// OWASP's Argon2id parallelism (lanes).
pub const LANES: u32 = 1;

/// Largest parameters a stored hash may ask for. Verification uses the
/// parameters written in the PHC string, so a hand-edited line with
/// `m=4000000` would otherwise make one login take 4 GiB and seconds of
/// CPU; such a line is treated as damaged instead.
const MAX_MEMORY_KIB: u32 = 256 * 1024;
const MAX_PASSES: u32 = 16;
const MAX_LANES: u32 = 8;

/// A PHC string of the same parameters as real hashes, for accounts that
/// do not exist: checking a password against it costs what a real check
/// costs, so the time of an answer does not tell whether the name is
/// registered. (It is the hash of a random password nobody kept; the
/// check fails whatever it returns, see [`PasswordHasher::verify_or_dummy`].)
const DUMMY_PHC: &str = "$argon2id$v=19$m=19456,t=2,p=1$9QTd0BVBED/R67IaX3FdEA$ljxT5TUWtapGSbpDTbCjp4rY2bdZVyxvGAMrUs6xe0s";

/// What the worker needs from a password hash. `Send`, because it runs on
/// the worker thread.
pub trait PasswordHasher: Send {
    /// A new PHC string for `password` (with a fresh random salt), or
    /// `None` if hashing failed.
    fn hash(&self, password: &str) -> Option<String>;

    /// Whether `password` matches `phc`. A PHC string that does not parse,
    /// or whose parameters are out of bounds, matches nothing.
    fn verify(&self, phc: &str, password: &str) -> bool;

    /// [`PasswordHasher::verify`] against `phc`, or, with none, the same
    /// work against a dummy hash and `false`.
    fn verify_or_dummy(&self, phc: Option<&str>, password: &str) -> bool {
        match phc {
            Some(phc) => self.verify(phc, password),
            None => {
                let _ = self.verify(DUMMY_PHC, password);
                false
            }
        }
    }
}

/// The real hasher: Argon2id v1.3 at OWASP's parameters.
#[derive(Debug, Clone)]
pub struct Argon2Hasher {
    argon2: Argon2<'static>,
}

impl Default for Argon2Hasher {
    fn default() -> Self {
        Self::new()
    }
}

impl Argon2Hasher {
    pub fn new() -> Argon2Hasher {
        // These are argon2's own defaults today; naming them keeps the
        // choice visible and stable if the crate's defaults move.
        let params = Params::new(MEMORY_KIB, PASSES, LANES, None).unwrap_or(Params::DEFAULT);
        Argon2Hasher {
            argon2: Argon2::new(Algorithm::Argon2id, Version::V0x13, params),
        }
    }
}

impl PasswordHasher for Argon2Hasher {
    fn hash(&self, password: &str) -> Option<String> {
        // The salt comes from the OS (`getrandom`), inside the crate.
        self.argon2
            .hash_password(password.as_bytes())
            .ok()
            .map(|h| h.to_string())
    }

    fn verify(&self, phc: &str, password: &str) -> bool {
        let Ok(parsed) = PasswordHash::new(phc) else {
            return false;
        };
        if check_params(&parsed).is_err() {
            return false;
        }
        self.argon2
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    }
}

/// Checks that `phc` is an Argon2id PHC string this server will verify:
/// it parses, and its cost parameters are within bounds.
///
/// # Errors
/// A short description of what is wrong, for the damaged-line warning.
pub fn check_phc(phc: &str) -> Result<(), &'static str> {
    let parsed = PasswordHash::new(phc).map_err(|_| "not a PHC string")?;
    check_params(&parsed)
}

fn check_params(parsed: &PasswordHash) -> Result<(), &'static str> {
    if parsed.algorithm.as_str() != "argon2id" {
        return Err("not an argon2id hash");
    }
    if parsed.salt.is_none() || parsed.hash.is_none() {
        return Err("no salt or no hash in the PHC string");
    }
    let params = Params::try_from(parsed).map_err(|_| "bad argon2 parameters")?;
    if params.m_cost() > MAX_MEMORY_KIB
        || params.t_cost() > MAX_PASSES
        || params.p_cost() > MAX_LANES
    {
        return Err("argon2 parameters too costly");
    }
    Ok(())
}

/// A hasher for tests of the rules: instant, and obviously not a real hash
/// (`fake$PASSWORD`). Never used by the server.
#[cfg(test)]
#[derive(Debug, Clone, Copy, Default)]
pub struct FakeHasher;

#[cfg(test)]
impl PasswordHasher for FakeHasher {
    fn hash(&self, password: &str) -> Option<String> {
        Some(format!("fake${password}"))
    }

    fn verify(&self, phc: &str, password: &str) -> bool {
        phc.strip_prefix("fake$") == Some(password)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2id_at_owasp_parameters_round_trips() {
        let h = Argon2Hasher::new();
        let phc = h.hash("correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(!phc.contains("correct horse"));
        assert_eq!(check_phc(&phc), Ok(()));
        assert!(h.verify(&phc, "correct horse"));
        assert!(!h.verify(&phc, "correct horsE"));
        // A fresh salt each time: equal passwords, different lines.
        assert_ne!(h.hash("correct horse").unwrap(), phc);
    }

    /// The figure the docs quote: `cargo test --lib hash_cost -- --ignored
    /// --nocapture` (argon2 is built at opt-level 3 even in debug builds).
    #[test]
    #[ignore]
    fn hash_cost() {
        let h = Argon2Hasher::new();
        let phc = h.hash("warm up").unwrap();
        let n = 20;
        let start = std::time::Instant::now();
        for _ in 0..n {
            assert!(h.verify(&phc, "warm up"));
        }
        println!("argon2id verify: {:?} per hash", start.elapsed() / n);
    }

    #[test]
    fn dummy_hash_is_valid_and_matches_nothing() {
        let h = Argon2Hasher::new();
        assert_eq!(check_phc(DUMMY_PHC), Ok(()));
        assert!(!h.verify_or_dummy(None, ""));
        assert!(!h.verify_or_dummy(None, "password"));
    }

    #[test]
    fn hostile_phc_strings_are_refused() {
        assert!(check_phc("plain text").is_err());
        assert!(check_phc("$argon2i$v=19$m=19456,t=2,p=1$9QTd0BVBED/R67IaX3FdEA$ljxT5TUWtapGSbpDTbCjp4rY2bdZVyxvGAMrUs6xe0s").is_err());
        let costly = "$argon2id$v=19$m=4000000,t=2,p=1$9QTd0BVBED/R67IaX3FdEA$ljxT5TUWtapGSbpDTbCjp4rY2bdZVyxvGAMrUs6xe0s";
        assert_eq!(check_phc(costly), Err("argon2 parameters too costly"));
        assert!(!Argon2Hasher::new().verify(costly, "x"), "never computed");
    }
}
