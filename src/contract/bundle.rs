//! The audit bundle (docs/journal.md, "The audit bundle"): one NDJSON file
//! in which a back-end hands an auditor everything needed to check a
//! lane's history without it: the documents' exact bytes in lane order,
//! each with its acknowledgement, the day certificates, the public key,
//! and a seal signed over every byte before it.
//!
//! [`Checker`] reads a bundle line by line and checks what is not the
//! journal's own business: the header, every acknowledgement, every
//! certificate against the closing it names, and the seal. The chain, the
//! grand totals, the numbering and the closings' figures are checked by
//! [`super::journal`]'s verifier, fed with the document lines.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::ack::{
    Ack, Binding, DayBinding, DayCertificate, Number, Pinned, PublicKey, SealBinding,
};

/// The `bundle` of a header: this format.
pub const BUNDLE_V1: &str = "laned-audit/1";

/// One line of a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
pub enum Record {
    /// The first line.
    Header(Header),
    /// A document, in lane order within its series.
    Document(DocumentRecord),
    /// A day certificate.
    Certificate(CertificateRecord),
    /// The last line.
    Seal(Seal),
}

/// What the bundle is: whose, which lane, which days, which key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// [`BUNDLE_V1`].
    pub bundle: String,
    /// The back-end's tenant.
    pub tenant: String,
    /// The lane.
    pub lane_id: String,
    /// The first business day it speaks for.
    pub from: String,
    /// The last.
    pub to: String,
    /// When the back-end wrote it.
    pub generated_at: String,
    /// The key that signed its acknowledgements, certificates and seal.
    pub signing_key: PublicKey,
}

/// A document as the back-end holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentRecord {
    /// Its exact bytes, as UTF-8 text.
    pub envelope_text: String,
    /// The back-end's document number.
    pub doc_no: String,
    /// When the back-end posted it.
    pub posted_at: String,
    /// The back-end's acknowledgement.
    pub ack: Ack,
}

/// A day certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateRecord {
    /// The series.
    pub series: String,
    /// The closing it countersigns.
    pub closing_no: i64,
    /// The day.
    pub business_date: String,
    /// The closing's hash.
    pub closing_hash: String,
    /// The certificate.
    #[serde(flatten)]
    pub certificate: DayCertificate,
}

/// The seal: counts, the SHA-256 of every byte before its line, signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seal {
    /// Document records.
    pub documents: u64,
    /// Certificate records.
    pub certificates: u64,
    /// The SHA-256 (lowercase hex) of the bundle's bytes before this line.
    pub sha256: String,
    /// The signature over [`SealBinding`].
    #[serde(flatten)]
    pub signature: Ack,
}

/// The fields of a document the checks need, from its bytes.
#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    lane_id: String,
    #[serde(default)]
    series: String,
    receipt_no: Option<i64>,
    closing_no: Option<i64>,
    kind: Option<String>,
    sale: Option<Day>,
    closing: Option<Day>,
}

#[derive(Deserialize)]
struct Day {
    #[serde(default)]
    business_date: String,
}

/// Why a bundle cannot be read as one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    /// The first line is not a header of this format.
    #[error("the first line is not an audit bundle's header ({BUNDLE_V1}): {0}")]
    Header(String),
    /// Its key cannot be used.
    #[error("the bundle's signing key cannot be used: {0}")]
    Key(#[source] super::ack::KeyError),
    /// A line is not a record.
    #[error("line {line} is not a bundle record: {why}")]
    Record {
        /// The line, from 1.
        line: u64,
        /// What is wrong.
        why: String,
    },
}

/// One acknowledgement, certificate or seal that does not hold, or a
/// record out of place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The line, from 1.
    pub line: u64,
    /// The series, when the line has one.
    pub series: Option<String>,
    /// What is wrong.
    pub why: String,
}

/// What the bundle proves of one series, besides its chain.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SeriesProof {
    /// Documents.
    pub documents: u64,
    /// Of which with an acknowledgement that verifies.
    pub acknowledged: u64,
    /// Documents of the days the bundle speaks for.
    pub in_range: u64,
    /// Closings of those days, by closing number: the day.
    pub closed: BTreeMap<i64, String>,
    /// Of those, the ones with a certificate that verifies.
    pub certified: BTreeMap<i64, String>,
    /// Acknowledgements and certificates that do not hold.
    pub problems: Vec<Problem>,
}

/// What [`Checker::finish`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BundleReport {
    /// The header.
    pub header: Header,
    /// Per series.
    pub series: BTreeMap<String, SeriesProof>,
    /// Problems of no series: the seal, records out of place.
    pub problems: Vec<Problem>,
    /// The seal holds: every byte before it is the back-end's.
    pub sealed: bool,
}

impl BundleReport {
    /// Everything it holds is signed and sealed (the chain is the
    /// journal verifier's).
    pub fn signed(&self) -> bool {
        self.sealed
            && self.problems.is_empty()
            && self
                .series
                .values()
                .all(|s| s.problems.is_empty() && s.acknowledged == s.documents)
    }
}

/// A closing as the certificates need it.
struct Closing {
    hash: String,
    business_date: String,
}

/// Reads a bundle line by line.
pub struct Checker {
    header: Header,
    key: Pinned,
    hasher: Sha256,
    line: u64,
    documents: u64,
    certificates: u64,
    series: BTreeMap<String, SeriesProof>,
    closings: BTreeMap<(String, i64), Closing>,
    problems: Vec<Problem>,
    sealed: Option<bool>,
}

/// What a line was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line {
    /// A document: feed it to the journal's verifier.
    Document,
    /// Anything else.
    Other,
}

impl Checker {
    /// Starts with the bundle's first line (with its line break).
    pub fn start(first: &[u8]) -> Result<Checker, BundleError> {
        let header = match serde_json::from_slice::<Record>(first) {
            Ok(Record::Header(h)) if h.bundle == BUNDLE_V1 => h,
            Ok(Record::Header(h)) => {
                return Err(BundleError::Header(format!("format {:?}", h.bundle)));
            }
            Ok(_) => return Err(BundleError::Header("another record".into())),
            Err(e) => return Err(BundleError::Header(e.to_string())),
        };
        let key = Pinned::new(&header.signing_key).map_err(BundleError::Key)?;
        let mut hasher = Sha256::new();
        hasher.update(first);
        Ok(Checker {
            header,
            key,
            hasher,
            line: 1,
            documents: 0,
            certificates: 0,
            series: BTreeMap::new(),
            closings: BTreeMap::new(),
            problems: Vec::new(),
            sealed: None,
        })
    }

    /// Takes the next line (with its line break).
    pub fn line(&mut self, bytes: &[u8]) -> Result<Line, BundleError> {
        self.line += 1;
        let line = self.line;
        if self.sealed.is_some() {
            if !bytes.trim_ascii().is_empty() {
                self.problem(line, None, "there is more after the seal".into());
            }
            return Ok(Line::Other);
        }
        let record: Record = serde_json::from_slice(bytes).map_err(|e| BundleError::Record {
            line,
            why: e.to_string(),
        })?;
        match record {
            Record::Seal(seal) => {
                let sha256 = const_hex::encode(self.hasher.clone().finalize());
                self.sealed = Some(self.seal(line, &seal, &sha256));
                Ok(Line::Other)
            }
            other => {
                self.hasher.update(bytes);
                match other {
                    Record::Document(d) => {
                        self.document(line, &d);
                        Ok(Line::Document)
                    }
                    Record::Certificate(c) => {
                        self.certificate(line, &c);
                        Ok(Line::Other)
                    }
                    _ => {
                        self.problem(line, None, "a second header".into());
                        Ok(Line::Other)
                    }
                }
            }
        }
    }

    fn problem(&mut self, line: u64, series: Option<&str>, why: String) {
        let p = Problem {
            line,
            series: series.map(str::to_owned),
            why,
        };
        match series.and_then(|s| self.series.get_mut(s)) {
            Some(s) => s.problems.push(p),
            None => self.problems.push(p),
        }
    }

    fn document(&mut self, line: u64, d: &DocumentRecord) {
        self.documents += 1;
        let bytes = d.envelope_text.as_bytes();
        let hash = super::journal::hash(bytes);
        let env: Envelope = match serde_json::from_slice(bytes) {
            Ok(e) => e,
            Err(e) => {
                // The journal's verifier names it too.
                self.problem(line, None, format!("the document is not one: {e}"));
                return;
            }
        };
        let series = self.series.entry(env.series.clone()).or_default();
        series.documents += 1;
        let closing = env.kind.as_deref() == Some("closing");
        let (number, day) = match (closing, env.closing_no, env.receipt_no) {
            (true, Some(n), _) => (Number::Closing(n), env.closing.map(|c| c.business_date)),
            (false, _, Some(n)) => (Number::Receipt(n), env.sale.map(|s| s.business_date)),
            _ => {
                self.problem(line, Some(&env.series), "the document has no number".into());
                return;
            }
        };
        let day = day.unwrap_or_default();
        if (self.header.from.as_str()..=self.header.to.as_str()).contains(&day.as_str()) {
            series.in_range += 1;
            if let Number::Closing(n) = number {
                series.closed.insert(n, day.clone());
            }
        }
        if let Number::Closing(n) = number {
            self.closings.insert(
                (env.series.clone(), n),
                Closing {
                    hash: hash.clone(),
                    business_date: day,
                },
            );
        }
        if env.lane_id != self.header.lane_id {
            let why = format!(
                "the document is lane {}'s, not lane {}'s",
                env.lane_id, self.header.lane_id
            );
            self.problem(line, Some(&env.series), why);
            return;
        }
        let binding = Binding {
            tenant: &self.header.tenant,
            lane_id: &self.header.lane_id,
            series: &env.series,
            number,
            hash: &hash,
            doc_no: &d.doc_no,
            posted_at: &d.posted_at,
        };
        match self.key.verify(&binding, &d.ack) {
            Ok(()) => {
                if let Some(s) = self.series.get_mut(&env.series) {
                    s.acknowledged += 1;
                }
            }
            Err(e) => {
                let what = match number {
                    Number::Receipt(n) => format!("receipt {n}"),
                    Number::Closing(n) => format!("closing {n}"),
                };
                self.problem(
                    line,
                    Some(&env.series),
                    format!("the acknowledgement of {what} does not hold: {e}"),
                );
            }
        }
    }

    fn certificate(&mut self, line: u64, c: &CertificateRecord) {
        self.certificates += 1;
        let why = match self.closings.get(&(c.series.clone(), c.closing_no)) {
            None => Some(format!(
                "the certificate names closing {} of series {}, which the bundle does not hold \
                 before it",
                c.closing_no, c.series
            )),
            Some(cl) if cl.hash != c.closing_hash || cl.business_date != c.business_date => {
                Some(format!(
                    "the certificate of closing {} does not name that closing's hash and day",
                    c.closing_no
                ))
            }
            Some(_) => {
                let day = DayBinding {
                    tenant: &self.header.tenant,
                    lane_id: &self.header.lane_id,
                    series: &c.series,
                    closing_no: c.closing_no,
                    business_date: &c.business_date,
                    closing_hash: &c.closing_hash,
                    certified_at: &c.certificate.certified_at,
                };
                self.key
                    .verify_certificate(&day, &c.certificate)
                    .err()
                    .map(|e| {
                        format!(
                            "the certificate of closing {} does not hold: {e}",
                            c.closing_no
                        )
                    })
            }
        };
        match why {
            Some(why) => self.problem(line, Some(&c.series), why),
            None => {
                let s = self.series.entry(c.series.clone()).or_default();
                if s.closed.contains_key(&c.closing_no) {
                    s.certified.insert(c.closing_no, c.business_date.clone());
                }
            }
        }
    }

    fn seal(&mut self, line: u64, seal: &Seal, sha256: &str) -> bool {
        let why = if seal.sha256 != sha256 {
            Some(
                "the seal does not match the bundle's bytes: something before it was changed"
                    .to_owned(),
            )
        } else if (seal.documents, seal.certificates) != (self.documents, self.certificates) {
            Some(format!(
                "the seal counts {} documents and {} certificates, the bundle holds {} and {}",
                seal.documents, seal.certificates, self.documents, self.certificates
            ))
        } else {
            let binding = SealBinding {
                tenant: &self.header.tenant,
                lane_id: &self.header.lane_id,
                from: &self.header.from,
                to: &self.header.to,
                documents: seal.documents,
                certificates: seal.certificates,
                sha256,
            };
            self.key
                .verify_seal(&binding, &seal.signature)
                .err()
                .map(|e| format!("the seal does not hold: {e}"))
        };
        match why {
            Some(why) => {
                self.problem(line, None, why);
                false
            }
            None => true,
        }
    }

    /// What the bundle proves, besides its chain.
    pub fn finish(mut self) -> BundleReport {
        if self.sealed.is_none() {
            self.problem(
                self.line,
                None,
                "the bundle has no seal: it was cut short".into(),
            );
        }
        BundleReport {
            header: self.header,
            series: self.series,
            problems: self.problems,
            sealed: self.sealed == Some(true),
        }
    }
}

/// Writes a bundle: the header, then documents and certificates as they
/// come, then the seal over every byte written before it.
pub struct Writer<W: std::io::Write> {
    out: W,
    hasher: Sha256,
    documents: u64,
    certificates: u64,
}

impl<W: std::io::Write> Writer<W> {
    /// Writes the header.
    pub fn start(mut out: W, header: Header) -> std::io::Result<Writer<W>> {
        let mut hasher = Sha256::new();
        let line = line_of(&Record::Header(header))?;
        out.write_all(&line)?;
        hasher.update(&line);
        Ok(Writer {
            out,
            hasher,
            documents: 0,
            certificates: 0,
        })
    }

    /// Writes a record (a document or a certificate).
    pub fn record(&mut self, r: &Record) -> std::io::Result<()> {
        match r {
            Record::Document(_) => self.documents += 1,
            Record::Certificate(_) => self.certificates += 1,
            _ => {}
        }
        let line = line_of(r)?;
        self.out.write_all(&line)?;
        self.hasher.update(&line);
        Ok(())
    }

    /// What the seal must sign: call [`Writer::seal`] with its signature.
    pub fn seal_binding(&self) -> (String, u64, u64) {
        (
            const_hex::encode(self.hasher.clone().finalize()),
            self.documents,
            self.certificates,
        )
    }

    /// Writes the seal and hands back the output.
    pub fn seal(mut self, signature: Ack) -> std::io::Result<W> {
        let (sha256, documents, certificates) = self.seal_binding();
        let line = line_of(&Record::Seal(Seal {
            documents,
            certificates,
            sha256,
            signature,
        }))?;
        self.out.write_all(&line)?;
        Ok(self.out)
    }
}

fn line_of(r: &Record) -> std::io::Result<Vec<u8>> {
    let mut line = serde_json::to_vec(r).map_err(std::io::Error::other)?;
    line.push(b'\n');
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::ack::Signing;

    /// A bundle of one document and its seal, written and read back; one
    /// byte changed anywhere is caught.
    #[test]
    fn a_sealed_bundle_reads_back_and_any_changed_byte_is_caught() {
        let key = Signing::from_seed(&[7; 32]);
        let header = Header {
            bundle: BUNDLE_V1.into(),
            tenant: "default".into(),
            lane_id: "L03".into(),
            from: "2026-11-22".into(),
            to: "2026-11-22".into(),
            generated_at: "2026-11-23T00:00:00.000Z".into(),
            signing_key: key.public().clone(),
        };
        let env = r#"{"transaction_id":"x","lane_id":"L03","series":"L03","receipt_no":1,"sale":{"business_date":"2026-11-22"}}"#;
        let hash = crate::contract::journal::hash(env.as_bytes());
        let ack = key
            .sign(&Binding {
                tenant: "default",
                lane_id: "L03",
                series: "L03",
                number: Number::Receipt(1),
                hash: &hash,
                doc_no: "L03/00000001",
                posted_at: "2026-11-22T10:00:00.000Z",
            })
            .unwrap();
        let mut w = Writer::start(Vec::new(), header.clone()).unwrap();
        w.record(&Record::Document(DocumentRecord {
            envelope_text: env.into(),
            doc_no: "L03/00000001".into(),
            posted_at: "2026-11-22T10:00:00.000Z".into(),
            ack,
        }))
        .unwrap();
        let (sha256, documents, certificates) = w.seal_binding();
        let seal = key
            .seal(&SealBinding {
                tenant: "default",
                lane_id: "L03",
                from: "2026-11-22",
                to: "2026-11-22",
                documents,
                certificates,
                sha256: &sha256,
            })
            .unwrap();
        let bytes = w.seal(seal).unwrap();
        let read = |bytes: &[u8]| -> Option<BundleReport> {
            let mut lines = bytes.split_inclusive(|b| *b == b'\n');
            let mut c = Checker::start(lines.next()?).ok()?;
            for l in lines {
                c.line(l).ok()?;
            }
            Some(c.finish())
        };
        let report = read(&bytes).unwrap();
        assert!(report.signed(), "{report:?}");
        assert_eq!(report.series["L03"].acknowledged, 1);
        for i in 0..bytes.len() {
            let mut changed = bytes.clone();
            changed[i] ^= 0x01;
            if let Some(r) = read(&changed) {
                assert!(!r.signed(), "byte {i} changed and the bundle still holds");
            }
        }
        // Cut short: no seal.
        let cut = &bytes[..bytes.len() - 10];
        let cut = &cut[..cut.iter().rposition(|b| *b == b'\n').unwrap() + 1];
        assert!(!read(cut).unwrap().signed());
    }
}
