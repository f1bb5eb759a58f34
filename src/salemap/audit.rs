//! `salemap audit`: a lane's audit bundle (docs/journal.md, "The audit
//! bundle"): every document salemap holds of each of the lane's series,
//! from the series' first through the last of the days asked for (a
//! chain proves nothing from its middle), with its acknowledgement, the
//! day certificates of those days and before, the public key, and a seal
//! over every byte. Written beside the file asked for and linked into
//! place once complete and on disk: never over a file, never half.

use std::path::{Path, PathBuf};

use super::store::{AuditCursor, Store, StoreError};
use crate::contract::ack::{AckError, Binding, DayCertificate, SealBinding, Signing};
use crate::contract::bundle::{
    BUNDLE_V1, CertificateRecord, DocumentRecord, Header, Record, Writer,
};

/// Documents read from the store at a time.
const PAGE: i64 = 1000;

/// Whose bundle, and which days it speaks for.
#[derive(Debug, Clone)]
pub struct Scope {
    /// The tenant.
    pub tenant: String,
    /// The lane.
    pub lane_id: String,
    /// The first business day.
    pub from: String,
    /// The last.
    pub to: String,
}

/// What was written.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Document records.
    pub documents: u64,
    /// Certificate records.
    pub certificates: u64,
    /// The key that signed them.
    pub key_id: String,
}

/// Why the bundle could not be written.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The database failed.
    #[error("cannot read the lane's documents")]
    Store(#[from] StoreError),
    /// The file could not be written.
    #[error("cannot {what} {path}")]
    File {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file exists already.
    #[error("{0} exists; the bundle is never written over a file")]
    Exists(PathBuf),
    /// A value cannot be signed (a line break in it).
    #[error("cannot sign the bundle")]
    Sign(#[source] AckError),
    /// salemap holds no document of the lane up to the last day.
    #[error("salemap holds no document of lane {lane_id} up to {to}")]
    Nothing {
        /// The lane.
        lane_id: String,
        /// The last day asked for.
        to: String,
    },
}

/// Writes the bundle to `path`, which must not exist.
pub async fn write_file(
    store: &Store,
    signing: &Signing,
    scope: &Scope,
    path: &Path,
    now: jiff::Timestamp,
) -> Result<Summary, AuditError> {
    if path.exists() {
        return Err(AuditError::Exists(path.to_owned()));
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".partial-{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let written = write_to(store, signing, scope, &tmp, now).await;
    let linked = written.and_then(|summary| {
        std::fs::hard_link(&tmp, path)
            .map_err(|source| match source.kind() {
                std::io::ErrorKind::AlreadyExists => AuditError::Exists(path.to_owned()),
                _ => AuditError::File {
                    what: "link into place",
                    path: path.to_owned(),
                    source,
                },
            })
            .map(|()| summary)
    });
    // The temporary name goes in every case.
    let _ = std::fs::remove_file(&tmp);
    if linked.is_ok() {
        // The new name survives a power cut.
        #[cfg(unix)]
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
            && let Ok(d) = std::fs::File::open(dir)
        {
            let _ = d.sync_all();
        }
    }
    linked
}

async fn write_to(
    store: &Store,
    signing: &Signing,
    scope: &Scope,
    tmp: &Path,
    now: jiff::Timestamp,
) -> Result<Summary, AuditError> {
    let file_error = |what: &'static str| {
        let path = tmp.to_owned();
        move |source| AuditError::File { what, path, source }
    };
    let ends = store
        .audit_ends(
            scope.tenant.clone(),
            scope.lane_id.clone(),
            scope.to.clone(),
        )
        .await?;
    if ends.is_empty() {
        return Err(AuditError::Nothing {
            lane_id: scope.lane_id.clone(),
            to: scope.to.clone(),
        });
    }
    // Sales are the retailer's business: the bundle is owner-only.
    crate::common::owner_only::create_file(tmp).map_err(file_error("create"))?;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(tmp)
        .map_err(file_error("create"))?;
    let header = Header {
        bundle: BUNDLE_V1.to_owned(),
        tenant: scope.tenant.clone(),
        lane_id: scope.lane_id.clone(),
        from: scope.from.clone(),
        to: scope.to.clone(),
        generated_at: crate::common::time::fmt_ts(now),
        signing_key: signing.public().clone(),
    };
    let mut w =
        Writer::start(std::io::BufWriter::new(file), header).map_err(file_error("write"))?;
    let mut after: AuditCursor = None;
    loop {
        let page = store
            .audit_page(
                scope.tenant.clone(),
                scope.lane_id.clone(),
                after.clone(),
                PAGE,
            )
            .await?;
        let Some(last) = page.last() else { break };
        after = Some((last.series.clone(), last.lane_seq, last.hash.clone()));
        for d in &page {
            if ends.get(&d.series).is_none_or(|end| d.lane_seq > *end) {
                continue;
            }
            let ack = signing
                .sign(&Binding {
                    tenant: &scope.tenant,
                    lane_id: &scope.lane_id,
                    series: &d.series,
                    number: d.number,
                    hash: &d.hash,
                    doc_no: &d.doc_no,
                    posted_at: &d.posted_at,
                })
                .map_err(AuditError::Sign)?;
            w.record(&Record::Document(DocumentRecord {
                envelope_text: d.envelope.clone(),
                doc_no: d.doc_no.clone(),
                posted_at: d.posted_at.clone(),
                ack,
            }))
            .map_err(file_error("write"))?;
        }
    }
    let certificates = store
        .audit_certificates(
            scope.tenant.clone(),
            scope.lane_id.clone(),
            scope.to.clone(),
        )
        .await?;
    for c in &certificates {
        let DayCertificate {
            certified_at,
            key_id,
            signature,
        } = signing
            .certify(&crate::contract::ack::DayBinding {
                tenant: &scope.tenant,
                lane_id: &scope.lane_id,
                series: &c.series,
                closing_no: c.closing_no,
                business_date: &c.business_date,
                closing_hash: &c.closing_hash,
                certified_at: &c.certified_at,
            })
            .map_err(AuditError::Sign)?;
        w.record(&Record::Certificate(CertificateRecord {
            series: c.series.clone(),
            closing_no: c.closing_no,
            business_date: c.business_date.clone(),
            closing_hash: c.closing_hash.clone(),
            certificate: DayCertificate {
                certified_at,
                key_id,
                signature,
            },
        }))
        .map_err(file_error("write"))?;
    }
    let (sha256, documents, certificates) = w.seal_binding();
    let seal = signing
        .seal(&SealBinding {
            tenant: &scope.tenant,
            lane_id: &scope.lane_id,
            from: &scope.from,
            to: &scope.to,
            documents,
            certificates,
            sha256: &sha256,
        })
        .map_err(AuditError::Sign)?;
    let out = w.seal(seal).map_err(file_error("write"))?;
    let file = out
        .into_inner()
        .map_err(|e| file_error("write")(e.into_error()))?;
    file.sync_all().map_err(file_error("flush"))?;
    Ok(Summary {
        documents,
        certificates,
        key_id: signing.public().key_id.clone(),
    })
}
