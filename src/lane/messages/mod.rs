//! The words people read, in their language: one message catalogue per
//! language (`en.ftl`, `sw.ftl`, `uk.ftl`, in Project Fluent's format, so
//! that translators can handle plurals and word order), chosen by the
//! lane's `locale` setting or, for the status page, by the browser's
//! `Accept-Language`. English is the reference and the fallback; a test
//! checks that every message exists in every language. Machine-readable
//! codes never come from here: they stay English.

use std::sync::LazyLock;
use std::time::Duration;

use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource, FluentValue};
use serde::{Deserialize, Serialize};
use unic_langid::LanguageIdentifier;

/// A language laned speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Locale {
    /// English (the reference).
    #[default]
    En,
    /// Swahili.
    Sw,
    /// Ukrainian.
    Uk,
}

impl Locale {
    /// Every language, the reference first.
    pub const ALL: [Locale; 3] = [Locale::En, Locale::Sw, Locale::Uk];

    /// The language's tag (`en`, `sw`, `uk`), as the `locale` setting and
    /// HTML's `lang` attribute take it.
    pub fn as_str(self) -> &'static str {
        match self {
            Locale::En => "en",
            Locale::Sw => "sw",
            Locale::Uk => "uk",
        }
    }

    /// The language of a tag such as `sw`, `sw-KE` or `uk_UA.UTF-8`;
    /// `None` for a language laned does not speak.
    pub fn parse(tag: &str) -> Option<Locale> {
        let lang = tag
            .split(['-', '_', '.', '@'])
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        Locale::ALL.into_iter().find(|l| l.as_str() == lang)
    }

    /// The language to answer a request in: the first language of its
    /// `Accept-Language` header that laned speaks (by quality, then
    /// order), else `fallback` (the lane's `locale` setting).
    pub fn negotiate(accept_language: Option<&str>, fallback: Locale) -> Locale {
        let Some(header) = accept_language else {
            return fallback;
        };
        let mut offered: Vec<(u16, usize, Locale)> = header
            .split(',')
            .enumerate()
            .filter_map(|(i, part)| {
                let mut it = part.split(';');
                let tag = it.next()?.trim();
                let q = it
                    .find_map(|p| p.trim().strip_prefix("q="))
                    .map_or(Some(1000), quality)?;
                (q > 0).then_some((q, i, Locale::parse(tag)?))
            })
            .collect();
        offered.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        offered.first().map_or(fallback, |o| o.2)
    }

    fn source(self) -> &'static str {
        match self {
            Locale::En => include_str!("en.ftl"),
            Locale::Sw => include_str!("sw.ftl"),
            Locale::Uk => include_str!("uk.ftl"),
        }
    }

    fn index(self) -> usize {
        match self {
            Locale::En => 0,
            Locale::Sw => 1,
            Locale::Uk => 2,
        }
    }
}

impl std::fmt::Display for Locale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An `Accept-Language` quality (`0.8`) in thousandths; `None` when it is
/// not one.
fn quality(q: &str) -> Option<u16> {
    let v: f32 = q.trim().parse().ok()?;
    (0.0..=1.0)
        .contains(&v)
        .then(|| (v * 1000.0).round() as u16)
}

/// The catalogues, parsed once.
static BUNDLES: LazyLock<[FluentBundle<FluentResource>; 3]> =
    LazyLock::new(|| Locale::ALL.map(bundle));

fn bundle(locale: Locale) -> FluentBundle<FluentResource> {
    // A catalogue that does not parse keeps the messages that do (the
    // tests make sure there are no others).
    let resource = FluentResource::try_new(locale.source().to_owned()).unwrap_or_else(|(r, _)| r);
    let id: LanguageIdentifier = locale.as_str().parse().unwrap_or_default();
    let mut b = FluentBundle::new_concurrent(vec![id]);
    // The text goes into HTML and terminals, not into a bidirectional
    // layout engine: no isolation marks around arguments.
    b.set_use_isolating(false);
    let _ = b.add_resource(resource);
    b
}

/// An argument of a message: text, or a count that picks a plural form.
#[derive(Debug, Clone)]
pub enum Arg {
    /// Text, shown as is.
    Text(String),
    /// A whole number.
    Count(i64),
}

impl From<String> for Arg {
    fn from(s: String) -> Arg {
        Arg::Text(s)
    }
}

impl From<&str> for Arg {
    fn from(s: &str) -> Arg {
        Arg::Text(s.to_owned())
    }
}

impl From<i64> for Arg {
    fn from(n: i64) -> Arg {
        Arg::Count(n)
    }
}

impl From<u32> for Arg {
    fn from(n: u32) -> Arg {
        Arg::Count(n.into())
    }
}

/// The message `id` in `locale`, with its arguments. A message missing
/// from that language (the tests prevent it) comes in English; one missing
/// from every language shows as its id, never as nothing.
pub fn text(locale: Locale, id: &str, args: &[(&str, Arg)]) -> String {
    format_in(locale, id, args)
        .or_else(|| format_in(Locale::En, id, args))
        .unwrap_or_else(|| id.to_owned())
}

fn format_in(locale: Locale, id: &str, args: &[(&str, Arg)]) -> Option<String> {
    let b = &BUNDLES[locale.index()];
    let pattern = b.get_message(id)?.value()?;
    let mut fargs = FluentArgs::new();
    for (k, v) in args {
        let v = match v {
            Arg::Text(s) => FluentValue::from(s.as_str()),
            Arg::Count(n) => FluentValue::from(*n),
        };
        fargs.set(*k, v);
    }
    let mut errors = vec![];
    let s = b.format_pattern(pattern, Some(&fargs), &mut errors);
    Some(s.into_owned())
}

/// Something to say, in no language yet: a message and its arguments,
/// said in the reader's language by [`Words::say`]. Durations stay
/// durations until then, so that each language writes them its own way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phrase {
    id: &'static str,
    args: Vec<(&'static str, Part)>,
}

/// An argument of a [`Phrase`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Text, shown as is (a receipt number, an amount).
    Text(String),
    /// A count that picks a plural form.
    Count(i64),
    /// A duration as people say it ([`Words::duration`]).
    Duration(Duration),
    /// A countdown in hours up to three days ([`Words::hours`]).
    Hours(Duration),
    /// Another phrase, said first.
    Phrase(Box<Phrase>),
    /// What a back-end's refusal code means ([`Words::backend_code`]).
    BackendCode(String),
}

impl Phrase {
    /// The message `id` with no arguments yet.
    pub fn new(id: &'static str) -> Phrase {
        Phrase { id, args: vec![] }
    }

    /// The same phrase with one more argument.
    pub fn arg(mut self, name: &'static str, part: Part) -> Phrase {
        self.args.push((name, part));
        self
    }

    /// The message id.
    pub fn id(&self) -> &'static str {
        self.id
    }
}

/// The words of one language: a shorthand for [`text`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Words(pub Locale);

impl Words {
    /// The message `id`, without arguments.
    pub fn get(self, id: &str) -> String {
        text(self.0, id, &[])
    }

    /// The message `id` with its arguments.
    pub fn with(self, id: &str, args: &[(&str, Arg)]) -> String {
        text(self.0, id, args)
    }

    /// A duration as people say it: "26 h 5 min", "3 days 2 h", "45 s".
    pub fn duration(self, d: Duration) -> String {
        let s = d.as_secs();
        let (days, h, m) = (s / 86_400, s / 3600 % 24, s / 60 % 60);
        let n = |v: u64| Arg::Count(i64::try_from(v).unwrap_or(i64::MAX));
        match (days, h, m) {
            (0, 0, 0) => self.with("dur-seconds", &[("s", n(s))]),
            (0, 0, m) => self.with("dur-minutes", &[("m", n(m))]),
            (0, h, 0) => self.with("dur-hours", &[("h", n(h))]),
            (0, h, m) => self.with("dur-hours-minutes", &[("h", n(h)), ("m", n(m))]),
            (d, 0, _) => self.with("dur-days", &[("d", n(d))]),
            (d, h, _) => self.with("dur-days-hours", &[("d", n(d)), ("h", n(h))]),
        }
    }

    /// A countdown or an outage the way a cashier says it: hours up to
    /// three days ("3 h 12 min", "24 h", "50 h"), days beyond.
    pub fn hours(self, d: Duration) -> String {
        let s = d.as_secs();
        let (h, m) = (s / 3600, s / 60 % 60);
        let n = |v: u64| Arg::Count(i64::try_from(v).unwrap_or(i64::MAX));
        match (h, m) {
            (0, _) => self.duration(d),
            (h, _) if h >= 72 => self.duration(d),
            (h, 0) => self.with("dur-hours", &[("h", n(h))]),
            (h, m) => self.with("dur-hours-minutes", &[("h", n(h)), ("m", n(m))]),
        }
    }

    /// "just now" or "5 min ago": how long ago `t` was at `now`.
    pub fn ago(self, now: jiff::Timestamp, t: jiff::Timestamp) -> String {
        let d = now.duration_since(t).unsigned_abs();
        if d.as_secs() < 10 {
            self.get("time-just-now")
        } else {
            self.with("time-ago", &[("duration", self.duration(d).into())])
        }
    }

    /// A phrase in this language.
    pub fn say(self, p: &Phrase) -> String {
        let args: Vec<(&str, Arg)> = p
            .args
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Part::Text(s) => Arg::Text(s.clone()),
                    Part::Count(n) => Arg::Count(*n),
                    Part::Duration(d) => Arg::Text(self.duration(*d)),
                    Part::Hours(d) => Arg::Text(self.hours(*d)),
                    Part::Phrase(p) => Arg::Text(self.say(p)),
                    Part::BackendCode(c) => Arg::Text(self.backend_code(c)),
                };
                (*k, v)
            })
            .collect();
        self.with(p.id, &args)
    }

    /// What a back-end's refusal `code` means, in plain words.
    pub fn backend_code(self, code: &str) -> String {
        let id = match code {
            "payload_mismatch"
            | "receipt_no_conflict"
            | "validation_failed"
            | "unauthorized"
            | "forbidden"
            | "wrong_lane"
            | "series_of_another_lane"
            | "chain_conflict"
            | "grand_total_mismatch"
            | "bad_ack"
            | "not_found" => {
                format!("backend-{code}")
            }
            c if c.starts_with("http_") => "backend-unexpected".into(),
            _ => "backend-refused".into(),
        };
        self.get(&id)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use fluent_syntax::ast::{Entry, Expression, InlineExpression, Pattern, PatternElement};

    use super::*;

    /// The ids of a catalogue's messages, and the arguments each uses;
    /// with the catalogue's parse errors.
    fn messages(locale: Locale) -> (Vec<(String, BTreeSet<String>)>, Vec<String>) {
        let (ast, errors) = match fluent_syntax::parser::parse(locale.source()) {
            Ok(ast) => (ast, vec![]),
            Err((ast, errors)) => (ast, errors.iter().map(|e| format!("{e:?}")).collect()),
        };
        let mut out = vec![];
        for entry in ast.body {
            if let Entry::Message(m) = entry {
                let mut vars = BTreeSet::new();
                if let Some(p) = &m.value {
                    variables(p, &mut vars);
                }
                out.push((m.id.name.to_owned(), vars));
            }
        }
        (out, errors)
    }

    fn variables(p: &Pattern<&str>, out: &mut BTreeSet<String>) {
        for el in &p.elements {
            if let PatternElement::Placeable { expression } = el {
                expression_vars(expression, out);
            }
        }
    }

    fn expression_vars(e: &Expression<&str>, out: &mut BTreeSet<String>) {
        match e {
            Expression::Inline(i) => inline_vars(i, out),
            Expression::Select { selector, variants } => {
                inline_vars(selector, out);
                for v in variants {
                    variables(&v.value, out);
                }
            }
        }
    }

    fn inline_vars(i: &InlineExpression<&str>, out: &mut BTreeSet<String>) {
        match i {
            InlineExpression::VariableReference { id } => {
                out.insert(id.name.to_owned());
            }
            InlineExpression::Placeable { expression } => expression_vars(expression, out),
            _ => {}
        }
    }

    #[test]
    fn every_message_exists_in_every_language_with_the_same_arguments() {
        let (reference, errors) = messages(Locale::En);
        assert!(errors.is_empty(), "en.ftl: {errors:?}");
        assert!(reference.len() > 50, "{} messages", reference.len());
        let want: Vec<&String> = reference.iter().map(|(id, _)| id).collect();
        for locale in Locale::ALL {
            let (got, errors) = messages(locale);
            assert!(errors.is_empty(), "{locale}.ftl does not parse: {errors:?}");
            let ids: Vec<&String> = got.iter().map(|(id, _)| id).collect();
            let missing: Vec<_> = want.iter().filter(|id| !ids.contains(id)).collect();
            let extra: Vec<_> = ids.iter().filter(|id| !want.contains(id)).collect();
            assert!(
                missing.is_empty() && extra.is_empty(),
                "{locale}.ftl: missing {missing:?}, not in English {extra:?}"
            );
            for ((id, vars), (_, theirs)) in reference.iter().zip(
                want.iter()
                    .map(|id| got.iter().find(|(g, _)| g == *id).expect("present")),
            ) {
                assert_eq!(vars, theirs, "{locale}.ftl: {id} uses other arguments");
            }
        }
    }

    /// Every message formats in every language with every argument given,
    /// for counts that pick each plural form, without a Fluent error.
    #[test]
    fn every_message_formats_in_every_language() {
        let (reference, _) = messages(Locale::En);
        for locale in Locale::ALL {
            let b = &BUNDLES[locale.index()];
            for (id, vars) in &reference {
                for n in [0, 1, 2, 5, 11, 21, 22] {
                    let mut args = FluentArgs::new();
                    for v in vars {
                        args.set(v.as_str(), FluentValue::from(n));
                    }
                    let pattern = b.get_message(id).and_then(|m| m.value());
                    let pattern = pattern.unwrap_or_else(|| panic!("{locale}: {id} has no value"));
                    let mut errors = vec![];
                    let s = b.format_pattern(pattern, Some(&args), &mut errors);
                    assert!(errors.is_empty(), "{locale}: {id}: {errors:?}");
                    assert!(!s.trim().is_empty(), "{locale}: {id} is empty");
                }
            }
        }
    }

    #[test]
    fn the_browser_language_wins_when_laned_speaks_it() {
        let n = |h| Locale::negotiate(Some(h), Locale::En);
        assert_eq!(n("sw-KE,sw;q=0.9,en;q=0.8"), Locale::Sw);
        assert_eq!(n("uk-UA,uk;q=0.9"), Locale::Uk);
        assert_eq!(n("de-DE,uk;q=0.5,en;q=0.7"), Locale::En);
        assert_eq!(n("fr, de"), Locale::En);
        assert_eq!(n("en;q=0.1, sw"), Locale::Sw);
        assert_eq!(n("sw;q=0"), Locale::En);
        assert_eq!(n("sw;q=banana, uk"), Locale::Uk);
        assert_eq!(Locale::negotiate(Some("fr"), Locale::Uk), Locale::Uk);
        assert_eq!(Locale::negotiate(None, Locale::Sw), Locale::Sw);
        assert_eq!(Locale::parse("uk_UA.UTF-8"), Some(Locale::Uk));
        assert_eq!(Locale::parse("klingon"), None);
    }

    #[test]
    fn durations_read_as_people_say_them_in_each_language() {
        let en = Words(Locale::En);
        let s = Duration::from_secs;
        assert_eq!(en.duration(s(45)), "45 s");
        assert_eq!(en.duration(s(26 * 3600 + 300)), "1 day 2 h");
        assert_eq!(en.duration(s(3 * 86_400)), "3 days");
        assert_eq!(en.hours(s(24 * 3600)), "24 h");
        assert_eq!(en.hours(s(3 * 3600 + 12 * 60)), "3 h 12 min");
        assert_eq!(en.hours(s(50 * 3600)), "50 h");
        assert_eq!(en.hours(s(80 * 3600)), "3 days 8 h");
        let uk = Words(Locale::Uk);
        assert_eq!(uk.duration(s(86_400)), "1 день");
        assert_eq!(uk.duration(s(3 * 86_400)), "3 дні");
        assert_eq!(uk.duration(s(5 * 86_400)), "5 днів");
        assert_eq!(uk.hours(s(3 * 3600 + 12 * 60)), "3 год 12 хв");
        let sw = Words(Locale::Sw);
        assert_eq!(sw.hours(s(3 * 3600 + 12 * 60)), "saa 3 dakika 12");
        assert_eq!(sw.duration(s(2 * 86_400)), "siku 2");
    }

    #[test]
    fn every_back_end_code_reads_as_a_plain_sentence() {
        let en = Words(Locale::En);
        assert_eq!(
            en.backend_code("receipt_no_conflict"),
            "Head office already has a sale with this receipt number. Call support; nothing is lost."
        );
        assert!(
            en.backend_code("unknown_sku")
                .starts_with("Head office refused this sale")
        );
        assert!(en.backend_code("http_418").contains("does not understand"));
        for code in ["payload_mismatch", "wrong_lane", "not_found", "forbidden"] {
            for l in Locale::ALL {
                let s = Words(l).backend_code(code);
                assert!(!s.contains("backend-"), "{l}: {code}: {s}");
            }
        }
    }
}
