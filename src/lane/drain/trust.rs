//! Which key the lane trusts to acknowledge its documents
//! (docs/backend-contract.md, "Signed acknowledgements"), and the checks
//! of every acknowledgement against it.

use super::classify::Outcome;
use crate::contract::Keys;
use crate::contract::ack::{Binding, DayBinding, Number, Pinned, PublicKey};

/// The lane-level fault of an answer that carries no acknowledgement, or
/// one that does not verify against the pinned key, and of a heartbeat
/// that names another key.
pub const BAD_ACK: &str = "bad_ack";

/// The key acknowledgements must verify against, once known.
#[derive(Debug, Default)]
pub struct Trust {
    /// The key the configuration names (`backend_key`), if any.
    pub configured: Option<PublicKey>,
    /// The key in force and the tenant it signs for; `None` until the
    /// back-end's first heartbeat names a key (a back-end that never does
    /// does not sign, and its answers are taken unsigned).
    pub pinned: Option<(Pinned, String)>,
    /// The key and tenant as stored on the lane (pinned at first contact,
    /// or confirmed for the configured key): what a heartbeat is compared
    /// with when no key is configured.
    pub stored: Option<Keys>,
}

/// What the heartbeat's keys mean for the lane.
#[derive(Debug, PartialEq, Eq)]
pub enum KeyCheck {
    /// Nothing to do.
    Same,
    /// Pin these keys now (`true`: they are the configured key).
    Pin(Keys, bool),
    /// The back-end's key is not the one the lane trusts: a lane-level
    /// fault with this message.
    Refuse(String),
}

impl Trust {
    /// What the back-end's heartbeat `keys` mean.
    pub fn check(&self, keys: Option<&Keys>) -> KeyCheck {
        let expected = self
            .configured
            .as_ref()
            .or(self.stored.as_ref().map(|k| &k.signing_key));
        match (keys, expected) {
            (None, None) => KeyCheck::Same,
            (None, Some(e)) => KeyCheck::Refuse(format!(
                "the back-end no longer states its signing key, but this lane trusts key {} \
                 and takes no answer as posted without its signature",
                e.key_id
            )),
            (Some(k), Some(e)) if k.signing_key != *e => KeyCheck::Refuse(format!(
                "the back-end now signs with key {}, but this lane trusts key {}{}",
                k.signing_key.key_id,
                e.key_id,
                if self.configured.is_some() {
                    " (backend_key)"
                } else {
                    " (pinned at first contact)"
                }
            )),
            (Some(k), _) => {
                if let Err(e) = k.signing_key.verifying_key() {
                    return KeyCheck::Refuse(format!(
                        "the back-end's signing key cannot be used: {e}"
                    ));
                }
                let known = self
                    .stored
                    .as_ref()
                    .is_some_and(|s| s.signing_key == k.signing_key && s.tenant == k.tenant);
                if known && self.pinned.is_some() {
                    KeyCheck::Same
                } else {
                    KeyCheck::Pin(k.clone(), self.configured.is_some())
                }
            }
        }
    }

    /// Takes `keys` as the key in force.
    pub fn pin(&mut self, keys: Keys) {
        if let Ok(p) = Pinned::new(&keys.signing_key) {
            self.pinned = Some((p, keys.tenant.clone()));
            self.stored = Some(keys);
        }
    }

    /// Checks the acknowledgement of a posted answer (and a closing's day
    /// certificate, when `day` gives the business day it closes): the
    /// answer itself, with what to keep, or a lane-level fault. Without a
    /// trusted key the answer stands unsigned.
    pub fn verify(
        &self,
        outcome: Outcome,
        lane_id: &str,
        series: &str,
        number: Number,
        body: &[u8],
        day: Option<&str>,
    ) -> Verified {
        let Outcome::Posted {
            doc_no,
            posted_at,
            ack,
            certificate,
        } = outcome
        else {
            return Verified::unsigned(outcome);
        };
        let Some((key, tenant)) = &self.pinned else {
            if let Some(c) = &self.configured {
                return Verified::unsigned(fault(format!(
                    "the back-end has not yet confirmed the configured key {} \
                     (backend_key) in its heartbeat; no answer is taken as posted until then",
                    c.key_id
                )));
            }
            return Verified::unsigned(Outcome::Posted {
                doc_no,
                posted_at,
                ack: None,
                certificate: None,
            });
        };
        let what = match number {
            Number::Receipt(n) => format!("receipt {series}/{n}"),
            Number::Closing(n) => format!("closing {series}/Z{n}"),
        };
        let Some(ack) = ack else {
            return Verified::unsigned(fault(format!(
                "the back-end answered {what} as posted ({doc_no}) without its signature"
            )));
        };
        let hash = crate::contract::journal::hash(body);
        let binding = Binding {
            tenant,
            lane_id,
            series,
            number,
            hash: &hash,
            doc_no: &doc_no,
            posted_at: &posted_at,
        };
        if let Err(e) = key.verify(&binding, &ack) {
            return Verified::unsigned(fault(format!(
                "the back-end's acknowledgement of {what} ({doc_no}) does not hold: {e}; \
                 it is not taken as posted"
            )));
        }
        let certificate = match (certificate, day, number) {
            (Some(c), Some(business_date), Number::Closing(closing_no)) => {
                let d = DayBinding {
                    tenant,
                    lane_id,
                    series,
                    closing_no,
                    business_date,
                    closing_hash: &hash,
                    certified_at: &c.certified_at,
                };
                if let Err(e) = key.verify_certificate(&d, &c) {
                    return Verified::unsigned(fault(format!(
                        "the back-end's day certificate of {what} does not hold: {e}"
                    )));
                }
                Some(c)
            }
            _ => None,
        };
        Verified {
            ack: serde_json::to_string(&ack).ok(),
            certificate: certificate
                .as_ref()
                .and_then(|c| serde_json::to_string(c).ok()),
            outcome: Outcome::Posted {
                doc_no,
                posted_at,
                ack: Some(ack),
                certificate,
            },
        }
    }
}

/// One answer of a round to check.
pub struct Check<'a> {
    /// The answer.
    pub outcome: Outcome,
    /// The document's series.
    pub series: &'a str,
    /// Its receipt number.
    pub number: Number,
    /// The bytes the lane sent.
    pub body: &'a [u8],
}

impl Trust {
    /// Checks the answers of a round of sales ([`Trust::verify`] for each):
    /// when every one is posted and signed, their signatures are checked
    /// together, which is several times faster; otherwise, or if one does
    /// not hold, each on its own, which names the fault.
    pub fn verify_all(&self, lane_id: &str, checks: Vec<Check<'_>>) -> Vec<Verified> {
        if let Some((key, tenant)) = &self.pinned
            && checks.len() > 1
        {
            let hashes: Vec<String> = checks
                .iter()
                .map(|c| crate::contract::journal::hash(c.body))
                .collect();
            let signed: Option<Vec<(Binding<'_>, &crate::contract::ack::Ack)>> = checks
                .iter()
                .zip(&hashes)
                .map(|(c, hash)| match &c.outcome {
                    Outcome::Posted {
                        doc_no,
                        posted_at,
                        ack: Some(ack),
                        ..
                    } => Some((
                        Binding {
                            tenant,
                            lane_id,
                            series: c.series,
                            number: c.number,
                            hash,
                            doc_no,
                            posted_at,
                        },
                        ack,
                    )),
                    _ => None,
                })
                .collect();
            if signed.is_some_and(|s| key.verify_all(s.as_slice()).is_ok()) {
                return checks
                    .into_iter()
                    .map(|c| match c.outcome {
                        Outcome::Posted {
                            doc_no,
                            posted_at,
                            ack: Some(ack),
                            ..
                        } => Verified {
                            ack: serde_json::to_string(&ack).ok(),
                            certificate: None,
                            outcome: Outcome::Posted {
                                doc_no,
                                posted_at,
                                ack: Some(ack),
                                certificate: None,
                            },
                        },
                        other => Verified::unsigned(other),
                    })
                    .collect();
            }
        }
        checks
            .into_iter()
            .map(|c| self.verify(c.outcome, lane_id, c.series, c.number, c.body, None))
            .collect()
    }
}

/// A posted answer after its checks, with what to keep (JSON).
#[derive(Debug)]
pub struct Verified {
    /// The answer, or the lane-level fault it amounts to.
    pub outcome: Outcome,
    /// The acknowledgement to keep with the document.
    pub ack: Option<String>,
    /// The day certificate to keep with a closing.
    pub certificate: Option<String>,
}

impl Verified {
    fn unsigned(outcome: Outcome) -> Verified {
        Verified {
            outcome,
            ack: None,
            certificate: None,
        }
    }
}

fn fault(message: String) -> Outcome {
    Outcome::LaneFault {
        code: BAD_ACK.into(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::ack::Signing;

    fn keys(seed: u8) -> Keys {
        Keys {
            tenant: "default".into(),
            signing_key: Signing::from_seed(&[seed; 32]).public().clone(),
        }
    }

    #[test]
    fn the_first_key_is_pinned_and_another_is_refused() {
        let mut t = Trust::default();
        assert_eq!(t.check(None), KeyCheck::Same);
        assert_eq!(t.check(Some(&keys(1))), KeyCheck::Pin(keys(1), false));
        t.pin(keys(1));
        assert_eq!(t.check(Some(&keys(1))), KeyCheck::Same);
        assert!(matches!(t.check(Some(&keys(2))), KeyCheck::Refuse(_)));
        assert!(matches!(t.check(None), KeyCheck::Refuse(_)));
        // A configured key wins over the pinned one.
        let t = Trust {
            configured: Some(keys(2).signing_key),
            ..Trust::default()
        };
        assert!(matches!(t.check(Some(&keys(1))), KeyCheck::Refuse(_)));
        assert_eq!(t.check(Some(&keys(2))), KeyCheck::Pin(keys(2), true));
    }

    #[test]
    fn a_posted_answer_needs_a_signature_over_this_document() {
        let signing = Signing::from_seed(&[1; 32]);
        let mut t = Trust::default();
        let body = br#"{"transaction_id":"x"}"#;
        let posted = |ack| Outcome::Posted {
            doc_no: "L03/00000001".into(),
            posted_at: "2026-11-22T11:03:12.000Z".into(),
            ack,
            certificate: None,
        };
        // Not pinned: taken unsigned.
        let v = t.verify(posted(None), "L03", "L03", Number::Receipt(1), body, None);
        assert!(matches!(v.outcome, Outcome::Posted { .. }) && v.ack.is_none());
        t.pin(keys(1));
        let hash = crate::contract::journal::hash(body);
        let ack = signing
            .sign(&Binding {
                tenant: "default",
                lane_id: "L03",
                series: "L03",
                number: Number::Receipt(1),
                hash: &hash,
                doc_no: "L03/00000001",
                posted_at: "2026-11-22T11:03:12.000Z",
            })
            .unwrap();
        let v = t.verify(
            posted(Some(ack.clone())),
            "L03",
            "L03",
            Number::Receipt(1),
            body,
            None,
        );
        assert!(matches!(v.outcome, Outcome::Posted { .. }) && v.ack.is_some());
        // Missing, for another receipt, for other bytes.
        for (a, number, b) in [
            (None, Number::Receipt(1), &body[..]),
            (Some(ack.clone()), Number::Receipt(2), &body[..]),
            (
                Some(ack),
                Number::Receipt(1),
                &br#"{"transaction_id":"y"}"#[..],
            ),
        ] {
            let v = t.verify(posted(a), "L03", "L03", number, b, None);
            assert!(
                matches!(&v.outcome, Outcome::LaneFault { code, .. } if code == BAD_ACK),
                "{v:?}"
            );
            assert!(v.ack.is_none());
        }
    }

    /// A round checked together takes every honest answer, and with one
    /// forged among them falls back to one by one: only that one is a
    /// fault, named by its receipt.
    #[test]
    fn a_round_is_checked_together_and_a_forgery_in_it_is_named() {
        let signing = Signing::from_seed(&[1; 32]);
        let mut t = Trust::default();
        t.pin(keys(1));
        let bodies: Vec<Vec<u8>> = (1..=20)
            .map(|i| format!("{{\"transaction_id\":\"{i}\"}}").into_bytes())
            .collect();
        let round = |forge: Option<usize>| -> Vec<Check<'_>> {
            bodies
                .iter()
                .enumerate()
                .map(|(i, body)| {
                    let no = i64::try_from(i).unwrap() + 1;
                    let doc_no = format!("L03/{no:08}");
                    let hash = crate::contract::journal::hash(body);
                    let mut ack = signing
                        .sign(&Binding {
                            tenant: "default",
                            lane_id: "L03",
                            series: "L03",
                            number: Number::Receipt(no),
                            hash: &hash,
                            doc_no: &doc_no,
                            posted_at: "2026-11-22T11:03:12.000Z",
                        })
                        .unwrap();
                    if forge == Some(i) {
                        let flipped = if ack.signature.starts_with('0') {
                            "1"
                        } else {
                            "0"
                        };
                        ack.signature.replace_range(..1, flipped);
                    }
                    Check {
                        outcome: Outcome::Posted {
                            doc_no,
                            posted_at: "2026-11-22T11:03:12.000Z".into(),
                            ack: Some(ack),
                            certificate: None,
                        },
                        series: "L03",
                        number: Number::Receipt(no),
                        body,
                    }
                })
                .collect()
        };
        let all = t.verify_all("L03", round(None));
        assert!(
            all.iter()
                .all(|v| matches!(v.outcome, Outcome::Posted { .. }) && v.ack.is_some())
        );
        let forged = t.verify_all("L03", round(Some(7)));
        for (i, v) in forged.iter().enumerate() {
            match &v.outcome {
                Outcome::LaneFault { code, message } => {
                    assert_eq!((i, code.as_str()), (7, BAD_ACK));
                    assert!(message.contains("receipt L03/8"), "{message}");
                }
                other => assert!(i != 7 && matches!(other, Outcome::Posted { .. })),
            }
        }
    }
}
