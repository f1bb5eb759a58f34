//! The till's sale document (docs/till-api.md): validation into a canonical form.
//!
//! Only this module knows the till's JSON. Validation walks the parsed JSON
//! by hand rather than through serde derive, so that every problem is
//! reported at once, with its field path and a sentence a till developer can
//! act on.

use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::contract::Kind;
use crate::contract::money::{self, MAX_AMOUNT, Quantity};

/// Most lines in one sale.
pub const MAX_LINES: usize = 1000;
/// Most payments in one sale.
pub const MAX_PAYMENTS: usize = 100;
/// Largest `extra` object, serialized.
pub const MAX_EXTRA_BYTES: usize = 8 * 1024;

/// One problem with one field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// Path of the field, like `lines[0].amount`.
    pub field: String,
    /// What is wrong, in a sentence.
    pub message: String,
}

/// A sale line, canonical.
#[derive(Debug, Clone, Serialize)]
pub struct Line {
    sku: String,
    name: Option<String>,
    quantity: String,
    unit_price: i64,
    discount: i64,
    tax_code: Option<String>,
    amount: i64,
}

/// A payment, canonical.
#[derive(Debug, Clone, Serialize)]
pub struct Payment {
    payment_id: Option<Uuid>,
    method: String,
    amount: i64,
}

/// The till's own references.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Till {
    invoice_no: Option<String>,
    register: Option<String>,
}

/// A valid sale in canonical form: the same sale always serializes to the
/// same bytes, whatever key order or spacing the till used.
#[derive(Debug, Clone, Serialize)]
pub struct Sale {
    /// sale, return or void.
    pub kind: Kind,
    /// The sale a return or void refers to.
    pub references: Option<Uuid>,
    /// The business day.
    pub business_date: String,
    occurred_at: String,
    /// ISO 4217 currency code.
    pub currency: String,
    cashier: Option<String>,
    lines: Vec<Line>,
    payments: Vec<Payment>,
    /// Σ line amounts, minor units.
    pub total: i64,
    change: i64,
    till: Till,
    extra: Map<String, Value>,
}

impl Sale {
    /// The SKUs of its lines, in order.
    pub fn skus(&self) -> impl Iterator<Item = &str> {
        self.lines.iter().map(|l| l.sku.as_str())
    }

    /// Canonical JSON bytes of the sale.
    pub fn canonical_json(&self) -> String {
        // Serializing plain structs, strings and integers cannot fail; the
        // fallback keeps this path free of panics all the same.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The legacy duplicate fingerprint (docs/till-api.md): present only when the
    /// till sent `till.invoice_no`, `till.register` and `occurred_at`.
    /// Identical baskets rung at different times differ in `occurred_at`.
    pub fn legacy_fingerprint(&self) -> Option<String> {
        let invoice = self.till.invoice_no.as_deref()?;
        let register = self.till.register.as_deref()?;
        let lines: Vec<(&str, i64)> = self
            .lines
            .iter()
            .map(|l| (l.sku.as_str(), l.amount))
            .collect();
        // The same instant written as "Z" or "+00:00" is the same sale.
        let at = self
            .occurred_at
            .parse::<jiff::Timestamp>()
            .map_or_else(|_| self.occurred_at.clone(), |t| t.to_string());
        let key = serde_json::json!([self.kind, register, invoice, at, lines]);
        Some(crate::common::hash::sha256_hex(key.to_string().as_bytes()))
    }
}

/// Validates a parsed sale document. `own_id` is the sale's transaction id
/// when already known (a return may not reference itself).
pub fn validate(doc: &Value, own_id: Option<Uuid>) -> Result<Sale, Vec<FieldError>> {
    let mut v = V::default();
    let sale = v.sale(doc, own_id);
    match sale {
        Some(s) if v.errs.is_empty() => Ok(s),
        _ => {
            if v.errs.is_empty() {
                v.err("", "is not a valid sale");
            }
            Err(v.errs)
        }
    }
}

const SALE_KEYS: &[&str] = &[
    "kind",
    "references",
    "business_date",
    "occurred_at",
    "currency",
    "cashier",
    "lines",
    "payments",
    "total",
    "change",
    "till",
    "extra",
];
const LINE_KEYS: &[&str] = &[
    "sku",
    "name",
    "quantity",
    "unit_price",
    "discount",
    "tax_code",
    "amount",
];
const PAYMENT_KEYS: &[&str] = &["payment_id", "method", "amount"];
const TILL_KEYS: &[&str] = &["invoice_no", "register"];

#[derive(Default)]
struct V {
    errs: Vec<FieldError>,
}

fn path(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) if s.chars().count() > 40 => "a string".into(),
        Value::String(s) => format!("the string {s:?}"),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

impl V {
    fn err(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.errs.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    /// The value of `key` when it is there and not null; when it is not,
    /// `None`, and an error at `p` if it is `required`.
    fn present<'m>(
        &mut self,
        m: &'m Map<String, Value>,
        p: &str,
        key: &str,
        required: bool,
    ) -> Option<&'m Value> {
        match m.get(key) {
            None | Some(Value::Null) => {
                if required {
                    self.err(p, "is required");
                }
                None
            }
            Some(v) => Some(v),
        }
    }

    /// An object with only the allowed keys.
    fn object<'a>(
        &mut self,
        v: &'a Value,
        at: &str,
        allowed: &[&str],
    ) -> Option<&'a Map<String, Value>> {
        let Value::Object(m) = v else {
            self.err(at, format!("must be an object, not {}", describe(v)));
            return None;
        };
        for k in m.keys() {
            if !allowed.contains(&k.as_str()) {
                let hint = if at.is_empty() {
                    " (put till-specific data inside \"extra\")"
                } else {
                    ""
                };
                self.err(path(at, k), format!("is not a known field{hint}"));
            }
        }
        Some(m)
    }

    /// A string of 1..=max characters with no control characters.
    fn string(
        &mut self,
        m: &Map<String, Value>,
        at: &str,
        key: &str,
        required: bool,
        max: usize,
    ) -> Option<String> {
        let p = path(at, key);
        match self.present(m, &p, key, required)? {
            Value::String(s) => {
                if s.is_empty() {
                    self.err(p, "must not be empty");
                    None
                } else if s.chars().count() > max {
                    self.err(p, format!("must be at most {max} characters"));
                    None
                } else if s.chars().any(char::is_control) {
                    self.err(p, "must not contain control characters");
                    None
                } else {
                    Some(s.clone())
                }
            }
            other => {
                self.err(p, format!("must be a string, not {}", describe(other)));
                None
            }
        }
    }

    /// A non-negative integer amount in minor units.
    fn amount(
        &mut self,
        m: &Map<String, Value>,
        at: &str,
        key: &str,
        required: bool,
    ) -> Option<i64> {
        let p = path(at, key);
        match self.present(m, &p, key, required)? {
            Value::Number(n) => {
                match n.as_i64() {
                    Some(a) if a < 0 => {
                        self.err(p, format!("must not be negative (got {a})"));
                        None
                    }
                    Some(a) if a > MAX_AMOUNT => {
                        self.err(p, format!("must be at most {MAX_AMOUNT}"));
                        None
                    }
                    Some(a) => Some(a),
                    None => {
                        self.err(p, format!(
                        "must be a whole number of minor units (e.g. 12500 for 125.00), not {n}"
                    ));
                        None
                    }
                }
            }
            other => {
                self.err(
                    p,
                    format!(
                        "must be a whole number of minor units (e.g. 12500 for 125.00), not {}",
                        describe(other)
                    ),
                );
                None
            }
        }
    }

    fn uuid(
        &mut self,
        m: &Map<String, Value>,
        at: &str,
        key: &str,
        required: bool,
    ) -> Option<Uuid> {
        let s = self.string(m, at, key, required, 36)?;
        match parse_uuid(&s) {
            Some(u) => Some(u),
            None => {
                self.err(
                    path(at, key),
                    "must be a UUID like 0b6f3c1e-8d4a-4c1b-9a57-2f0e6d9b1c3a",
                );
                None
            }
        }
    }

    fn array<'a>(
        &mut self,
        m: &'a Map<String, Value>,
        key: &str,
        max: usize,
    ) -> Option<&'a Vec<Value>> {
        match self.present(m, key, key, true)? {
            Value::Array(a) if a.len() > max => {
                self.err(key, format!("must have at most {max} entries"));
                None
            }
            Value::Array(a) => Some(a),
            other => {
                self.err(key, format!("must be an array, not {}", describe(other)));
                None
            }
        }
    }

    /// For a void: the field must be absent, empty or zero.
    fn absent_for_void(&mut self, m: &Map<String, Value>, key: &str) {
        let ok = match m.get(key) {
            None | Some(Value::Null) => true,
            Some(Value::Array(a)) => a.is_empty(),
            Some(Value::Number(n)) => n.as_i64() == Some(0),
            _ => false,
        };
        if !ok {
            self.err(key, "must be empty for a void: a void cancels its referenced sale and carries no lines, payments or amounts");
        }
    }

    fn sale(&mut self, doc: &Value, own_id: Option<Uuid>) -> Option<Sale> {
        let m = self.object(doc, "", SALE_KEYS)?;
        let kind = match m.get("kind") {
            None | Some(Value::Null) => {
                self.err("kind", "is required (\"sale\", \"return\" or \"void\")");
                None
            }
            Some(Value::String(s)) => Kind::parse(s).or_else(|| {
                self.err(
                    "kind",
                    format!("must be \"sale\", \"return\" or \"void\", not {s:?}"),
                );
                None
            }),
            Some(other) => {
                self.err(
                    "kind",
                    format!(
                        "must be \"sale\", \"return\" or \"void\", not {}",
                        describe(other)
                    ),
                );
                None
            }
        };
        let references = match kind {
            Some(Kind::Sale) => {
                if !matches!(m.get("references"), None | Some(Value::Null)) {
                    self.err(
                        "references",
                        "must be null for a sale (only returns and voids refer to another sale)",
                    );
                }
                None
            }
            Some(k) => {
                let r = self.uuid(m, "", "references", false);
                if r.is_none() && matches!(m.get("references"), None | Some(Value::Null)) {
                    self.err(
                        "references",
                        format!(
                            "is required for a {}: the transaction id of the sale it refers to",
                            k.as_str()
                        ),
                    );
                }
                if r.is_some() && r == own_id {
                    self.err(
                        "references",
                        format!("must not be the {}'s own transaction id", k.as_str()),
                    );
                }
                r
            }
            None => None,
        };
        let business_date = self.string(m, "", "business_date", true, 10).and_then(|s| {
            let ok = s.len() == 10 && s.parse::<jiff::civil::Date>().is_ok();
            if !ok {
                self.err(
                    "business_date",
                    format!("must be a date like 2026-11-22, not {s:?}"),
                );
            }
            ok.then_some(s)
        });
        let occurred_at = self.string(m, "", "occurred_at", true, 64).and_then(|s| {
            let ok = s.parse::<jiff::Timestamp>().is_ok();
            if !ok {
                self.err("occurred_at", format!(
                    "must be a time with its UTC offset, like 2026-11-22T14:03:11+03:00, not {s:?}"
                ));
            }
            ok.then_some(s)
        });
        let currency = self.string(m, "", "currency", true, 3).and_then(|s| {
            let ok = s.len() == 3 && s.bytes().all(|b| b.is_ascii_uppercase());
            if !ok {
                self.err(
                    "currency",
                    format!("must be an ISO 4217 code like \"KES\", not {s:?}"),
                );
            }
            ok.then_some(s)
        });
        let cashier = self.string(m, "", "cashier", false, 64);
        let till = match m.get("till") {
            None | Some(Value::Null) => Some(Till::default()),
            Some(t) => self.object(t, "till", TILL_KEYS).map(|t| Till {
                invoice_no: self.string(t, "till", "invoice_no", false, 64),
                register: self.string(t, "till", "register", false, 64),
            }),
        };
        let extra = match m.get("extra") {
            None | Some(Value::Null) => Some(Map::new()),
            Some(Value::Object(e)) => {
                if serde_json::to_string(e).map_or(usize::MAX, |s| s.len()) > MAX_EXTRA_BYTES {
                    self.err(
                        "extra",
                        format!("must be at most {MAX_EXTRA_BYTES} bytes of JSON"),
                    );
                    None
                } else {
                    Some(e.clone())
                }
            }
            Some(other) => {
                self.err(
                    "extra",
                    format!("must be an object, not {}", describe(other)),
                );
                None
            }
        };

        let (lines, payments, total, change) = if kind == Some(Kind::Void) {
            for k in ["lines", "payments", "total", "change"] {
                self.absent_for_void(m, k);
            }
            (Some(vec![]), Some(vec![]), Some(0), Some(0))
        } else {
            self.money(m)
        };

        Some(Sale {
            kind: kind?,
            references,
            business_date: business_date?,
            occurred_at: occurred_at?,
            currency: currency?,
            cashier,
            lines: lines?,
            payments: payments?,
            total: total?,
            change: change?,
            till: till?,
            extra: extra?,
        })
    }

    /// Lines, payments, total and change of a sale or return, with the
    /// arithmetic checked.
    #[allow(clippy::type_complexity)]
    fn money(
        &mut self,
        m: &Map<String, Value>,
    ) -> (
        Option<Vec<Line>>,
        Option<Vec<Payment>>,
        Option<i64>,
        Option<i64>,
    ) {
        let lines = self.array(m, "lines", MAX_LINES).and_then(|a| {
            if a.is_empty() {
                self.err("lines", "must have at least one line");
                return None;
            }
            let parsed: Vec<Option<Line>> =
                a.iter().enumerate().map(|(i, l)| self.line(l, i)).collect();
            parsed.into_iter().collect::<Option<Vec<_>>>()
        });
        let payments = self.array(m, "payments", MAX_PAYMENTS).and_then(|a| {
            let parsed: Vec<Option<Payment>> = a
                .iter()
                .enumerate()
                .map(|(i, p)| self.payment(p, i))
                .collect();
            parsed.into_iter().collect::<Option<Vec<_>>>()
        });
        let total = self.amount(m, "", "total", true);
        let change = self
            .amount(m, "", "change", false)
            .or_else(|| absent(m, "change").then_some(0));

        if let (Some(lines), Some(total)) = (&lines, total) {
            match money::sum(lines.iter().map(|l| l.amount)) {
                Some(s) if s == total => {}
                Some(s) => self.err(
                    "total",
                    format!("is {total} but the line amounts add up to {s}"),
                ),
                None => self.err(
                    "total",
                    "cannot be checked: the line amounts add up to more than laned can represent",
                ),
            }
        }
        if let (Some(payments), Some(total), Some(change)) = (&payments, total, change) {
            match money::sum(payments.iter().map(|p| p.amount)) {
                Some(paid) if paid - change == total => {}
                Some(paid) if paid - change < total => self.err(
                    "payments",
                    format!("add up to {paid}, less change ({change}) that is {}, short of the total {total}", paid - change),
                ),
                Some(paid) => self.err(
                    "payments",
                    format!("add up to {paid}, less change ({change}) that is {}, more than the total {total}; give the difference as change", paid - change),
                ),
                None => self.err("payments", "add up to more than laned can represent"),
            }
        }
        (lines, payments, total, change)
    }

    fn line(&mut self, v: &Value, i: usize) -> Option<Line> {
        let at = format!("lines[{i}]");
        let m = self.object(v, &at, LINE_KEYS)?;
        let sku = self.string(m, &at, "sku", true, 64);
        let name = self.string(m, &at, "name", false, 256);
        let tax_code = self.string(m, &at, "tax_code", false, 16);
        let quantity = match self.present(m, &path(&at, "quantity"), "quantity", true) {
            None => None,
            Some(Value::String(s)) => match s.parse::<Quantity>() {
                Ok(q) => Some((s.clone(), q)),
                Err(e) => {
                    self.err(path(&at, "quantity"), format!("{e} (got {s:?})"));
                    None
                }
            },
            Some(other) => {
                self.err(path(&at, "quantity"), format!(
                    "must be a decimal number written as a string, like \"2\" or \"0.750\", not {}",
                    describe(other)
                ));
                None
            }
        };
        let unit_price = self.amount(m, &at, "unit_price", true);
        let discount = self
            .amount(m, &at, "discount", false)
            .or_else(|| absent(m, "discount").then_some(0));
        let amount = self.amount(m, &at, "amount", true);
        let (quantity, unit_price, discount, amount) = (quantity?, unit_price?, discount?, amount?);
        match money::line_amount(quantity.1, unit_price, discount) {
            Some(expected) if expected == amount => {}
            Some(expected) => {
                self.err(path(&at, "amount"), format!(
                    "is {amount} but quantity × unit_price − discount is {expected} ({} × {unit_price} − {discount}, rounded half-up)",
                    quantity.0
                ));
                return None;
            }
            None => {
                self.err(
                    path(&at, "amount"),
                    "cannot be checked: quantity × unit_price − discount is negative or too large",
                );
                return None;
            }
        }
        Some(Line {
            sku: sku?,
            name,
            quantity: quantity.0,
            unit_price,
            discount,
            tax_code,
            amount,
        })
    }

    fn payment(&mut self, v: &Value, i: usize) -> Option<Payment> {
        let at = format!("payments[{i}]");
        let m = self.object(v, &at, PAYMENT_KEYS)?;
        let payment_id = match m.get("payment_id") {
            None | Some(Value::Null) => Some(None),
            Some(_) => self.uuid(m, &at, "payment_id", true).map(Some),
        };
        let method = self.string(m, &at, "method", true, 32);
        let amount = self.amount(m, &at, "amount", true);
        Some(Payment {
            payment_id: payment_id?,
            method: method?,
            amount: amount?,
        })
    }
}

/// Whether an optional field is missing or null (it takes its default).
fn absent(m: &Map<String, Value>, key: &str) -> bool {
    matches!(m.get(key), None | Some(Value::Null))
}

/// Parses a transaction id: a hyphenated UUID (any case) of version 4 with
/// the RFC 4122 variant. Returns it lower-cased.
pub fn parse_v4(s: &str) -> Option<Uuid> {
    parse_uuid(s).filter(|u| u.get_version_num() == 4 && u.get_variant() == uuid::Variant::RFC4122)
}

/// Parses a hyphenated UUID of any version (references may come from other
/// systems).
fn parse_uuid(s: &str) -> Option<Uuid> {
    if s.len() != 36 {
        return None;
    }
    Uuid::try_parse(s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn good() -> Value {
        json!({"kind": "sale", "references": null, "business_date": "2026-11-22",
               "occurred_at": "2026-11-22T14:03:11+03:00", "currency": "KES", "cashier": "E042",
               "lines": [{"sku": "4006381333931", "name": "Milk 1L", "quantity": "2",
                          "unit_price": 12500, "discount": 0, "tax_code": "A", "amount": 25000}],
               "payments": [{"payment_id": "0b6f3c1e-8d4a-4c1b-9a57-2f0e6d9b1c3a", "method": "cash", "amount": 30000}],
               "total": 25000, "change": 5000,
               "till": {"invoice_no": "000123", "register": "R3"}, "extra": {}})
    }

    fn fields(doc: Value) -> Vec<String> {
        match validate(&doc, None) {
            Ok(_) => vec![],
            Err(e) => e.into_iter().map(|f| f.field).collect(),
        }
    }

    /// Every message is written to follow its field ("payments add up to
    /// …"): none repeats the field's name or reads as a sentence of its own.
    #[test]
    fn messages_read_after_their_field_without_repeating_it() {
        let mut docs = vec![];
        let mut with = |k: &str, v: Value| {
            let mut d = good();
            d[k] = v;
            docs.push(d);
        };
        with("payments", json!([]));
        with(
            "payments",
            json!([{"payment_id": "0b6f3c1e-8d4a-4c1b-9a57-2f0e6d9b1c3a", "method": "cash", "amount": 90000}]),
        );
        with(
            "payments",
            json!([{"payment_id": "0b6f3c1e-8d4a-4c1b-9a57-2f0e6d9b1c3a", "method": "cash", "amount": i64::MAX}, {"payment_id": "1b6f3c1e-8d4a-4c1b-9a57-2f0e6d9b1c3a", "method": "cash", "amount": i64::MAX}]),
        );
        with("total", json!(1));
        with(
            "lines",
            json!([{"sku": "A", "quantity": "999999999", "unit_price": i64::MAX, "discount": 0, "amount": 1}]),
        );
        with("kind", json!("refund"));
        with("currency", json!("shillings"));
        with("extra", json!(3));
        let mut seen = 0;
        for d in docs {
            for e in validate(&d, None).err().unwrap_or_default() {
                seen += 1;
                let name = e.field.rsplit(['.', '[']).next().unwrap_or("");
                let first = e.message.split([' ', '(']).next().unwrap_or("");
                assert!(
                    !first.eq_ignore_ascii_case(name) && first != "the",
                    "{:?} reads \"{} {}\"",
                    e.field,
                    e.field,
                    e.message
                );
            }
        }
        assert!(seen >= 8, "{seen}");
    }

    #[test]
    fn the_design_example_is_valid() {
        let s = validate(&good(), None).unwrap();
        assert_eq!(s.total, 25000);
        assert!(s.legacy_fingerprint().is_some());
    }

    #[test]
    fn canonical_json_ignores_key_order_and_spacing() {
        let a = validate(&good(), None).unwrap().canonical_json();
        let text = serde_json::to_string_pretty(&good()).unwrap();
        let b = validate(&serde_json::from_str(&text).unwrap(), None)
            .unwrap()
            .canonical_json();
        assert_eq!(a, b);
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let mut d = good();
        d["lines"][0]["unit_price"] = json!(125.0);
        d["payments"][0]["amount"] = json!("300");
        d["currency"] = json!("kes");
        d["colour"] = json!("red");
        let f = fields(d);
        for want in [
            "lines[0].unit_price",
            "payments[0].amount",
            "currency",
            "colour",
        ] {
            assert!(f.contains(&want.to_string()), "{want} missing from {f:?}");
        }
    }

    #[test]
    fn arithmetic_is_checked() {
        let mut d = good();
        d["lines"][0]["amount"] = json!(25001);
        assert_eq!(fields(d), ["lines[0].amount"]);
        let mut d = good();
        d["total"] = json!(24000);
        assert!(fields(d).contains(&"total".into()));
        let mut d = good();
        d["payments"][0]["amount"] = json!(20000);
        assert_eq!(fields(d), ["payments"]);
    }

    #[test]
    fn null_optional_amounts_take_their_default() {
        let mut d = good();
        d["lines"][0]["discount"] = Value::Null;
        d["change"] = Value::Null;
        d["payments"][0]["amount"] = json!(25000);
        assert!(fields(d).is_empty());
    }

    #[test]
    fn the_legacy_fingerprint_compares_instants_not_spellings() {
        let mut a = good();
        a["occurred_at"] = json!("2026-11-22T11:03:11Z");
        let mut b = good();
        b["occurred_at"] = json!("2026-11-22T14:03:11+03:00");
        let fa = validate(&a, None).unwrap().legacy_fingerprint();
        let fb = validate(&b, None).unwrap().legacy_fingerprint();
        assert_eq!(fa, fb);
        let mut c = good();
        c["occurred_at"] = json!("2026-11-22T11:03:12Z");
        assert_ne!(fa, validate(&c, None).unwrap().legacy_fingerprint());
    }

    #[test]
    fn kinds_and_references() {
        let mut d = good();
        d["kind"] = json!("return");
        assert_eq!(fields(d.clone()), ["references"]);
        d["references"] = json!("0b6f3c1e-8d4a-4c1b-9a57-2f0e6d9b1c3a");
        assert!(fields(d).is_empty());
        let void = json!({"kind": "void", "references": "0b6f3c1e-8d4a-4c1b-9a57-2f0e6d9b1c3a",
                          "business_date": "2026-11-22", "occurred_at": "2026-11-22T14:03:11Z",
                          "currency": "KES"});
        assert!(fields(void.clone()).is_empty());
        let mut with_lines = void;
        with_lines["lines"] = good()["lines"].clone();
        assert_eq!(fields(with_lines), ["lines"]);
        let mut d = good();
        d["kind"] = json!("refund");
        assert_eq!(fields(d), ["kind"]);
    }

    #[test]
    fn only_v4_ids_are_transaction_ids() {
        assert!(parse_v4("0B6F3C1E-8D4A-4C1B-9A57-2F0E6D9B1C3A").is_some());
        assert!(parse_v4("0b6f3c1e-8d4a-1c1b-9a57-2f0e6d9b1c3a").is_none()); // v1
        assert!(parse_v4("0b6f3c1e8d4a4c1b9a572f0e6d9b1c3a").is_none()); // not hyphenated
        assert!(parse_v4("{0b6f3c1e-8d4a-4c1b-9a57-2f0e6d9b1c3a}").is_none());
        assert!(parse_v4("not-a-uuid").is_none());
    }

    proptest! {
        #![proptest_config(crate::common::testing::proptest_config(None))]
        /// Any well-formed basket validates, and any single-unit change to a
        /// line amount, the total or a payment is caught.
        #[test]
        fn consistent_baskets_pass_and_any_off_by_one_fails(
            lines in proptest::collection::vec((1u32..1000, 0u32..4, 0i64..1_000_000, 0i64..100), 1..20),
            extra_paid in 0i64..10_000,
            which in 0usize..3,
        ) {
            let mut total = 0i64;
            let mut ls = vec![];
            for (i, (q, scale, price, disc)) in lines.iter().enumerate() {
                let qs = if *scale == 0 { q.to_string() } else {
                    let p = 10u32.pow(*scale);
                    format!("{}.{:0w$}", q / p, q % p, w = *scale as usize)
                };
                let qty: Quantity = match qs.parse() { Ok(x) => x, Err(_) => continue };
                let Some(amount) = money::line_amount(qty, *price, (*disc).min(qty.times(*price).unwrap_or(0))) else { continue };
                let disc = (*disc).min(qty.times(*price).unwrap_or(0));
                total += amount;
                ls.push(json!({"sku": format!("S{i}"), "quantity": qs, "unit_price": price, "discount": disc, "amount": amount}));
            }
            prop_assume!(!ls.is_empty());
            let doc = json!({"kind": "sale", "business_date": "2026-01-01", "occurred_at": "2026-01-01T00:00:00Z",
                "currency": "EUR", "lines": ls, "payments": [{"method": "card", "amount": total + extra_paid}],
                "total": total, "change": extra_paid});
            prop_assert!(validate(&doc, None).is_ok());
            let mut bad = doc.clone();
            match which {
                0 => { let a = bad["lines"][0]["amount"].as_i64().unwrap(); bad["lines"][0]["amount"] = json!(a + 1); }
                1 => { bad["total"] = json!(total + 1); }
                _ => { bad["payments"][0]["amount"] = json!(total + extra_paid - 1); }
            }
            prop_assert!(validate(&bad, None).is_err());
        }

        /// Validation never panics, whatever JSON arrives.
        #[test]
        fn arbitrary_json_never_panics(s in "\\PC{0,200}") {
            if let Ok(v) = serde_json::from_str::<Value>(&s) {
                let _ = validate(&v, None);
            }
        }
    }
}
