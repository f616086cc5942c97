//! OAuth scopes: the RFC 6749 §3.3 `scope-token` grammar and a set type.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a scope string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    #[error("scope is empty")]
    Empty,
    #[error("scope contains an empty scope token (leading, trailing or repeated space)")]
    EmptyToken,
    #[error("scope token contains a character outside RFC 6749 scope-token syntax")]
    InvalidChar,
}

/// A set of scope tokens, kept sorted so its string form is canonical.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct ScopeSet(BTreeSet<String>);

/// `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`
fn valid_token_char(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x5B | 0x5D..=0x7E)
}

/// Checks one scope token against the RFC 6749 grammar.
pub fn validate_token(token: &str) -> Result<(), ScopeError> {
    if token.is_empty() {
        return Err(ScopeError::EmptyToken);
    }
    if token.bytes().all(valid_token_char) {
        Ok(())
    } else {
        Err(ScopeError::InvalidChar)
    }
}

/// What a scope lets a client do, in words a person approves on the consent
/// page (DESIGN.md §2). Unknown scopes get a neutral sentence, so a scope
/// added to the registry still renders.
pub fn describe(scope: &str) -> &'static str {
    match scope {
        "customer:read" => "Read customer records (get_customer_info, get_recent_customers)",
        "ticket:create" => "Create support tickets on your behalf (create_support_ticket)",
        "account:calculate" => "Calculate account values (calculate_account_value)",
        "security:read" => "Read the security event log (security://events)",
        _ => "A permission defined by this server's administrator",
    }
}

impl ScopeSet {
    /// The empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses a space-delimited scope string. Empty strings, empty tokens and
    /// characters outside the grammar are errors; duplicates collapse.
    pub fn parse(s: &str) -> Result<Self, ScopeError> {
        if s.is_empty() {
            return Err(ScopeError::Empty);
        }
        let mut set = BTreeSet::new();
        for token in s.split(' ') {
            validate_token(token)?;
            set.insert(token.to_owned());
        }
        Ok(Self(set))
    }

    /// Builds a set from tokens, validating each.
    pub fn try_from_tokens<I, S>(tokens: I) -> Result<Self, ScopeError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut set = BTreeSet::new();
        for t in tokens {
            validate_token(t.as_ref())?;
            set.insert(t.as_ref().to_owned());
        }
        Ok(Self(set))
    }

    pub fn contains(&self, token: &str) -> bool {
        self.0.contains(token)
    }

    pub fn is_subset(&self, other: &ScopeSet) -> bool {
        self.0.is_subset(&other.0)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    /// Tokens of `self` that are not in `other`.
    pub fn difference<'a>(&'a self, other: &'a ScopeSet) -> impl Iterator<Item = &'a str> {
        self.0.difference(&other.0).map(String::as_str)
    }

    pub fn insert(&mut self, token: &str) -> Result<(), ScopeError> {
        validate_token(token)?;
        self.0.insert(token.to_owned());
        Ok(())
    }

    /// Scopes in both sets (the scope policy: what is asked ∩ what is allowed).
    pub fn intersection(&self, other: &ScopeSet) -> ScopeSet {
        ScopeSet(self.0.intersection(&other.0).cloned().collect())
    }

    pub fn union(&self, other: &ScopeSet) -> ScopeSet {
        ScopeSet(self.0.union(&other.0).cloned().collect())
    }
}

impl fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for t in &self.0 {
            if !first {
                f.write_str(" ")?;
            }
            f.write_str(t)?;
            first = false;
        }
        Ok(())
    }
}

impl fmt::Debug for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ScopeSet({self})")
    }
}

impl FromStr for ScopeSet {
    type Err = ScopeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for ScopeSet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ScopeSet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        ScopeSet::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_and_formats_canonically() {
        let s = ScopeSet::parse("ticket:create customer:read customer:read").unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s.to_string(), "customer:read ticket:create");
        assert!(s.contains("customer:read"));
        assert!(!s.contains("customer"));
    }

    #[test]
    fn every_shared_scope_has_its_own_description() {
        let generic = describe("no-such-scope");
        let known = [
            "customer:read",
            "ticket:create",
            "account:calculate",
            "security:read",
        ];
        let texts: BTreeSet<&str> = known.iter().map(|s| describe(s)).collect();
        assert_eq!(texts.len(), known.len());
        assert!(!texts.contains(generic));
    }

    #[test]
    fn rejects_malformed() {
        assert_eq!(ScopeSet::parse(""), Err(ScopeError::Empty));
        assert_eq!(ScopeSet::parse(" a"), Err(ScopeError::EmptyToken));
        assert_eq!(ScopeSet::parse("a "), Err(ScopeError::EmptyToken));
        assert_eq!(ScopeSet::parse("a  b"), Err(ScopeError::EmptyToken));
        assert_eq!(ScopeSet::parse("a\"b"), Err(ScopeError::InvalidChar));
        assert_eq!(ScopeSet::parse("a\\b"), Err(ScopeError::InvalidChar));
        assert_eq!(ScopeSet::parse("a\tb"), Err(ScopeError::InvalidChar));
        assert_eq!(ScopeSet::parse("é"), Err(ScopeError::InvalidChar));
    }

    #[test]
    fn subset_and_difference() {
        let allowed = ScopeSet::parse("a b c").unwrap();
        let req = ScopeSet::parse("a d").unwrap();
        assert!(!req.is_subset(&allowed));
        assert_eq!(req.difference(&allowed).collect::<Vec<_>>(), vec!["d"]);
        assert!(ScopeSet::parse("c a").unwrap().is_subset(&allowed));
    }

    #[test]
    fn serde_roundtrip() {
        let s: ScopeSet = serde_json::from_str("\"b a\"").unwrap();
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"a b\"");
        assert!(serde_json::from_str::<ScopeSet>("\"\"").is_err());
    }

    proptest! {
        #[test]
        fn display_parse_roundtrip(tokens in proptest::collection::btree_set("[!#-\\[\\]-~]{1,12}", 1..6)) {
            let set = ScopeSet::try_from_tokens(&tokens).unwrap();
            let again = ScopeSet::parse(&set.to_string()).unwrap();
            prop_assert_eq!(&set, &again);
            prop_assert_eq!(set.len(), tokens.len());
        }

        #[test]
        fn never_panics(s in ".{0,64}") {
            if let Ok(set) = ScopeSet::parse(&s) {
                // Anything accepted re-parses from its canonical form.
                prop_assert_eq!(ScopeSet::parse(&set.to_string()).unwrap(), set);
            }
        }
    }
}
