//! Money and quantity arithmetic. Amounts are integers in minor units (i64);
//! quantities are decimal strings. No floating point anywhere (ARCHITECTURE.md, invariant 8).

use std::fmt;
use std::str::FromStr;

/// The largest single amount, in minor units, laned accepts (10^15: ten
/// trillion of a two-decimal currency). Keeps every sum of a bounded sale far
/// inside `i64`.
pub const MAX_AMOUNT: i64 = 1_000_000_000_000_000;

/// Most digits after the decimal point of a quantity.
pub const MAX_QUANTITY_SCALE: u32 = 6;
/// Most digits before the decimal point of a quantity.
pub const MAX_QUANTITY_INT_DIGITS: usize = 9;

/// A non-negative decimal quantity, kept as `mantissa / 10^scale`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity {
    mantissa: u64,
    scale: u32,
}

/// Why a quantity string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// Not of the form `123` or `1.250`.
    #[error("must be a decimal number written as a string, like \"2\" or \"0.750\"")]
    Syntax,
    /// More digits than laned keeps.
    #[error(
        "has too many digits (at most {MAX_QUANTITY_INT_DIGITS} before and {MAX_QUANTITY_SCALE} after the point)"
    )]
    TooPrecise,
    /// Zero is not a quantity anyone sells.
    #[error("must be greater than zero")]
    Zero,
}

impl FromStr for Quantity {
    type Err = QuantityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (int, frac) = match s.split_once('.') {
            Some((i, f)) => (i, Some(f)),
            None => (s, None),
        };
        let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
        if !digits(int) || frac.is_some_and(|f| !digits(f)) {
            return Err(QuantityError::Syntax);
        }
        let frac = frac.unwrap_or("");
        let int = int.trim_start_matches('0');
        if int.len() > MAX_QUANTITY_INT_DIGITS || frac.len() > MAX_QUANTITY_SCALE as usize {
            return Err(QuantityError::TooPrecise);
        }
        let mut mantissa: u64 = 0;
        for b in int.bytes().chain(frac.bytes()) {
            // At most 15 digits: cannot overflow u64.
            mantissa = mantissa * 10 + u64::from(b - b'0');
        }
        if mantissa == 0 {
            return Err(QuantityError::Zero);
        }
        Ok(Quantity {
            mantissa,
            scale: frac.len() as u32,
        })
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = 10u64.pow(self.scale);
        if self.scale == 0 {
            write!(f, "{}", self.mantissa)
        } else {
            write!(
                f,
                "{}.{:0width$}",
                self.mantissa / p,
                self.mantissa % p,
                width = self.scale as usize
            )
        }
    }
}

impl Quantity {
    /// `self × unit_price`, rounded half-up to the minor unit, or `None` when
    /// the result would exceed [`MAX_AMOUNT`] (or `unit_price` is negative).
    pub fn times(self, unit_price: i64) -> Option<i64> {
        if unit_price < 0 {
            return None;
        }
        let p = 10i128.pow(self.scale);
        let exact = i128::from(self.mantissa) * i128::from(unit_price);
        // Both factors are non-negative, so half-up is "add half, floor".
        let rounded = (exact + p / 2) / p;
        i64::try_from(rounded).ok().filter(|v| *v <= MAX_AMOUNT)
    }
}

/// The amount a line must carry: `quantity × unit_price − discount`, rounded
/// half-up to the minor unit. `None` when it would be negative or too large.
pub fn line_amount(quantity: Quantity, unit_price: i64, discount: i64) -> Option<i64> {
    let gross = quantity.times(unit_price)?;
    if !(0..=MAX_AMOUNT).contains(&discount) {
        return None;
    }
    gross.checked_sub(discount).filter(|v| *v >= 0)
}

/// Sum of amounts each within `0..=MAX_AMOUNT`; `None` if the sum passes
/// `i64::MAX` (it cannot for a bounded number of terms, but we do not assume).
pub fn sum(amounts: impl IntoIterator<Item = i64>) -> Option<i64> {
    amounts.into_iter().try_fold(0i64, i64::checked_add)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn q(s: &str) -> Quantity {
        s.parse().unwrap()
    }

    #[test]
    fn quantity_parses_integers_and_decimals() {
        assert_eq!(q("2").times(12_500), Some(25_000));
        assert_eq!(q("0.5").times(999), Some(500)); // 499.5 rounds half-up
        assert_eq!(q("1.250").times(100), Some(125));
        assert_eq!(q("0.001").times(499), Some(0)); // 0.499 rounds down
        assert_eq!(q("0.001").times(500), Some(1)); // 0.5 rounds up
        assert_eq!(q("007").to_string(), "7");
        assert_eq!(q("1.50").to_string(), "1.50");
    }

    #[test]
    fn quantity_refuses_what_is_not_a_plain_positive_decimal() {
        for bad in [
            "", ".", "1.", ".5", "-1", "+1", "1e3", "1,5", " 1", "0x10", "1.2.3", "٣",
        ] {
            assert_eq!(
                bad.parse::<Quantity>(),
                Err(QuantityError::Syntax),
                "{bad:?}"
            );
        }
        assert_eq!("0".parse::<Quantity>(), Err(QuantityError::Zero));
        assert_eq!("0.000".parse::<Quantity>(), Err(QuantityError::Zero));
        assert_eq!(
            "1.1234567".parse::<Quantity>(),
            Err(QuantityError::TooPrecise)
        );
        assert_eq!(
            "1234567890".parse::<Quantity>(),
            Err(QuantityError::TooPrecise)
        );
        assert!("000000000123456789".parse::<Quantity>().is_ok());
    }

    #[test]
    fn line_amount_subtracts_discount_and_refuses_negative_or_huge() {
        assert_eq!(line_amount(q("2"), 12_500, 500), Some(24_500));
        assert_eq!(line_amount(q("1"), 100, 101), None);
        assert_eq!(line_amount(q("1"), 100, -1), None);
        assert_eq!(line_amount(q("999999999"), MAX_AMOUNT, 0), None);
        assert_eq!(line_amount(q("1"), -5, 0), None);
    }

    proptest! {
        #![proptest_config(crate::common::testing::proptest_config(None))]
        /// The rounded product is within half a minor unit of the exact
        /// product, and ties go up.
        #[test]
        fn times_rounds_half_up(int in 0u64..1_000_000, frac in 0u64..1000, price in 0i64..10_000_000) {
            prop_assume!(int > 0 || frac > 0);
            let s = format!("{int}.{frac:03}");
            let qty: Quantity = s.parse().unwrap();
            let got = i128::from(qty.times(price).unwrap());
            let exact_x1000 = (i128::from(int) * 1000 + i128::from(frac)) * i128::from(price);
            // got*1000 - exact in (-500, 500]: ties (exactly .5) round up.
            let diff = got * 1000 - exact_x1000;
            prop_assert!(diff > -500 && diff <= 500, "{s} × {price} = {got}, diff {diff}");
        }

        /// Any string that parses prints back to an equal value, and
        /// parsing never panics on arbitrary input.
        #[test]
        fn parse_never_panics_and_round_trips(s in "\\PC{0,20}") {
            if let Ok(qty) = s.parse::<Quantity>() {
                let again: Quantity = qty.to_string().parse().unwrap();
                prop_assert_eq!(again.times(1_000_000), qty.times(1_000_000));
            }
        }

        /// Line amounts are never negative and never exceed the bound.
        #[test]
        fn line_amount_is_bounded(m in 1u64..1_000_000_000, price in any::<i64>(), disc in any::<i64>()) {
            let qty: Quantity = m.to_string().parse().unwrap();
            if let Some(a) = line_amount(qty, price, disc) {
                prop_assert!((0..=MAX_AMOUNT).contains(&a));
            }
        }
    }
}

/// Digits after the decimal point of a currency (ISO 4217 minor unit): 0
/// for yen-like currencies, 3 for the dinars that use fils, 2 otherwise.
pub fn minor_digits(currency: &str) -> u32 {
    match currency {
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX"
        | "UYI" | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        _ => 2,
    }
}

/// An amount in minor units as people read it: `1 234.50 KES`.
/// Integer arithmetic only.
pub fn display(minor: i64, currency: &str) -> String {
    let digits = minor_digits(currency);
    let unit = 10u64.pow(digits);
    let abs = minor.unsigned_abs();
    let (major, fraction) = (abs / unit, abs % unit);
    let mut grouped = String::new();
    let text = major.to_string();
    for (i, c) in text.chars().enumerate() {
        if i > 0 && (text.len() - i) % 3 == 0 {
            grouped.push('\u{202f}');
        }
        grouped.push(c);
    }
    let sign = if minor < 0 { "-" } else { "" };
    if digits == 0 {
        format!("{sign}{grouped} {currency}")
    } else {
        format!(
            "{sign}{grouped}.{fraction:0width$} {currency}",
            width = digits as usize
        )
    }
}

/// An amount as people type it, `12500`, `12500.5` or `-3.25`, in minor
/// units of `currency` (no more decimals than the currency has). Integer
/// arithmetic only; `None` when it is not an amount laned can hold.
pub fn parse_major(text: &str, currency: &str) -> Option<i64> {
    let digits = minor_digits(currency) as usize;
    let (negative, rest) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text),
    };
    let (int, frac) = rest.split_once('.').unwrap_or((rest, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || !all_digits(int) || !all_digits(frac) || frac.len() > digits {
        return None;
    }
    if rest.contains('.') && frac.is_empty() {
        return None;
    }
    let major: i64 = int.parse().ok()?;
    let padded = format!("{frac:0<digits$}");
    let minor: i64 = if digits == 0 { 0 } else { padded.parse().ok()? };
    let value = major
        .checked_mul(10i64.pow(digits as u32))?
        .checked_add(minor)?;
    (value <= MAX_AMOUNT).then_some(if negative { -value } else { value })
}

#[cfg(test)]
mod display_tests {
    use super::{display, parse_major};

    #[test]
    fn typed_amounts_become_minor_units_of_their_currency() {
        assert_eq!(parse_major("12500", "KES"), Some(1_250_000));
        assert_eq!(parse_major("12500.5", "KES"), Some(1_250_050));
        assert_eq!(parse_major("-3.25", "EUR"), Some(-325));
        assert_eq!(parse_major("1500", "JPY"), Some(1500));
        assert_eq!(parse_major("1.234", "KWD"), Some(1234));
        for bad in [
            "",
            "1.",
            ".5",
            "1.234",
            "1,5",
            "abc",
            "1e3",
            "--1",
            "99999999999999999999",
        ] {
            assert_eq!(parse_major(bad, "KES"), None, "{bad}");
        }
        assert_eq!(parse_major("1.5", "JPY"), None);
    }

    #[test]
    fn amounts_read_with_the_currency_s_own_decimals() {
        assert_eq!(display(50_000, "KES"), "500.00 KES");
        assert_eq!(
            display(123_456_789, "KES"),
            "1\u{202f}234\u{202f}567.89 KES"
        );
        assert_eq!(display(-5, "EUR"), "-0.05 EUR");
        assert_eq!(display(1500, "JPY"), "1\u{202f}500 JPY");
        assert_eq!(display(1_234, "KWD"), "1.234 KWD");
        assert_eq!(
            display(i64::MIN, "EUR"),
            "-92\u{202f}233\u{202f}720\u{202f}368\u{202f}547\u{202f}758.08 EUR"
        );
    }
}
