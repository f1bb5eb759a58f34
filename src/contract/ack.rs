//! Signed acknowledgements (docs/backend-contract.md): the back-end signs,
//! with Ed25519, a documented byte string for every document it holds, and
//! the lane checks the signature against the key it pinned. The byte
//! string binds the tenant, the lane, the series, the receipt or closing
//! number, the document's hash (so its exact bytes), the back-end's
//! document number and the posting time: an acknowledgement proves that
//! this back-end took this document, and cannot be moved to another.

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

/// The first line of every acknowledgement's signed bytes.
pub const ACK_V1: &str = "laned-ack/1";

/// The first line of every day certificate's signed bytes.
pub const CERTIFICATE_V1: &str = "laned-day-certificate/1";

/// The first line of an audit bundle's seal's signed bytes.
pub const SEAL_V1: &str = "laned-audit-bundle/1";

/// The only signature algorithm.
pub const ED25519: &str = "ed25519";

/// What a document is numbered by within its series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Number {
    /// A sale, return or void: its receipt number.
    Receipt(i64),
    /// A day closing: its closing number.
    Closing(i64),
}

/// What an acknowledgement binds, in the order it is signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding<'a> {
    /// The back-end's tenant.
    pub tenant: &'a str,
    /// The lane.
    pub lane_id: &'a str,
    /// The series.
    pub series: &'a str,
    /// The receipt or closing number.
    pub number: Number,
    /// The lowercase hex SHA-256 of the document's exact bytes.
    pub hash: &'a str,
    /// The back-end's document number.
    pub doc_no: &'a str,
    /// When the back-end posted it (as it answered it).
    pub posted_at: &'a str,
}

/// Why an acknowledgement does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AckError {
    /// A value holds a line break, so the signed bytes would be ambiguous.
    #[error("the {field} holds a line break, which no acknowledgement may sign")]
    LineBreak {
        /// Which value.
        field: &'static str,
    },
    /// Signed with another key than the one pinned.
    #[error("it is signed with key {found}, not with the back-end's key {pinned}")]
    OtherKey {
        /// The key id the acknowledgement names.
        found: String,
        /// The pinned key's id.
        pinned: String,
    },
    /// The signature is not 128 hexadecimal digits.
    #[error("its signature is not 128 hexadecimal digits")]
    Malformed,
    /// The signature does not verify over these bytes with the key.
    #[error("its signature does not match this document")]
    BadSignature,
}

/// Why a public key cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not `ed25519`.
    #[error("algorithm {0:?} is not ed25519")]
    Algorithm(String),
    /// Not 64 hexadecimal digits, or not a point of the curve.
    #[error("the public key is not 64 hexadecimal digits of an Ed25519 key")]
    Malformed,
    /// The key id does not belong to the key.
    #[error("key id {found} does not belong to this key (its id is {expected})")]
    WrongId {
        /// The id given.
        found: String,
        /// The key's id.
        expected: String,
    },
    /// A seed is not 64 hexadecimal digits.
    #[error("a signing key is 64 hexadecimal digits (32 bytes)")]
    Seed,
}

/// The signed bytes: `first` and one `name: value` line per field, each
/// line ended by `\n`; no value may hold a line break.
fn lines(first: &str, fields: &[(&'static str, &str)]) -> Result<Vec<u8>, AckError> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(first.as_bytes());
    out.push(b'\n');
    for (name, value) in fields {
        if value.contains(['\n', '\r']) {
            return Err(AckError::LineBreak { field: name });
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.push(b'\n');
    }
    Ok(out)
}

impl Binding<'_> {
    /// The exact bytes that are signed: `laned-ack/1` and one `name: value`
    /// line per field, each line ended by `\n`.
    pub fn message(&self) -> Result<Vec<u8>, AckError> {
        let (number_name, number) = match self.number {
            Number::Receipt(n) => ("receipt_no", n),
            Number::Closing(n) => ("closing_no", n),
        };
        let number = number.to_string();
        lines(
            ACK_V1,
            &[
                ("tenant", self.tenant),
                ("lane_id", self.lane_id),
                ("series", self.series),
                (number_name, number.as_str()),
                ("hash", self.hash),
                ("doc_no", self.doc_no),
                ("posted_at", self.posted_at),
            ],
        )
    }
}

/// What a day certificate binds: the back-end holds every document of the
/// series from its first through this closing, each linked to the one
/// before it (docs/backend-contract.md §4.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayBinding<'a> {
    /// The back-end's tenant.
    pub tenant: &'a str,
    /// The lane.
    pub lane_id: &'a str,
    /// The series.
    pub series: &'a str,
    /// The closing's number.
    pub closing_no: i64,
    /// The business day it closes.
    pub business_date: &'a str,
    /// The closing's hash (SHA-256 of its exact bytes).
    pub closing_hash: &'a str,
    /// When the back-end certified it.
    pub certified_at: &'a str,
}

impl DayBinding<'_> {
    /// The exact bytes that are signed: `laned-day-certificate/1` and one
    /// `name: value` line per field, each line ended by `\n`.
    pub fn message(&self) -> Result<Vec<u8>, AckError> {
        let closing_no = self.closing_no.to_string();
        lines(
            CERTIFICATE_V1,
            &[
                ("tenant", self.tenant),
                ("lane_id", self.lane_id),
                ("series", self.series),
                ("closing_no", closing_no.as_str()),
                ("business_date", self.business_date),
                ("closing_hash", self.closing_hash),
                ("certified_at", self.certified_at),
            ],
        )
    }
}

/// What an audit bundle's seal binds (docs/journal.md, "The audit
/// bundle"): the whole bundle before it, by its SHA-256.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealBinding<'a> {
    /// The back-end's tenant.
    pub tenant: &'a str,
    /// The lane.
    pub lane_id: &'a str,
    /// The first business day the bundle speaks for.
    pub from: &'a str,
    /// The last.
    pub to: &'a str,
    /// Document records in the bundle.
    pub documents: u64,
    /// Certificate records in the bundle.
    pub certificates: u64,
    /// The lowercase hex SHA-256 of every byte of the bundle before the
    /// seal's line.
    pub sha256: &'a str,
}

impl SealBinding<'_> {
    /// The exact bytes that are signed: `laned-audit-bundle/1` and one
    /// `name: value` line per field, each line ended by `\n`.
    pub fn message(&self) -> Result<Vec<u8>, AckError> {
        let (documents, certificates) = (self.documents.to_string(), self.certificates.to_string());
        lines(
            SEAL_V1,
            &[
                ("tenant", self.tenant),
                ("lane_id", self.lane_id),
                ("from", self.from),
                ("to", self.to),
                ("documents", documents.as_str()),
                ("certificates", certificates.as_str()),
                ("sha256", self.sha256),
            ],
        )
    }
}

/// A day certificate as it travels: when, which key, the signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayCertificate {
    /// When the back-end certified the day.
    pub certified_at: String,
    /// The signing key's id.
    pub key_id: String,
    /// The Ed25519 signature over [`DayBinding::message`], 128 lowercase
    /// hexadecimal digits.
    pub signature: String,
}

/// An acknowledgement as it travels: which key signed, and the signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// The signing key's id ([`key_id`]).
    pub key_id: String,
    /// The Ed25519 signature, 128 lowercase hexadecimal digits.
    pub signature: String,
}

/// A back-end's public signing key, as `GET /v1/keys` and the heartbeat
/// show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKey {
    /// Its id: the first 16 hexadecimal digits of the SHA-256 of its 32
    /// bytes.
    pub key_id: String,
    /// Always `ed25519`.
    pub algorithm: String,
    /// The key's 32 bytes, 64 lowercase hexadecimal digits.
    pub public_key: String,
}

/// The id of a public key: the first 16 hex digits of its bytes' SHA-256.
pub fn key_id(public: &[u8; 32]) -> String {
    let mut id = crate::common::hash::sha256_hex(public);
    id.truncate(16);
    id
}

impl PublicKey {
    /// The published form of `key`.
    pub fn of(key: &VerifyingKey) -> PublicKey {
        let bytes = key.to_bytes();
        PublicKey {
            key_id: key_id(&bytes),
            algorithm: ED25519.into(),
            public_key: const_hex::encode(bytes),
        }
    }

    /// The key, after checking the algorithm, the bytes and the id.
    pub fn verifying_key(&self) -> Result<VerifyingKey, KeyError> {
        if self.algorithm != ED25519 {
            return Err(KeyError::Algorithm(self.algorithm.clone()));
        }
        let mut bytes = [0u8; 32];
        const_hex::decode_to_slice(&self.public_key, &mut bytes)
            .map_err(|_| KeyError::Malformed)?;
        let key = VerifyingKey::from_bytes(&bytes).map_err(|_| KeyError::Malformed)?;
        let expected = key_id(&bytes);
        if self.key_id != expected {
            return Err(KeyError::WrongId {
                found: self.key_id.clone(),
                expected,
            });
        }
        Ok(key)
    }
}

/// A back-end's signing key.
#[derive(Clone)]
pub struct Signing {
    key: SigningKey,
    public: PublicKey,
}

impl std::fmt::Debug for Signing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        f.debug_struct("Signing")
            .field("key_id", &self.public.key_id)
            .finish_non_exhaustive()
    }
}

impl Signing {
    /// The key with this 32-byte seed.
    pub fn from_seed(seed: &[u8; 32]) -> Signing {
        let key = SigningKey::from_bytes(seed);
        let public = PublicKey::of(&key.verifying_key());
        Signing { key, public }
    }

    /// The key whose seed is these 64 hexadecimal digits (surrounding
    /// white space ignored).
    pub fn from_hex(text: &str) -> Result<Signing, KeyError> {
        let mut seed = [0u8; 32];
        const_hex::decode_to_slice(text.trim(), &mut seed).map_err(|_| KeyError::Seed)?;
        Ok(Signing::from_seed(&seed))
    }

    /// The seed as 64 hexadecimal digits, for the key file.
    pub fn to_hex(&self) -> String {
        const_hex::encode(self.key.to_bytes())
    }

    /// The public half.
    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// Signs what `binding` binds.
    pub fn sign(&self, binding: &Binding<'_>) -> Result<Ack, AckError> {
        Ok(Ack {
            key_id: self.public.key_id.clone(),
            signature: self.signature(&binding.message()?),
        })
    }

    /// Certifies a day: signs what `day` binds.
    pub fn certify(&self, day: &DayBinding<'_>) -> Result<DayCertificate, AckError> {
        Ok(DayCertificate {
            certified_at: day.certified_at.to_owned(),
            key_id: self.public.key_id.clone(),
            signature: self.signature(&day.message()?),
        })
    }

    /// Seals an audit bundle: signs what `seal` binds.
    pub fn seal(&self, seal: &SealBinding<'_>) -> Result<Ack, AckError> {
        Ok(Ack {
            key_id: self.public.key_id.clone(),
            signature: self.signature(&seal.message()?),
        })
    }

    fn signature(&self, message: &[u8]) -> String {
        const_hex::encode(self.key.sign(message).to_bytes())
    }
}

/// A pinned key, ready to check acknowledgements.
#[derive(Debug, Clone)]
pub struct Pinned {
    key: VerifyingKey,
    key_id: String,
}

impl Pinned {
    /// Checks `public` and keeps it.
    pub fn new(public: &PublicKey) -> Result<Pinned, KeyError> {
        Ok(Pinned {
            key: public.verifying_key()?,
            key_id: public.key_id.clone(),
        })
    }

    /// The pinned key's id.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Checks that `ack` is this key's signature over `binding`.
    pub fn verify(&self, binding: &Binding<'_>, ack: &Ack) -> Result<(), AckError> {
        self.check(&ack.key_id, &ack.signature, &binding.message()?)
    }

    /// Checks that every `ack` is this key's signature over its binding,
    /// all at once (Ed25519 batch verification, several times faster per
    /// signature than one by one). `Err` says only that one does not hold:
    /// check them one by one ([`Pinned::verify`]) to find which and why.
    /// A batch accepts what one-by-one checks accept, except signatures
    /// made non-canonical by someone who holds a valid one over the same
    /// bytes (which proves nothing new).
    pub fn verify_all(&self, checks: &[(Binding<'_>, &Ack)]) -> Result<(), AckError> {
        let mut messages = Vec::with_capacity(checks.len());
        let mut signatures = Vec::with_capacity(checks.len());
        for (binding, ack) in checks {
            if ack.key_id != self.key_id {
                return Err(AckError::OtherKey {
                    found: ack.key_id.clone(),
                    pinned: self.key_id.clone(),
                });
            }
            let mut sig = [0u8; 64];
            const_hex::decode_to_slice(&ack.signature, &mut sig)
                .map_err(|_| AckError::Malformed)?;
            signatures.push(ed25519_dalek::Signature::from_bytes(&sig));
            messages.push(binding.message()?);
        }
        let messages: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
        let keys = vec![self.key; checks.len()];
        ed25519_dalek::verify_batch(&messages, &signatures, &keys)
            .map_err(|_| AckError::BadSignature)
    }

    /// Checks that `certificate` is this key's signature over `day` (whose
    /// `certified_at` must be the certificate's).
    pub fn verify_certificate(
        &self,
        day: &DayBinding<'_>,
        certificate: &DayCertificate,
    ) -> Result<(), AckError> {
        if day.certified_at != certificate.certified_at {
            return Err(AckError::BadSignature);
        }
        self.check(&certificate.key_id, &certificate.signature, &day.message()?)
    }

    /// Checks that `seal` is this key's signature over `binding`.
    pub fn verify_seal(&self, binding: &SealBinding<'_>, seal: &Ack) -> Result<(), AckError> {
        self.check(&seal.key_id, &seal.signature, &binding.message()?)
    }

    fn check(&self, key_id: &str, signature: &str, message: &[u8]) -> Result<(), AckError> {
        if key_id != self.key_id {
            return Err(AckError::OtherKey {
                found: key_id.to_owned(),
                pinned: self.key_id.clone(),
            });
        }
        let mut sig = [0u8; 64];
        const_hex::decode_to_slice(signature, &mut sig).map_err(|_| AckError::Malformed)?;
        let sig = ed25519_dalek::Signature::from_bytes(&sig);
        self.key
            .verify_strict(message, &sig)
            .map_err(|_| AckError::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding<'a>(hash: &'a str) -> Binding<'a> {
        Binding {
            tenant: "default",
            lane_id: "L03",
            series: "L03",
            number: Number::Receipt(7),
            hash,
            doc_no: "L03/00000007",
            posted_at: "2026-11-22T11:03:12.000Z",
        }
    }

    const HASH: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    #[test]
    fn the_signed_bytes_are_the_documented_lines() {
        let m = binding(HASH).message().unwrap();
        assert_eq!(
            String::from_utf8(m).unwrap(),
            "laned-ack/1\ntenant: default\nlane_id: L03\nseries: L03\nreceipt_no: 7\n\
             hash: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n\
             doc_no: L03/00000007\nposted_at: 2026-11-22T11:03:12.000Z\n"
        );
        let mut b = binding(HASH);
        b.number = Number::Closing(2);
        assert!(
            String::from_utf8(b.message().unwrap())
                .unwrap()
                .contains("\nclosing_no: 2\n")
        );
        b.doc_no = "L03/Z\n1";
        assert_eq!(b.message(), Err(AckError::LineBreak { field: "doc_no" }));
    }

    #[test]
    fn an_ack_verifies_only_for_its_key_and_its_document() {
        let signing = Signing::from_seed(&[7; 32]);
        let pinned = Pinned::new(signing.public()).unwrap();
        let ack = signing.sign(&binding(HASH)).unwrap();
        assert_eq!(ack.signature.len(), 128);
        assert_eq!(pinned.verify(&binding(HASH), &ack), Ok(()));
        // Another document (a replayed ack), another number, a byte changed.
        let other = "1f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        assert_eq!(
            pinned.verify(&binding(other), &ack),
            Err(AckError::BadSignature)
        );
        let mut b = binding(HASH);
        b.number = Number::Closing(7);
        assert_eq!(pinned.verify(&b, &ack), Err(AckError::BadSignature));
        let mut changed = ack.clone();
        changed.signature.replace_range(0..1, "0");
        if changed.signature == ack.signature {
            changed.signature.replace_range(0..1, "1");
        }
        assert_eq!(
            pinned.verify(&binding(HASH), &changed),
            Err(AckError::BadSignature)
        );
        // Another key, even under the pinned key's id.
        let other_key = Signing::from_seed(&[8; 32]);
        let forged = other_key.sign(&binding(HASH)).unwrap();
        assert!(matches!(
            pinned.verify(&binding(HASH), &forged),
            Err(AckError::OtherKey { .. })
        ));
        let disguised = Ack {
            key_id: ack.key_id.clone(),
            signature: forged.signature,
        };
        assert_eq!(
            pinned.verify(&binding(HASH), &disguised),
            Err(AckError::BadSignature)
        );
        let short = Ack {
            key_id: ack.key_id,
            signature: "00".into(),
        };
        assert_eq!(
            pinned.verify(&binding(HASH), &short),
            Err(AckError::Malformed)
        );
    }

    #[test]
    fn a_day_certificate_binds_its_closing_and_time() {
        let signing = Signing::from_seed(&[7; 32]);
        let pinned = Pinned::new(signing.public()).unwrap();
        let day = DayBinding {
            tenant: "default",
            lane_id: "L03",
            series: "L03",
            closing_no: 4,
            business_date: "2026-11-22",
            closing_hash: HASH,
            certified_at: "2026-11-22T21:30:01.000Z",
        };
        assert!(
            String::from_utf8(day.message().unwrap())
                .unwrap()
                .starts_with("laned-day-certificate/1\ntenant: default\n")
        );
        let c = signing.certify(&day).unwrap();
        assert_eq!(pinned.verify_certificate(&day, &c), Ok(()));
        let mut other = day;
        other.business_date = "2026-11-23";
        assert_eq!(
            pinned.verify_certificate(&other, &c),
            Err(AckError::BadSignature)
        );
        let mut later = c.clone();
        later.certified_at = "2026-11-23T00:00:00.000Z".into();
        assert_eq!(
            pinned.verify_certificate(&day, &later),
            Err(AckError::BadSignature)
        );
        // An ack's signature is no certificate: the first lines differ.
        let ack = signing.sign(&binding(HASH)).unwrap();
        let posing = DayCertificate {
            certified_at: day.certified_at.into(),
            key_id: ack.key_id,
            signature: ack.signature,
        };
        assert_eq!(
            pinned.verify_certificate(&day, &posing),
            Err(AckError::BadSignature)
        );
    }

    #[test]
    fn a_public_key_is_checked_before_it_is_pinned() {
        let signing = Signing::from_seed(&[7; 32]);
        let public = signing.public().clone();
        assert_eq!(public.key_id.len(), 16);
        assert_eq!(
            Signing::from_hex(&signing.to_hex()).unwrap().public(),
            &public
        );
        assert_eq!(Signing::from_hex("abc").err(), Some(KeyError::Seed));
        let mut wrong = public.clone();
        wrong.key_id = "0000000000000000".into();
        assert!(matches!(Pinned::new(&wrong), Err(KeyError::WrongId { .. })));
        let mut rsa = public.clone();
        rsa.algorithm = "rsa".into();
        assert_eq!(
            Pinned::new(&rsa).err(),
            Some(KeyError::Algorithm("rsa".into()))
        );
        let mut short = public;
        short.public_key.truncate(10);
        assert_eq!(Pinned::new(&short).err(), Some(KeyError::Malformed));
    }
}
