//! `key=value` options of a method, consumed by typed getters so that a leftover (misspelt) key is an
//! error that lists the valid ones.

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::num::{ParseFloatError, ParseIntError};
use std::str::{FromStr, ParseBoolError};

use crate::error::{MethodError, Result};

/// Options given to a method on the command line (`--option damping=0.01`).
#[derive(Debug, Clone, Default)]
pub struct Options {
    method: String,
    given: BTreeMap<String, String>,
    /// `key (default)` for every key asked for, in order: the help text of an unknown-option error.
    known: Vec<String>,
    /// Everything the method read, with the value it used (recorded in the score sidecar).
    used: BTreeMap<String, String>,
}

impl Options {
    /// Parses `key=value` pairs for `method`.
    ///
    /// # Errors
    /// A pair without `=` or a key given twice.
    pub fn parse(method: &str, pairs: &[String]) -> Result<Options> {
        let mut given = BTreeMap::new();
        for p in pairs {
            let Some((k, v)) = p.split_once('=') else {
                return Err(MethodError::BadOption {
                    method: method.into(),
                    key: p.clone(),
                    value: String::new(),
                    reason: "options are written key=value, e.g. damping=0.01".into(),
                });
            };
            if given
                .insert(k.trim().to_string(), v.trim().to_string())
                .is_some()
            {
                return Err(MethodError::BadOption {
                    method: method.into(),
                    key: k.into(),
                    value: v.into(),
                    reason: "given twice; give each option once".into(),
                });
            }
        }
        Ok(Options {
            method: method.into(),
            given,
            known: Vec::new(),
            used: BTreeMap::new(),
        })
    }

    /// No options.
    pub fn empty(method: &str) -> Options {
        Options {
            method: method.into(),
            ..Default::default()
        }
    }

    /// Sets an option (for code that builds methods directly).
    pub fn set(mut self, key: &str, value: impl ToString) -> Self {
        self.given.insert(key.into(), value.to_string());
        self
    }

    /// Reads option `key`, or `default`; `check` validates the value (return the reason on failure).
    ///
    /// # Errors
    /// A value that does not parse or fails `check`.
    pub fn get<T: FromStr + ToString>(
        &mut self,
        key: &str,
        default: T,
        check: impl Fn(&T) -> std::result::Result<(), String>,
    ) -> Result<T>
    where
        T::Err: fmt::Display + 'static,
    {
        self.known.push(format!("{key} ({})", default.to_string()));
        let value = match self.given.remove(key) {
            None => default,
            Some(raw) => {
                let v = raw.parse::<T>().map_err(|e| MethodError::BadOption {
                    method: self.method.clone(),
                    key: key.into(),
                    value: raw.clone(),
                    reason: parse_reason(e),
                })?;
                check(&v).map_err(|reason| MethodError::BadOption {
                    method: self.method.clone(),
                    key: key.into(),
                    value: raw.clone(),
                    reason,
                })?;
                v
            }
        };
        self.used.insert(key.into(), value.to_string());
        Ok(value)
    }

    /// Ends reading: any option not asked for is an error listing the valid ones.
    ///
    /// # Errors
    /// [`MethodError::UnknownOption`] for the first leftover key.
    pub fn finish(&self) -> Result<()> {
        match self.given.keys().next() {
            None => Ok(()),
            Some(key) => Err(MethodError::UnknownOption {
                method: self.method.clone(),
                key: key.clone(),
                known: if self.known.is_empty() {
                    "none".into()
                } else {
                    self.known.join(", ")
                },
            }),
        }
    }

    /// The values the method used (defaults included).
    pub fn used(&self) -> &BTreeMap<String, String> {
        &self.used
    }
}

/// An option that is either `auto` (a documented rule computes it) or a value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Auto<T> {
    /// Let the method choose by its documented rule.
    Auto,
    /// This value.
    Value(T),
}

impl<T: FromStr> FromStr for Auto<T>
where
    T::Err: fmt::Display + 'static,
{
    type Err = AutoParseError;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        if s.trim() == "auto" {
            Ok(Auto::Auto)
        } else {
            s.parse().map(Auto::Value).map_err(|e| AutoParseError {
                expected: expected_value(&e),
            })
        }
    }
}

/// Why a value of an [`Auto`] option does not parse: it is neither `auto` nor a value, described
/// as the value's own parser describes it ("a number", or the accepted words).
#[derive(Debug, Clone, PartialEq)]
pub struct AutoParseError {
    expected: String,
}

impl fmt::Display for AutoParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "expected `auto` or {}", self.expected)
    }
}

impl std::error::Error for AutoParseError {}

impl<T: fmt::Display> fmt::Display for Auto<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auto::Auto => f.write_str("auto"),
            Auto::Value(v) => v.fmt(f),
        }
    }
}

/// `Ok` for `auto` or a finite number `>= 0`.
pub fn auto_non_negative(v: &Auto<f64>) -> std::result::Result<(), String> {
    match v {
        Auto::Value(x) if !(x.is_finite() && *x >= 0.0) => {
            Err("must be `auto` or a finite number >= 0".into())
        }
        _ => Ok(()),
    }
}

/// `Ok` for `auto` or a positive finite number.
pub fn auto_positive(v: &Auto<f64>) -> std::result::Result<(), String> {
    match v {
        Auto::Value(x) if !(x.is_finite() && *x > 0.0) => {
            Err("must be `auto` or a positive finite number".into())
        }
        _ => Ok(()),
    }
}

/// `Ok` for a positive finite number.
pub fn positive(v: &f64) -> std::result::Result<(), String> {
    if v.is_finite() && *v > 0.0 {
        Ok(())
    } else {
        Err("must be a positive finite number".into())
    }
}

/// `Ok` for a finite number >= 0.
pub fn non_negative(v: &f64) -> std::result::Result<(), String> {
    if v.is_finite() && *v >= 0.0 {
        Ok(())
    } else {
        Err("must be a finite number >= 0".into())
    }
}

/// `Ok` for an integer >= 1.
pub fn at_least_one(v: &usize) -> std::result::Result<(), String> {
    if *v >= 1 {
        Ok(())
    } else {
        Err("must be at least 1".into())
    }
}

/// Accepts anything.
pub fn any<T>(_: &T) -> std::result::Result<(), String> {
    Ok(())
}

/// The kind of number a standard parser expected, from the type of its error (Rust's own messages,
/// such as "invalid digit found in string", name no type); `None` for other errors.
fn number_kind(err: &dyn Any) -> Option<&'static str> {
    if err.is::<ParseIntError>() {
        Some("a whole number >= 0")
    } else if err.is::<ParseFloatError>() {
        Some("a number")
    } else if err.is::<ParseBoolError>() {
        Some("true or false")
    } else {
        None
    }
}

/// What a parser that failed with `err` expected: the kind of number, or its own message (attrib's
/// option types list their accepted values).
fn expected_value<E: fmt::Display + 'static>(err: &E) -> String {
    number_kind(err).map_or_else(|| err.to_string(), str::to_string)
}

/// Why a value does not parse, in words a user can act on: `expected <kind>` for numbers, the
/// parser's message otherwise ([`AutoParseError`] already reads `expected `auto` or ...`).
fn parse_reason<E: fmt::Display + 'static>(err: E) -> String {
    match number_kind(&err) {
        Some(kind) => format!("expected {kind}"),
        None => err.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unparsable_values_say_what_is_expected() {
        let reason = |method: &str, key: &str, value: &str, err: MethodError| match err {
            MethodError::BadOption {
                method: m,
                key: k,
                value: v,
                reason,
            } => {
                assert_eq!((m.as_str(), k.as_str(), v.as_str()), (method, key, value));
                reason
            }
            other => panic!("{other:?}"),
        };
        let mut o = Options::parse(
            "magic",
            &[
                "block=x".into(),
                "arity=two".into(),
                "damping=lots".into(),
                "memory_budget=abc".into(),
            ],
        )
        .unwrap();
        let e = o.get("block", 64usize, at_least_one).unwrap_err();
        assert_eq!(
            reason("magic", "block", "x", e),
            "expected a whole number >= 0"
        );
        let e = o.get("arity", Auto::<usize>::Auto, |_| Ok(())).unwrap_err();
        assert_eq!(
            reason("magic", "arity", "two", e),
            "expected `auto` or a whole number >= 0"
        );
        let e = o.get("damping", Auto::<f64>::Auto, |_| Ok(())).unwrap_err();
        assert_eq!(
            reason("magic", "damping", "lots", e),
            "expected `auto` or a number"
        );
        let budget = crate::estimators::magic::replay::ByteSize(1 << 30);
        let e = o.get("memory_budget", budget, |_| Ok(())).unwrap_err();
        assert!(reason("magic", "memory_budget", "abc", e).contains("512K, 64M, 2G"));
    }

    #[test]
    fn auto_parses_and_prints() {
        assert_eq!("auto".parse::<Auto<f64>>().unwrap(), Auto::Auto);
        assert_eq!("0.5".parse::<Auto<f64>>().unwrap(), Auto::Value(0.5));
        assert!("x".parse::<Auto<f64>>().is_err());
        assert_eq!(Auto::<usize>::Auto.to_string(), "auto");
        assert_eq!(Auto::Value(3usize).to_string(), "3");
        assert!(auto_non_negative(&Auto::Value(-1.0)).is_err());
        assert!(auto_positive(&Auto::Value(0.0)).is_err());
    }

    #[test]
    fn typed_getters_defaults_and_leftovers() {
        let mut o = Options::parse("if-cg", &["damping=0.5".into(), "iters=7".into()]).unwrap();
        assert_eq!(o.get("damping", 0.01, positive).unwrap(), 0.5);
        assert_eq!(o.get("iters", 100usize, at_least_one).unwrap(), 7);
        assert_eq!(o.get("tol", 1e-6, positive).unwrap(), 1e-6);
        o.finish().unwrap();
        let mut o = Options::parse("if-cg", &["dampnig=0.5".into()]).unwrap();
        o.get("damping", 0.01, positive).unwrap();
        let e = o.finish().unwrap_err().to_string();
        assert!(e.contains("dampnig") && e.contains("damping (0.01)"), "{e}");
        let mut o = Options::parse("if-cg", &["damping=-1".into()]).unwrap();
        let e = o.get("damping", 0.01, positive).unwrap_err().to_string();
        assert!(e.contains("positive"), "{e}");
        assert!(Options::parse("x", &["novalue".into()]).is_err());
    }
}
