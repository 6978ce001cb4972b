//! Proof that a peer knows the job's secret, without the secret crossing the wire.
//!
//! Two ends of a connection (the store and its client, or two ranks of the ring) each send a
//! fresh random challenge, and each answers with an HMAC-SHA256, keyed by the secret, of both
//! challenges, its side and what the connection is for. A recorded answer is worthless on
//! another connection (the challenges differ), for the other side, or for another purpose; an
//! eavesdropper learns neither the secret nor anything it could answer with.

use super::error::{DistributedError::RankEnv as Invalid, Result};
use hmac::{Hmac, Mac};
use rand::TryRngCore;
use sha2::Sha256;

/// The shortest secret accepted from a user: shorter ones can be guessed.
pub const MIN_SECRET_LEN: usize = 16;

/// Bytes of a challenge.
pub const CHALLENGE_LEN: usize = 32;

/// Bytes of a proof (an HMAC-SHA256).
pub const PROOF_LEN: usize = 32;

/// A challenge: fresh random bytes from the operating system.
pub type Challenge = [u8; CHALLENGE_LEN];

/// A proof: the HMAC of a connection's challenges.
pub type Proof = [u8; PROOF_LEN];

/// The job's secret, as text (it travels to the ranks in the environment). Its `Debug` never
/// shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// A new secret of 32 random bytes from the operating system, in hex.
    pub fn generate() -> Result<Self> {
        let mut bytes = [0u8; 32];
        fill_random(&mut bytes)?;
        Ok(Secret(hex::encode(bytes)))
    }

    /// A secret a user chose, read from the variable `name`: at least [`MIN_SECRET_LEN`]
    /// characters.
    pub fn from_user(name: &str, text: String) -> Result<Self> {
        if text.chars().count() < MIN_SECRET_LEN {
            return Err(Invalid(
                format!(
                    "{name} is too short to be a secret ({} characters, at least {MIN_SECRET_LEN}); \
                     make one with `openssl rand -hex 32`",
                    text.chars().count()
                ),
                None,
            ));
        }
        Ok(Secret(text))
    }

    /// The text to hand to a rank's environment.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Which end of a connection proves: the one that connected, or the one that accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The end that connected (a store client, the rank that dials the next one).
    Connector,
    /// The end that accepted (the store, the rank that is dialled).
    Acceptor,
}

/// One connection's mutual proof: what it is for, and the challenge each end sent.
pub struct Exchange<'a> {
    secret: &'a Secret,
    purpose: String,
    connector: Challenge,
    acceptor: Challenge,
}

impl<'a> Exchange<'a> {
    /// The exchange of a connection made for `purpose` (which store, which link of which
    /// ring), once both challenges are known.
    pub fn new(
        secret: &'a Secret,
        purpose: impl Into<String>,
        connector: Challenge,
        acceptor: Challenge,
    ) -> Self {
        Exchange {
            secret,
            purpose: purpose.into(),
            connector,
            acceptor,
        }
    }

    /// The proof that `side` sends.
    pub fn proof(&self, side: Side) -> Proof {
        self.mac(side).finalize().into_bytes().into()
    }

    /// Whether `proof` is what `side` knowing the secret would send (compared in constant
    /// time).
    pub fn verify(&self, side: Side, proof: &[u8]) -> bool {
        self.mac(side).verify_slice(proof).is_ok()
    }

    fn mac(&self, side: Side) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.secret.0.as_bytes())
            .expect("HMAC takes keys of any length");
        let side: &[u8] = match side {
            Side::Connector => b"connector",
            Side::Acceptor => b"acceptor",
        };
        // Each field with its length, so that no two transcripts read the same.
        for field in [
            b"cornet-rs".as_slice(),
            self.purpose.as_bytes(),
            side,
            &self.connector,
            &self.acceptor,
        ] {
            mac.update(&(field.len() as u64).to_le_bytes());
            mac.update(field);
        }
        mac
    }
}

/// A fresh challenge.
pub fn challenge() -> Result<Challenge> {
    let mut bytes = [0u8; CHALLENGE_LEN];
    fill_random(&mut bytes)?;
    Ok(bytes)
}

/// Fills `bytes` from the operating system's random source.
fn fill_random(bytes: &mut [u8]) -> Result<()> {
    rand::rngs::OsRng.try_fill_bytes(bytes).map_err(|e| {
        super::DistributedError::Rendezvous(
            format!("the operating system gave no random bytes: {e}"),
            None,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(text: &str) -> Secret {
        Secret::from_user("TEST", text.into()).unwrap()
    }

    #[test]
    fn a_proof_holds_only_for_its_secret_side_purpose_and_challenges() {
        let (key, other) = (secret("0123456789abcdef"), secret("0123456789abcdeX"));
        let (c, a) = ([1u8; 32], [2u8; 32]);
        let exchange = Exchange::new(&key, "store", c, a);
        let proof = exchange.proof(Side::Connector);
        assert!(exchange.verify(Side::Connector, &proof));

        assert!(!exchange.verify(Side::Acceptor, &proof), "the other side's");
        let wrong = [
            Exchange::new(&other, "store", c, a),
            Exchange::new(&key, "ring/0->1", c, a),
            Exchange::new(&key, "store", [3u8; 32], a),
            Exchange::new(&key, "store", c, [3u8; 32]),
        ];
        for exchange in wrong {
            assert!(!exchange.verify(Side::Connector, &proof));
        }
        assert!(!exchange.verify(Side::Connector, &proof[..31]));
    }

    #[test]
    fn generated_secrets_differ_and_short_ones_are_refused() {
        let (a, b) = (Secret::generate().unwrap(), Secret::generate().unwrap());
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), 64);
        assert_eq!(format!("{a:?}"), "Secret(..)");
        let err = Secret::from_user("CORNET_JOB_SECRET", "hunter2".into())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("CORNET_JOB_SECRET is too short") && err.contains("openssl rand"),
            "{err}"
        );
        assert_ne!(challenge().unwrap(), challenge().unwrap());
    }
}
