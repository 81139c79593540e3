//! Topic names and topic filters: validation, matching and `$share` parsing.
//!
//! Both types are checked once, when they are built, so the rest of the crate
//! (the codec, the router, the session) can hold a [`TopicName`] or a
//! [`TopicFilter`] and never check it again ("parse, don't validate").
//! Matching ([`matches()`]) is on the routing hot path: it walks both strings
//! level by level and never allocates.
//!
//! The rules are those of section 4.7 of MQTT 3.1.1 and 5.0, which agree, plus
//! the shared subscriptions of MQTT 5.0 section 4.8.2.

#![forbid(unsafe_code)]

use core::borrow::Borrow;
use core::fmt;
use core::ops::Deref;

use bytestring::ByteString;

/// A Topic Name: the topic a PUBLISH (or a Will) is sent to.
///
/// It is never empty and has no wildcard, except for [`TopicName::empty`],
/// which stands for the zero-length name of a v5 PUBLISH that carries a
/// Topic Alias instead.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct TopicName(ByteString);

impl TopicName {
    /// Checks `s` and wraps it without copying.
    ///
    /// # Errors
    ///
    /// If `s` is empty, longer than 65535 bytes, contains U+0000, or
    /// contains a wildcard (`+` or `#`).
    #[inline]
    pub fn new(s: impl Into<ByteString>) -> Result<Self, TopicError> {
        let s = s.into();
        // Checking apart from wrapping keeps the 32-byte string in registers: the decoder
        // calls this for every PUBLISH, and a result passed back through memory stalls.
        check_name(&s)?;
        Ok(Self(s))
    }

    /// The zero-length Topic Name.
    ///
    /// A v5 PUBLISH that uses a Topic Alias may carry an empty Topic Name
    /// (MQTT 5.0 section 3.3.2.1 and 3.3.2.3.4); the receiver then replaces it
    /// with the name it has mapped to the alias. This is the only way to
    /// build an empty name, so an empty one is always a deliberate placeholder.
    pub const fn empty() -> Self {
        Self(ByteString::new())
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name as the shared buffer it is stored in.
    pub fn as_bytestring(&self) -> &ByteString {
        &self.0
    }

    /// Unwraps the name, keeping its buffer.
    pub fn into_inner(self) -> ByteString {
        self.0
    }

    /// Whether this is the placeholder made by [`TopicName::empty`].
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the name begins with `$`, as the server's own topics (`$SYS/...`) do.
    ///
    /// Such names are not matched by filters that begin with a wildcard.
    pub fn is_system(&self) -> bool {
        self.0.starts_with('$')
    }

    /// The levels of the name, split on `/`; empty levels are kept.
    pub fn levels(&self) -> core::str::Split<'_, char> {
        self.0.split('/')
    }
}

/// A Topic Filter: what a SUBSCRIBE or UNSUBSCRIBE names, possibly with
/// wildcards, possibly a shared subscription `$share/{ShareName}/{filter}`.
///
/// It is never empty.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct TopicFilter(ByteString);

impl TopicFilter {
    /// Checks `s` and wraps it without copying.
    ///
    /// # Errors
    ///
    /// If `s` is empty, longer than 65535 bytes, contains U+0000, has a
    /// misplaced wildcard, or starts with `$share/` without being a well
    /// formed shared subscription.
    #[inline]
    pub fn new(s: impl Into<ByteString>) -> Result<Self, TopicError> {
        let s = s.into();
        // Checking apart from wrapping, as for `TopicName::new`: the decoder calls this for
        // every filter of every SUBSCRIBE.
        check_filter(&s)?;
        Ok(Self(s))
    }

    /// [`Self::new`] for the decoder, which has already refused U+0000 in `s` as a malformed
    /// string ([MQTT-1.5.4-2]): every other rule is checked, without a second look for it.
    #[inline]
    pub(crate) fn from_decoded(s: ByteString) -> Result<Self, TopicError> {
        check_len(&s)?;
        check_filter_shape(&s)?;
        Ok(Self(s))
    }

    /// The filter as a string slice, with its `$share/{ShareName}/` prefix if it has one.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The filter as the shared buffer it is stored in.
    pub fn as_bytestring(&self) -> &ByteString {
        &self.0
    }

    /// Unwraps the filter, keeping its buffer.
    pub fn into_inner(self) -> ByteString {
        self.0
    }

    /// The length in bytes of the whole filter.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always `false`: a filter has at least one character [MQTT-4.7.3-1].
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether the filter that is matched against topics (the inner filter of
    /// a shared subscription) contains `+` or `#`.
    pub fn has_wildcards(&self) -> bool {
        self.matching_filter().bytes().any(is_wildcard)
    }

    /// The ShareName and inner filter, if this is a shared subscription
    /// `$share/{ShareName}/{filter}`; `None` for any other filter.
    pub fn shared(&self) -> Option<SharedFilter<'_>> {
        // `new` checked the shape, so finding the prefix and the first `/`
        // after it is all the parsing left to do.
        let (group, filter) = self.0.strip_prefix(SHARE_PREFIX)?.split_once('/')?;
        Some(SharedFilter { group, filter })
    }

    /// The part of the filter that is matched against Topic Names: the inner
    /// filter of a shared subscription, the whole filter otherwise.
    pub fn matching_filter(&self) -> &str {
        match self.shared() {
            Some(shared) => shared.filter,
            None => &self.0,
        }
    }

    /// Whether this filter selects `topic`; see [`matches()`].
    pub fn matches(&self, topic: &TopicName) -> bool {
        matches(self.matching_filter(), topic.as_str())
    }
}

/// The two parts of a shared subscription `$share/{ShareName}/{filter}`
/// (MQTT 5.0 section 4.8.2), borrowed from its [`TopicFilter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedFilter<'a> {
    /// The ShareName: the group whose sessions share the messages.
    pub group: &'a str,
    /// The Topic Filter matched against Topic Names.
    pub filter: &'a str,
}

/// Whether `filter` matches `topic` (both already valid). Fast, allocation-free.
///
/// `+` matches exactly one level, which may be empty; `#` matches its parent
/// level and any number of levels below it, so `sport/#` matches `sport`.
/// Levels are compared byte for byte, so matching is case sensitive. A filter
/// that begins with a wildcard does not match a topic that begins with `$`.
///
/// `filter` is matched as it is: pass [`TopicFilter::matching_filter`] for a
/// shared subscription, not the whole `$share/...` string. For a filter that
/// breaks the rules of [`TopicFilter::new`] the answer is unspecified (though
/// it never panics).
pub fn matches(filter: &str, topic: &str) -> bool {
    // [MQTT-4.7.2-1]: a wildcard in the first level never selects `$SYS/...` and
    // the like; only a filter that spells out the `$` level can.
    if topic.starts_with('$') && filter.starts_with(['+', '#']) {
        return false;
    }

    // Invariant of the loop: `filter` and `topic` each hold one level or more
    // (an empty string is one empty level); a level that ran out is `None`.
    let mut filter = filter;
    let mut topic = topic;
    loop {
        let (level, filter_rest) = match filter.split_once('/') {
            Some((level, rest)) => (level, Some(rest)),
            None => (filter, None),
        };
        let topic_rest = match level {
            // `#` is the last level of a valid filter and matches everything
            // from here on, including nothing (handled below).
            "#" => return true,
            "+" => topic.split_once('/').map(|(_, rest)| rest),
            // A literal level: compare it in place instead of searching the
            // topic for its next `/` first, so each topic byte is read once.
            _ => {
                let Some(after) = topic.strip_prefix(level) else {
                    return false;
                };
                if after.is_empty() {
                    None
                } else {
                    // The topic level must end exactly where the filter's does:
                    // `a` does not match `ab`.
                    let Some(rest) = after.strip_prefix('/') else {
                        return false;
                    };
                    Some(rest)
                }
            }
        };
        match (filter_rest, topic_rest) {
            (Some(f), Some(t)) => {
                filter = f;
                topic = t;
            }
            (None, None) => return true,
            // The topic ended first: only a final `#` still matches, as it
            // also matches its parent level (`sport/#` matches `sport`).
            (Some(f), None) => return f == "#",
            // The filter ended first, and a topic level is left over.
            (None, Some(_)) => return false,
        }
    }
}

/// Why a string is not a valid [`TopicName`] or [`TopicFilter`].
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// The topic is empty ([MQTT-4.7.3-1]).
    #[error("a topic must be at least one character long")]
    Empty,
    /// The topic is longer than 65535 bytes ([MQTT-4.7.3-3]).
    #[error("a topic must be at most 65535 bytes long")]
    TooLong,
    /// The topic contains the null character U+0000 ([MQTT-4.7.3-2]).
    #[error("a topic must not contain the null character U+0000")]
    NullCharacter,
    /// A Topic Name contains `+` or `#` ([MQTT-4.7.0-1]).
    #[error("a topic name must not contain the wildcard characters `+` or `#`")]
    WildcardInName,
    /// A filter has a `#` that is not alone in its last level ([MQTT-4.7.1-1]),
    /// or a `+` that is not alone in its level ([MQTT-4.7.1-2]).
    #[error("a wildcard in a topic filter must fill its level, and `#` must be the last level")]
    InvalidWildcard,
    /// A filter starts with `$share/` but is not `$share/{ShareName}/{filter}`
    /// with a non-empty ShareName free of `/`, `+` and `#` and a non-empty
    /// filter ([MQTT-4.8.2-1], [MQTT-4.8.2-2]).
    #[error("a shared subscription must be `$share/{{ShareName}}/{{filter}}`")]
    InvalidSharedSubscription,
}

/// Checks the rules of a Topic Name.
#[inline]
fn check_name(s: &str) -> Result<(), TopicError> {
    // One pass for the bytes that every rule below refuses; a valid name (the common case:
    // the decoder calls this for every PUBLISH) needs no other.
    if contains_any(s.as_bytes(), [0, b'+', b'#']) {
        check_common(s)?;
        // [MQTT-4.7.0-1]
        return Err(TopicError::WildcardInName);
    }
    check_len(s)
}

/// Checks the rules of a Topic Filter.
fn check_filter(s: &str) -> Result<(), TopicError> {
    check_common(s)?;
    check_filter_shape(s)
}

/// Checks the rules of a Topic Filter that [`check_common`] does not: wildcards and shares.
#[inline]
fn check_filter_shape(s: &str) -> Result<(), TopicError> {
    match s.strip_prefix(SHARE_PREFIX) {
        Some(rest) => {
            // [MQTT-4.8.2-1] [MQTT-4.8.2-2]
            let Some((group, filter)) = rest.split_once('/') else {
                return Err(TopicError::InvalidSharedSubscription);
            };
            // [MQTT-4.8.2-1] [MQTT-4.8.2-2]: a ShareName has one character or more,
            // and no `/` (split_once stopped at the first) nor `+` or `#`.
            if group.is_empty() || group.bytes().any(is_wildcard) {
                return Err(TopicError::InvalidSharedSubscription);
            }
            // [MQTT-4.8.2-2]: the `/` must be followed by a Topic Filter, which
            // is at least one character long like any other [MQTT-4.7.3-1].
            if filter.is_empty() {
                return Err(TopicError::InvalidSharedSubscription);
            }
            check_wildcards(filter)
        }
        None => check_wildcards(s),
    }
}

/// Checks the rules that Topic Names and Topic Filters share.
#[inline]
fn check_common(s: &str) -> Result<(), TopicError> {
    check_len(s)?;
    if contains_any(s.as_bytes(), [0]) {
        // [MQTT-4.7.3-2]
        return Err(TopicError::NullCharacter);
    }
    Ok(())
}

/// The length rules that Topic Names and Topic Filters share.
#[inline]
fn check_len(s: &str) -> Result<(), TopicError> {
    if s.is_empty() {
        // [MQTT-4.7.3-1]
        return Err(TopicError::Empty);
    }
    if s.len() > MAX_LEN {
        // [MQTT-4.7.3-3]
        return Err(TopicError::TooLong);
    }
    Ok(())
}

/// Checks where the wildcards of a (non-shared) filter stand.
#[inline]
fn check_wildcards(filter: &str) -> Result<(), TopicError> {
    // Only the wildcards are looked at, found a word at a time: this runs on every filter
    // of every SUBSCRIBE, and most filters have one wildcard or none.
    let bytes = filter.as_bytes();
    let (words, tail) = bytes.as_chunks::<8>();
    let mut at = 0;
    for word in words {
        let word = u64::from_le_bytes(*word);
        let mut found = eq_mask(word, b'+') | eq_mask(word, b'#');
        while found != 0 {
            check_wildcard_at(bytes, at + (found.trailing_zeros() / 8) as usize)?;
            found &= found - 1;
        }
        at += 8;
    }
    for (i, &b) in tail.iter().enumerate() {
        if is_wildcard(b) {
            check_wildcard_at(bytes, at + i)?;
        }
    }
    Ok(())
}

/// Checks the wildcard at `bytes[i]`.
#[inline]
fn check_wildcard_at(bytes: &[u8], i: usize) -> Result<(), TopicError> {
    // A level starts after a `/` or at the start.
    let level_start = i
        .checked_sub(1)
        .and_then(|p| bytes.get(p))
        .is_none_or(|&p| p == b'/');
    let next = bytes.get(i + 1).copied();
    // [MQTT-4.7.1-1] [MQTT-4.7.1-2]: no wildcard sharing a level with anything.
    let alone = level_start && matches!(next, None | Some(b'/'));
    // [MQTT-4.7.1-1]: `#` alone in its level, and that level the last.
    if !alone || (bytes.get(i) == Some(&b'#') && next.is_some()) {
        return Err(TopicError::InvalidWildcard);
    }
    Ok(())
}

fn is_wildcard(b: u8) -> bool {
    b == b'+' || b == b'#'
}

/// Whether any byte of `bytes` is one of `needles`.
///
/// This runs on every string and topic decoded, most of them a few dozen bytes long: it
/// tests sixteen or eight bytes at a time (the last block overlapping the one before it),
/// without a branch per byte.
#[inline]
pub(crate) fn contains_any<const N: usize>(bytes: &[u8], needles: [u8; N]) -> bool {
    let is_needle = |b: u8| needles.iter().fold(false, |hit, &n| hit | (b == n));
    // Sixteen bytes at a time are a few vector instructions; so are eight with a word.
    let block = |block: &[u8; 16]| block.iter().fold(false, |hit, &b| hit | is_needle(b));
    let word = |word: &[u8; 8]| {
        let word = u64::from_le_bytes(*word);
        needles.iter().fold(0, |m, &n| m | eq_mask(word, n)) != 0
    };
    if let Some(last) = bytes.last_chunk::<16>() {
        let (blocks, _) = bytes.as_chunks::<16>();
        blocks.iter().fold(false, |hit, b| hit | block(b)) | block(last)
    } else if let (Some(first), Some(last)) = (bytes.first_chunk::<8>(), bytes.last_chunk::<8>()) {
        word(first) | word(last)
    } else {
        bytes.iter().fold(false, |hit, &b| hit | is_needle(b))
    }
}

/// The high bit of every byte of `word` that equals `byte`, and no other bit.
#[inline]
const fn eq_mask(word: u64, byte: u8) -> u64 {
    const LOW7: u64 = 0x7F7F_7F7F_7F7F_7F7F;
    let x = word ^ (0x0101_0101_0101_0101 * byte as u64);
    // Adding 0x7F to the low seven bits of a byte sets its high bit unless they are all
    // zero, and never carries into the next byte; or-ing in `x` adds its own high bit. So a
    // high bit stays clear exactly where the byte of `x` is zero.
    !(((x & LOW7) + LOW7) | x) & !LOW7
}

/// Implements the string traits that [`TopicName`] and [`TopicFilter`] share.
macro_rules! str_newtype_impls {
    ($ty:ident) => {
        impl Deref for $ty {
            type Target = str;

            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self.as_str(), f)
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        // Sound because `ByteString` hashes and orders exactly as `str` does,
        // so a set of these can be looked up by `&str`.
        impl Borrow<str> for $ty {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<&str> for $ty {
            type Error = TopicError;

            fn try_from(s: &str) -> Result<Self, TopicError> {
                Self::new(s)
            }
        }

        impl TryFrom<String> for $ty {
            type Error = TopicError;

            fn try_from(s: String) -> Result<Self, TopicError> {
                Self::new(s)
            }
        }

        impl TryFrom<ByteString> for $ty {
            type Error = TopicError;

            #[inline]
            fn try_from(s: ByteString) -> Result<Self, TopicError> {
                Self::new(s)
            }
        }
    };
}

str_newtype_impls!(TopicName);
str_newtype_impls!(TopicFilter);

/// The longest topic: its length must fit the two-byte prefix of a UTF-8
/// Encoded String [MQTT-4.7.3-3].
const MAX_LEN: usize = u16::MAX as usize;

/// What every shared subscription filter begins with [MQTT-4.8.2-1].
const SHARE_PREFIX: &str = "$share/";

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn contains_any_agrees_with_a_byte_scan() {
        // Every length around the 8- and 16-byte blocks, with the needle at every place.
        for len in 0..40 {
            for at in 0..=len {
                for needle in [0u8, b'+', b'#'] {
                    let mut bytes = vec![b'a'; len];
                    if let Some(b) = bytes.get_mut(at) {
                        *b = needle;
                    }
                    // Neighbours of the needles, and bytes with the high bit set.
                    bytes
                        .iter_mut()
                        .step_by(3)
                        .filter(|b| **b == b'a')
                        .for_each(|b| *b = 0xFF);
                    let expect = |n: &[u8]| bytes.iter().any(|b| n.contains(b));
                    assert_eq!(contains_any(&bytes, [0]), expect(&[0]), "{bytes:?}");
                    assert_eq!(
                        contains_any(&bytes, [0, b'+', b'#']),
                        expect(&[0, b'+', b'#']),
                        "{bytes:?}"
                    );
                    assert!(!contains_any(&bytes, [b'*', b',', b'"']));
                }
            }
        }
    }

    #[test]
    fn wildcards_are_checked_wherever_they_stand() {
        // Long enough for the word-at-a-time part and its tail.
        for prefix in ["", "a/", "abcdefg/", "abcdefgh/ijklmno/"] {
            for (rest, ok) in [
                ("+", true),
                ("#", true),
                ("+/x", true),
                ("x/+/#", true),
                ("#/x", false),
                ("x+", false),
                ("+x", false),
                ("x#", false),
                ("x/#x", false),
                ("++", false),
            ] {
                let f = format!("{prefix}{rest}");
                assert_eq!(TopicFilter::new(f.as_str()).is_ok(), ok, "{f}");
                assert!(TopicName::new(f.as_str()).is_err(), "{f}");
            }
        }
    }

    fn name(s: &str) -> TopicName {
        TopicName::new(s).unwrap()
    }

    fn filter(s: &str) -> TopicFilter {
        TopicFilter::new(s).unwrap()
    }

    /// Checks `matches` and `TopicFilter::matches` agree with `expected`, so
    /// every example below exercises validation too.
    #[track_caller]
    fn check(f: &str, t: &str, expected: bool) {
        assert_eq!(matches(f, t), expected, "matches({f:?}, {t:?})");
        assert_eq!(filter(f).matches(&name(t)), expected, "{f:?} on {t:?}");
        let shared = format!("$share/g/{f}");
        assert_eq!(
            filter(&shared).matches(&name(t)),
            expected,
            "{shared:?} on {t:?}"
        );
    }

    #[test]
    fn multi_level_wildcard_spec_examples() {
        // Section 4.7.1.2.
        let f = "sport/tennis/player1/#";
        check(f, "sport/tennis/player1", true);
        check(f, "sport/tennis/player1/ranking", true);
        check(f, "sport/tennis/player1/score/wimbledon", true);
        check(f, "sport/tennis/player2", false);
        check(f, "sport/tennis", false);
        check("sport/#", "sport", true);
        check("sport/#", "sport/", true);
        check("sport/#", "sport/a/b", true);
        check("sport/#", "sports", false);
        check("#", "sport/tennis", true);
        check("#", "/", true);
        check("#", "a", true);
        check("/#", "/finance", true);
        check("/#", "finance", false);
    }

    #[test]
    fn single_level_wildcard_spec_examples() {
        // Section 4.7.1.3.
        check("sport/tennis/+", "sport/tennis/player1", true);
        check("sport/tennis/+", "sport/tennis/player2", true);
        check("sport/tennis/+", "sport/tennis/player1/ranking", false);
        check("sport/+", "sport", false);
        check("sport/+", "sport/", true);
        check("+/+", "/finance", true);
        check("/+", "/finance", true);
        check("+", "/finance", false);
        check("+", "finance", true);
        check("+/tennis/#", "sport/tennis/player1", true);
        check("+/tennis/#", "sport/tennis", true);
        check("sport/+/player1", "sport/tennis/player1", true);
        check("sport/+/player1", "sport//player1", true);
    }

    #[test]
    fn dollar_topics_spec_examples() {
        // Section 4.7.2.
        check("#", "$SYS/monitor/Clients", false);
        check("+/monitor/Clients", "$SYS/monitor/Clients", false);
        check("$SYS/#", "$SYS/monitor/Clients", true);
        check("$SYS/#", "$SYS/x", true);
        check("$SYS/#", "$SYS", true);
        check("$SYS/monitor/+", "$SYS/monitor/Clients", true);
        check("+", "$SYS", false);
        check("#", "$", false);
        // Only the first level is special: a `$` further down is ordinary.
        check("a/+", "a/$x", true);
        check("a/#", "a/$x/y", true);
        assert!(name("$SYS/x").is_system());
        assert!(!name("a/$SYS").is_system());
    }

    #[test]
    fn literal_levels() {
        check("a/b", "a/b", true);
        check("a/b", "a/B", false);
        check("A", "a", false);
        check("a", "ab", false);
        check("ab", "a", false);
        check("a/b", "a/bc", false);
        check("a/b", "a", false);
        check("a", "a/b", false);
        check("a", "a/", false);
        check("a/", "a", false);
        check("a//b", "a//b", true);
        check("a//b", "a/b", false);
        check("a/+/b", "a//b", true);
        check("/", "/", true);
        check("//", "/", false);
        check("é/ü", "é/ü", true);
    }

    #[test]
    fn empty_name_is_one_empty_level() {
        // Not a real topic (it must be resolved from its alias first), but
        // matching it must still be defined and agree with the level model.
        let empty = TopicName::empty();
        assert!(empty.is_empty());
        assert_eq!(empty.len(), 0);
        assert_eq!(empty.levels().collect::<Vec<_>>(), [""]);
        assert!(filter("#").matches(&empty));
        assert!(filter("+").matches(&empty));
        assert!(!filter("a").matches(&empty));
        assert!(!filter("+/+").matches(&empty));
    }

    #[test]
    fn name_errors() {
        assert_eq!(TopicName::new(""), Err(TopicError::Empty));
        assert_eq!(TopicName::new("a\0b"), Err(TopicError::NullCharacter));
        assert_eq!(TopicName::new("a/+"), Err(TopicError::WildcardInName));
        assert_eq!(TopicName::new("a/#"), Err(TopicError::WildcardInName));
        assert_eq!(TopicName::new("a+b"), Err(TopicError::WildcardInName));
        assert_eq!(TopicName::new("#"), Err(TopicError::WildcardInName));
        assert_eq!(TopicName::new("a".repeat(65_536)), Err(TopicError::TooLong));
        assert_eq!(name(&"a".repeat(65_535)).len(), 65_535);
        // The limit is in bytes, not characters: 21846 three-byte characters.
        assert_eq!(TopicName::new("€".repeat(21_846)), Err(TopicError::TooLong));
        assert!(TopicName::new("€".repeat(21_845)).is_ok());
        assert!(TopicName::new("/").is_ok());
        assert!(TopicName::new("$SYS").is_ok());
        assert!(TopicName::new(" ").is_ok());
    }

    #[test]
    fn filter_errors() {
        assert_eq!(TopicFilter::new(""), Err(TopicError::Empty));
        assert_eq!(TopicFilter::new("a/\0"), Err(TopicError::NullCharacter));
        assert_eq!(
            TopicFilter::new("+".repeat(65_536)),
            Err(TopicError::TooLong)
        );
        assert_eq!(
            TopicFilter::new("a/".repeat(32_767) + "#").map(|f| f.len()),
            Ok(65_535)
        );
        for bad in [
            "sport/tennis#",
            "sport/tennis/#/ranking",
            "#/",
            "#/a",
            "##",
            "a/#b",
            "sport+",
            "sport/+tennis",
            "+a/b",
            "a/++",
            "+#",
            "a/+#",
        ] {
            assert_eq!(
                TopicFilter::new(bad),
                Err(TopicError::InvalidWildcard),
                "{bad:?}"
            );
        }
        for good in [
            "#", "+", "/", "+/+", "/+", "/#", "+/#", "a//+/#", "$SYS/#", "a/b",
        ] {
            assert!(TopicFilter::new(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn shared_subscriptions() {
        let f = filter("$share/consumer1/sport/tennis/+");
        let shared = SharedFilter {
            group: "consumer1",
            filter: "sport/tennis/+",
        };
        assert_eq!(f.shared(), Some(shared));
        assert_eq!(f.matching_filter(), "sport/tennis/+");
        assert!(f.has_wildcards());
        assert!(f.matches(&name("sport/tennis/x")));
        assert!(!f.matches(&name("$share/consumer1/sport/tennis/x")));

        let f = filter("$share/g//finance");
        assert_eq!(
            f.shared().map(|s| (s.group, s.filter)),
            Some(("g", "/finance"))
        );
        assert!(!f.has_wildcards());

        // The inner filter keeps the `$` rule.
        let f = filter("$share/g/#");
        assert!(!f.matches(&name("$SYS/x")));
        assert!(f.matches(&name("a")));

        for bad in [
            "$share/",
            "$share/grp",
            "$share/grp/",
            "$share//a",
            "$share//",
            "$share/a+b/x",
            "$share/+/x",
            "$share/#/x",
            "$share/a#/x",
        ] {
            assert_eq!(
                TopicFilter::new(bad),
                Err(TopicError::InvalidSharedSubscription),
                "{bad:?}"
            );
        }
        // A bad inner filter is reported as such.
        assert_eq!(
            TopicFilter::new("$share/g/a#"),
            Err(TopicError::InvalidWildcard)
        );
        assert_eq!(
            TopicFilter::new("$share/g/#/a"),
            Err(TopicError::InvalidWildcard)
        );

        // Only the exact `$share/` prefix is special.
        for plain in [
            "$shared/a/b",
            "$sharex",
            "$share",
            "$SHARE/g/a",
            "a/$share/g",
        ] {
            let f = filter(plain);
            assert_eq!(f.shared(), None, "{plain:?}");
            assert_eq!(f.matching_filter(), plain);
        }
        assert!(filter("$shared/grp").matches(&name("$shared/grp")));
        assert!(filter("$share").matches(&name("$share")));
    }

    #[test]
    fn accessors_and_traits() {
        let n = TopicName::try_from("a/b").unwrap();
        assert_eq!(n.as_str(), "a/b");
        assert_eq!(&*n, "a/b");
        assert_eq!(AsRef::<str>::as_ref(&n), "a/b");
        assert_eq!(n.to_string(), "a/b");
        assert_eq!(format!("{n:>5}"), "  a/b");
        assert_eq!(n.levels().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(name("a//").levels().collect::<Vec<_>>(), ["a", "", ""]);
        assert_eq!(n.as_bytestring(), &ByteString::from_static("a/b"));
        assert!(!n.is_empty());
        assert!(!n.is_system());
        assert_eq!(TopicName::try_from(String::from("x")), Ok(name("x")));
        assert_eq!(
            TopicName::try_from(ByteString::from_static("x")),
            Ok(name("x"))
        );
        assert_eq!(TopicName::try_from("+"), Err(TopicError::WildcardInName));
        assert_eq!(n.clone().into_inner(), "a/b");

        let f = TopicFilter::try_from(String::from("a/+")).unwrap();
        assert_eq!(f.as_str(), "a/+");
        assert_eq!(f.len(), 3);
        assert!(!f.is_empty());
        assert!(f.has_wildcards());
        assert!(!filter("a/b").has_wildcards());
        assert_eq!(
            TopicFilter::try_from(ByteString::from_static("#")),
            Ok(filter("#"))
        );
        assert_eq!(
            TopicFilter::try_from("a#"),
            Err(TopicError::InvalidWildcard)
        );
        assert_eq!(f.to_string(), "a/+");

        // `Borrow<str>` must hash like `str` for these lookups to work.
        let names: HashSet<TopicName> = [name("a/b"), name("c")].into_iter().collect();
        assert!(names.contains("a/b"));
        assert!(!names.contains("a"));
        let filters: HashSet<TopicFilter> = [filter("a/#")].into_iter().collect();
        assert!(filters.contains("a/#"));
    }

    #[test]
    fn error_messages() {
        assert_eq!(
            TopicError::InvalidSharedSubscription.to_string(),
            "a shared subscription must be `$share/{ShareName}/{filter}`"
        );
    }

    /// The obvious implementation: split both into levels and compare.
    fn naive_matches(filter: &str, topic: &str) -> bool {
        fn rec(f: &[&str], t: &[&str]) -> bool {
            match (f.split_first(), t.split_first()) {
                (Some((&"#", _)), _) => true,
                (Some((&"+", f)), Some((_, t))) => rec(f, t),
                (Some((fl, f)), Some((tl, t))) => fl == tl && rec(f, t),
                (None, None) => true,
                _ => false,
            }
        }
        let f: Vec<&str> = filter.split('/').collect();
        let t: Vec<&str> = topic.split('/').collect();
        if topic.starts_with('$') && matches!(f.first(), Some(&"+" | &"#")) {
            return false;
        }
        rec(&f, &t)
    }

    /// The filter rules restated per level, to check `TopicFilter::new` against.
    fn naive_valid_filter(s: &str) -> bool {
        let levels: Vec<&str> = s.split('/').collect();
        !s.is_empty()
            && !s.contains('\0')
            && levels.iter().enumerate().all(|(i, l)| match *l {
                "+" => true,
                "#" => i == levels.len() - 1,
                _ => !l.contains(['+', '#']),
            })
    }

    // Few, short, overlapping levels, so that matches are frequent and
    // prefix mistakes (`a` against `ab`) get a chance to show.
    const TOPIC_LEVELS: &[&str] = &["a", "b", "ab", "", "$x", "$"];

    fn topic_strategy() -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(TOPIC_LEVELS), 1..6).prop_map(|l| l.join("/"))
    }

    fn filter_strategy() -> impl Strategy<Value = String> {
        let level = prop::sample::select(&["a", "b", "ab", "", "$x", "+", "+", "+"][..]);
        (prop::collection::vec(level, 1..6), any::<bool>()).prop_map(|(mut l, hash)| {
            if hash {
                l.push("#");
            }
            l.join("/")
        })
    }

    proptest! {
        #[test]
        fn matches_agrees_with_naive(f in filter_strategy(), t in topic_strategy()) {
            let expected = naive_matches(&f, &t);
            prop_assert_eq!(matches(&f, &t), expected);
            // A lone empty level makes an empty string, which the types refuse.
            if !f.is_empty() && !t.is_empty() {
                prop_assert_eq!(filter(&f).matches(&name(&t)), expected);
                let shared = filter(&format!("$share/g/{f}"));
                prop_assert_eq!(shared.matches(&name(&t)), expected);
            }
        }

        #[test]
        fn lone_hash_agrees_with_naive(t in topic_strategy()) {
            prop_assert_eq!(matches("#", &t), naive_matches("#", &t));
        }

        #[test]
        fn filter_validation_agrees_with_naive(s in "[ab/+#$\0]{0,8}") {
            prop_assert_eq!(TopicFilter::new(s.as_str()).is_ok(), naive_valid_filter(&s));
        }

        #[test]
        fn decoded_filter_agrees_with_new(s in "[ab/+#$\0]{0,8}|\\$share/[ab+#]{0,2}/[ab/+#]{0,4}") {
            // The decoder refuses U+0000 before it builds a filter; any other string must
            // get the answer `new` gives.
            if !s.contains('\0') {
                prop_assert_eq!(
                    TopicFilter::from_decoded(s.as_str().into()),
                    TopicFilter::new(s.as_str())
                );
            }
        }

        #[test]
        fn name_validation_agrees_with_naive(s in "[ab/+#$\0]{0,8}") {
            let valid = !s.is_empty() && !s.contains(['\0', '+', '#']);
            prop_assert_eq!(TopicName::new(s.as_str()).is_ok(), valid);
        }
    }
}
