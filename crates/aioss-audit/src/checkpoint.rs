//! Ed25519 checkpoints over the chain head, and the key file.
//!
//! A key file holds one line: `aioss-ed25519-secret-v1 <64 hex digits of the 32-byte seed>`.
//! The signed message of a checkpoint is the ASCII text
//! `aioss-audit-checkpoint-v1\n<seq>\n<head hash hex>\n`.

use std::path::Path;

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};

use crate::record::{hex, unhex};
use crate::Error;

const KEY_PREFIX: &str = "aioss-ed25519-secret-v1";

/// A signed checkpoint: the chain head `(seq, head_hash)` signed with an Ed25519 key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The sequence number of the head record.
    pub seq: u64,
    /// The hash of the head record.
    pub head_hash: String,
    /// RFC 3339 time the checkpoint was made (not signed; informative).
    pub created: String,
    /// Hex of the 32-byte Ed25519 public key.
    pub public_key: String,
    /// Hex of the 64-byte Ed25519 signature over [`message`].
    pub signature: String,
}

/// The bytes a checkpoint signs.
pub fn message(seq: u64, head_hash: &str) -> Vec<u8> {
    format!("aioss-audit-checkpoint-v1\n{seq}\n{head_hash}\n").into_bytes()
}

/// A signing key for checkpoints.
#[derive(Debug)]
pub struct Key {
    signing: SigningKey,
}

impl Key {
    /// A new random key from the operating system's generator.
    pub fn generate() -> Result<Key, Error> {
        let mut seed = [0u8; 32];
        getrandom::getrandom(&mut seed)
            .map_err(|e| Error::Key(format!("no randomness from the operating system: {e}")))?;
        Ok(Key {
            signing: SigningKey::from_bytes(&seed),
        })
    }

    /// Parse the text of a key file.
    pub fn parse(text: &str) -> Result<Key, Error> {
        let rest = text.trim().strip_prefix(KEY_PREFIX).ok_or_else(|| {
            Error::Key(format!(
                "not an aioss key file (expected `{KEY_PREFIX} <hex>`)"
            ))
        })?;
        let bytes = unhex(rest.trim()).ok_or_else(|| Error::Key("the key is not hex".into()))?;
        let seed: [u8; 32] = bytes
            .try_into()
            .map_err(|_| Error::Key("the key must be 32 bytes (64 hex digits)".into()))?;
        Ok(Key {
            signing: SigningKey::from_bytes(&seed),
        })
    }

    /// Read a key file.
    pub fn read(path: &Path) -> Result<Key, Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Key(format!("{}: {e}", path.display())))?;
        Key::parse(&text).map_err(|e| Error::Key(format!("{}: {e}", path.display())))
    }

    /// Write the key to a new file readable by its owner only (mode 0600); refuses to
    /// overwrite an existing file.
    pub fn write_new(&self, path: &Path) -> Result<(), Error> {
        use std::io::Write;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts
            .open(path)
            .map_err(|e| Error::Key(format!("{}: {e}", path.display())))?;
        writeln!(f, "{KEY_PREFIX} {}", hex(self.signing.as_bytes()))
            .and_then(|()| f.sync_all())
            .map_err(|e| Error::Key(format!("{}: {e}", path.display())))
    }

    /// Hex of the public key.
    pub fn public_hex(&self) -> String {
        hex(self.signing.verifying_key().as_bytes())
    }

    /// Sign the head `(seq, head_hash)`.
    pub fn checkpoint(&self, seq: u64, head_hash: &str, created: String) -> Checkpoint {
        let sig = self.signing.sign(&message(seq, head_hash));
        Checkpoint {
            seq,
            head_hash: head_hash.to_string(),
            created,
            public_key: self.public_hex(),
            signature: hex(&sig.to_bytes()),
        }
    }
}

/// Parse a public key given as hex, or read it from a key file (secret or public).
pub fn public_key_arg(arg: &str) -> Result<String, Error> {
    if let Some(b) = unhex(arg) {
        if b.len() == 32 {
            return Ok(hex(&b));
        }
    }
    let text = std::fs::read_to_string(arg).map_err(|e| Error::Key(format!("{arg}: {e}")))?;
    if let Ok(k) = Key::parse(&text) {
        return Ok(k.public_hex());
    }
    match unhex(&text) {
        Some(b) if b.len() == 32 => Ok(hex(&b)),
        _ => Err(Error::Key(format!(
            "{arg}: neither 64 hex digits of a public key nor an aioss key file"
        ))),
    }
}

impl Checkpoint {
    /// Check the signature against the public key stored with the checkpoint.
    pub fn signature_ok(&self) -> bool {
        let Some(pk) = unhex(&self.public_key).and_then(|b| <[u8; 32]>::try_from(b).ok()) else {
            return false;
        };
        let Some(sig) = unhex(&self.signature).and_then(|b| <[u8; 64]>::try_from(b).ok()) else {
            return false;
        };
        let Ok(vk) = VerifyingKey::from_bytes(&pk) else {
            return false;
        };
        vk.verify(
            &message(self.seq, &self.head_hash),
            &Signature::from_bytes(&sig),
        )
        .is_ok()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sign_and_verify_and_forge() {
        let k = Key::generate().unwrap();
        let c = k.checkpoint(9, "ab", "t".into());
        assert!(c.signature_ok());
        let mut f = c.clone();
        f.seq = 10;
        assert!(!f.signature_ok());
        let k2 = Key::parse(&format!("{KEY_PREFIX} {}", hex(k.signing.as_bytes()))).unwrap();
        assert_eq!(k2.public_hex(), k.public_hex());
    }
}
