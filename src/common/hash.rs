//! SHA-256 fingerprints, as lowercase hex: of a sale's canonical bytes, of
//! an envelope, of a token (and as 32 bytes where a million are compared).

use sha2::{Digest, Sha256};

/// A SHA-256 digest, as its 32 bytes.
pub type Sha256Digest = [u8; 32];

/// The SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> Sha256Digest {
    Sha256::digest(bytes).into()
}

/// The lowercase hex SHA-256 of `bytes` (64 characters).
pub fn sha256_hex(bytes: &[u8]) -> String {
    to_hex(&sha256(bytes))
}

/// A digest as 64 lowercase hex digits.
pub fn to_hex(digest: &Sha256Digest) -> String {
    const_hex::encode(digest)
}

/// A digest from exactly 64 lowercase hex digits (anything else is not
/// one: the journal's hashes are written in lowercase only).
pub fn from_hex(text: &str) -> Option<Sha256Digest> {
    // Decoding accepts either case (with SIMD, where the CPU has it): a
    // digest that decodes is then refused if any letter is uppercase.
    let mut digest = [0u8; 32];
    const_hex::decode_to_slice(text, &mut digest).ok()?;
    (!text.bytes().any(|b| b.is_ascii_uppercase())).then_some(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digest() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let d = sha256(b"abc");
        assert_eq!(from_hex(&to_hex(&d)), Some(d));
        assert_eq!(from_hex(&to_hex(&d).to_uppercase()), None);
        assert_eq!(from_hex("ba78"), None);
        assert_eq!(from_hex(&"g".repeat(64)), None);
    }
}
