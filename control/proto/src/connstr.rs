//! Connection strings (wire.md §3, docs/limits.md): `key=value` pairs separated by `;`, values
//! optionally wrapped in `{…}` inside which `;` and `=` are literal and braces nest; keys are
//! case-insensitive. Also the typed view of the Subscribe keys, [`SubscriptionSettings`].
//!
//! Peers send these bytes, so parsing is linear in the input: one pass over the text, and a
//! hash index by lower-cased key so that each key costs O(key length) to insert or look up.
//! A parse also refuses more than [`ConnStrLimits::max_keys`] pairs, braces nested deeper than
//! [`ConnStrLimits::max_depth`] and text longer than [`ConnStrLimits::max_len`]
//! ([`ProtoError::ConnectionStringLimit`]).

use crate::error::{ConnStrLimit, ProtoError};
use core::fmt;
use std::collections::HashMap;

/// Most `key=value` pairs one connection string may hold ([`ConnStrLimits::max_keys`] default).
/// Stock subscribers send fewer than 30; a Subscribe is one frame of at most 1 MiB.
pub const MAX_CONNECTION_STRING_KEYS: usize = 1024;
/// Deepest `{…}` nesting accepted ([`ConnStrLimits::max_depth`] default). Stock peers nest two
/// levels (`dataChannel={localport=…}`, `assemblyInfo={…}`), a filter expression may add braces
/// of its own (`{GUID}` literals inside `filterExpression={…}`).
pub const MAX_CONNECTION_STRING_DEPTH: usize = 32;
/// Longest connection string accepted, in bytes ([`ConnStrLimits::max_len`] default): the
/// publisher's command frame limit.
pub const MAX_CONNECTION_STRING_LENGTH: usize = 1 << 20;

/// What one connection-string parse may cost (docs/limits.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnStrLimits {
    /// Most non-empty `key=value` segments (a repeated key counts each time).
    pub max_keys: usize,
    /// Deepest brace nesting.
    pub max_depth: usize,
    /// Longest text, in bytes.
    pub max_len: usize,
}

impl ConnStrLimits {
    /// The defaults: [`MAX_CONNECTION_STRING_KEYS`], [`MAX_CONNECTION_STRING_DEPTH`],
    /// [`MAX_CONNECTION_STRING_LENGTH`].
    pub const DEFAULT: Self = Self {
        max_keys: MAX_CONNECTION_STRING_KEYS,
        max_depth: MAX_CONNECTION_STRING_DEPTH,
        max_len: MAX_CONNECTION_STRING_LENGTH,
    };
}

impl Default for ConnStrLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// An ordered `key → value` map with case-insensitive (ASCII) keys. Insertion order is kept so
/// that [`fmt::Display`] reproduces what was parsed; a repeated key replaces the earlier value
/// in place (last wins, like cppapi's and gsfapi's dictionaries).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionString {
    pairs: Vec<(String, String)>,
    /// ASCII-lower-cased key → position in `pairs`; a function of `pairs` (so the derived
    /// equality stays equality of `pairs`).
    index: HashMap<String, usize>,
}

impl ConnectionString {
    /// An empty connection string.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses `text` under [`ConnStrLimits::DEFAULT`].
    ///
    /// Rules (wire.md §3, cppapi `ParseKeyValuePairs`): segments split on `;` outside braces;
    /// each splits at its first `=` outside braces; key and value are trimmed; a value whose
    /// trimmed form is wrapped in one `{…}` pair loses that pair (the inside is kept verbatim).
    /// Empty segments are skipped. Errors, with the byte offset: unbalanced braces, a segment
    /// without `=`, an empty key, and the limits. cppapi silently drops a segment without
    /// exactly one `=`; this parser accepts extra `=` in the value and reports a missing one
    /// instead, since no stock subscriber produces either.
    pub fn parse(text: &str) -> Result<Self, ProtoError> {
        Self::parse_with(text, &ConnStrLimits::DEFAULT)
    }

    /// Parses `text` under `limits`, in time linear in `text.len()`.
    pub fn parse_with(text: &str, limits: &ConnStrLimits) -> Result<Self, ProtoError> {
        if text.len() > limits.max_len {
            return Err(ProtoError::ConnectionStringLimit {
                offset: limits.max_len,
                limit: ConnStrLimit::Length,
                max: limits.max_len,
            });
        }
        let mut out = Self::new();
        let mut depth = 0usize;
        let mut seg_start = 0usize;
        let mut eq: Option<usize> = None;
        let mut segments = 0usize;
        // Only ASCII delimiters matter, and UTF-8 continuation bytes are never ASCII.
        for (i, b) in text.bytes().enumerate() {
            match b {
                b'{' => {
                    depth += 1;
                    if depth > limits.max_depth {
                        return Err(ProtoError::ConnectionStringLimit {
                            offset: i,
                            limit: ConnStrLimit::Nesting,
                            max: limits.max_depth,
                        });
                    }
                }
                b'}' => {
                    depth = depth
                        .checked_sub(1)
                        .ok_or(ProtoError::BadConnectionString {
                            offset: i,
                            reason: "'}' without a matching '{'",
                        })?;
                }
                b'=' if depth == 0 && eq.is_none() => eq = Some(i),
                b';' if depth == 0 => {
                    out.add_segment(text, (seg_start, i), eq, limits, &mut segments)?;
                    seg_start = i + 1;
                    eq = None;
                }
                _ => {}
            }
        }
        if depth != 0 {
            return Err(ProtoError::BadConnectionString {
                offset: text.len(),
                reason: "'{' without a matching '}'",
            });
        }
        out.add_segment(text, (seg_start, text.len()), eq, limits, &mut segments)?;
        Ok(out)
    }

    fn add_segment(
        &mut self,
        text: &str,
        (start, end): (usize, usize),
        eq: Option<usize>,
        limits: &ConnStrLimits,
        segments: &mut usize,
    ) -> Result<(), ProtoError> {
        let seg = text.get(start..end).unwrap_or_default();
        if seg.trim().is_empty() {
            return Ok(());
        }
        let Some(eq) = eq else {
            return Err(ProtoError::BadConnectionString {
                offset: start,
                reason: "expected key=value",
            });
        };
        let key = text.get(start..eq).unwrap_or_default().trim();
        if key.is_empty() {
            return Err(ProtoError::BadConnectionString {
                offset: start,
                reason: "empty key",
            });
        }
        // `segments` counts every pair parsed, repeats included: that is the work done.
        *segments += 1;
        if *segments > limits.max_keys {
            return Err(ProtoError::ConnectionStringLimit {
                offset: start,
                limit: ConnStrLimit::Keys,
                max: limits.max_keys,
            });
        }
        let value = text.get(eq + 1..end).unwrap_or_default().trim();
        self.insert(key, unwrap_braces(value));
        Ok(())
    }

    /// The value of `key` (case-insensitive).
    pub fn get(&self, key: &str) -> Option<&str> {
        let at = self.position(key)?;
        self.pairs.get(at).map(|(_, v)| v.as_str())
    }

    fn position(&self, key: &str) -> Option<usize> {
        if key.bytes().any(|b| b.is_ascii_uppercase()) {
            self.index.get(&key.to_ascii_lowercase()).copied()
        } else {
            self.index.get(key).copied()
        }
    }

    /// True when `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.position(key).is_some()
    }

    /// The pairs in order, keys as first spelled.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// True when there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Sets `key` to `value`, replacing (in place, keeping the first spelling of the key) any
    /// value under the same key in any case; O(key length). Values with unbalanced braces
    /// cannot be written back by [`fmt::Display`] in a form any implementation parses
    /// (wire.md §3 has no escape).
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let key = key.into();
        let value = value.into();
        match self.position(&key) {
            Some(at) => {
                if let Some(slot) = self.pairs.get_mut(at) {
                    slot.1 = value;
                }
            }
            None => {
                self.index
                    .insert(key.to_ascii_lowercase(), self.pairs.len());
                self.pairs.push((key, value));
            }
        }
    }

    /// Removes `key` and returns its value (O(pairs): later positions shift).
    pub fn remove(&mut self, key: &str) -> Option<String> {
        let at = self.position(key)?;
        let lower = key.to_ascii_lowercase();
        self.index.remove(&lower);
        for pos in self.index.values_mut() {
            if *pos > at {
                *pos -= 1;
            }
        }
        (at < self.pairs.len()).then(|| self.pairs.remove(at).1)
    }
}
/// Strips one enclosing `{…}` pair when it encloses the whole value.
fn unwrap_braces(value: &str) -> &str {
    let Some(inner) = value.strip_prefix('{').and_then(|v| v.strip_suffix('}')) else {
        return value;
    };
    // "{a}{b}" starts and ends with braces but the first '{' closes early: keep it whole.
    let mut depth = 0usize;
    for ch in inner.chars() {
        match ch {
            '{' => depth += 1,
            '}' => match depth.checked_sub(1) {
                Some(d) => depth = d,
                None => return value,
            },
            _ => {}
        }
    }
    inner
}

/// True when a value must be written inside braces to survive a parse: it holds a delimiter,
/// or surrounding whitespace the parser would trim, or it is already brace-wrapped.
fn needs_braces(v: &str) -> bool {
    v.contains([';', '=', '{', '}']) || v.trim() != v
}

/// Writes `v` for a connection string, braced when needed.
pub fn quote_value(v: &str) -> String {
    if needs_braces(v) {
        format!("{{{v}}}")
    } else {
        v.to_owned()
    }
}

impl fmt::Display for ConnectionString {
    /// `key=value` joined by `;`, with braces around values containing `;`, `=`, `{`, `}` or
    /// surrounding whitespace.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (k, v)) in self.pairs.iter().enumerate() {
            if i > 0 {
                f.write_str(";")?;
            }
            write!(f, "{k}={}", quote_value(v))?;
        }
        Ok(())
    }
}

/// Parses a connection-string boolean (wire.md §3): `true`/`false` in any case, or an integer
/// where 0 is false (pyapi sends `True/False`, cppapi `1/0`). Surrounding whitespace is ignored.
pub fn parse_bool(v: &str) -> Option<bool> {
    let v = v.trim();
    if v.eq_ignore_ascii_case("true") {
        Some(true)
    } else if v.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        v.parse::<i64>().ok().map(|n| n != 0)
    }
}

/// The `dataChannel={localport=N}` request for UDP delivery (wire.md §3, §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataChannel {
    /// The subscriber's UDP port, to which the publisher sends.
    pub local_port: u16,
}

/// Connection-string keys of Subscribe (wire.md §3 key table), as spelled by pyapi.
pub mod keys {
    /// Signal selection.
    pub const FILTER_EXPRESSION: &str = "filterExpression";
    /// Compact timestamps present.
    pub const INCLUDE_TIME: &str = "includeTime";
    /// 2-byte millisecond base-time offsets.
    pub const USE_MILLISECOND_RESOLUTION: &str = "useMillisecondResolution";
    /// Publisher drops NaN values.
    pub const REQUEST_NAN_VALUE_FILTER: &str = "requestNaNValueFilter";
    /// Temporal replay pace, ms.
    pub const PROCESSING_INTERVAL: &str = "processingInterval";
    /// Latest-value snapshots.
    pub const THROTTLED: &str = "throttled";
    /// Throttle period, s.
    pub const PUBLISH_INTERVAL: &str = "publishInterval";
    /// Time-reasonability lag, s.
    pub const LAG_TIME: &str = "lagTime";
    /// Time-reasonability lead, s.
    pub const LEAD_TIME: &str = "leadTime";
    /// Throttled-mode time check.
    pub const ENABLE_TIME_REASONABILITY_CHECK: &str = "enableTimeReasonabilityCheck";
    /// "now" from the local clock.
    pub const USE_LOCAL_CLOCK_AS_REAL_TIME: &str = "useLocalClockAsRealTime";
    /// UDP delivery request.
    pub const DATA_CHANNEL: &str = "dataChannel";
    /// Temporal subscription start.
    pub const START_TIME_CONSTRAINT: &str = "startTimeConstraint";
    /// Temporal subscription stop.
    pub const STOP_TIME_CONSTRAINT: &str = "stopTimeConstraint";
    /// Opaque temporal parameters.
    pub const TIME_CONSTRAINT_PARAMETERS: &str = "timeConstraintParameters";
    /// Informational library identity.
    pub const ASSEMBLY_INFO: &str = "assemblyInfo";
    /// Port inside `dataChannel`.
    pub const LOCAL_PORT: &str = "localport";
    /// cppapi's alternative spelling inside `dataChannel`.
    pub const PORT: &str = "port";
}

/// `assemblyInfo` source this library announces.
pub const ASSEMBLY_SOURCE: &str = "STTP Rust Library";
/// `assemblyInfo` updatedOn: the date of this library's wire revision (fixed, no clock read).
pub const ASSEMBLY_UPDATED_ON: &str = "2026-11-21";

/// The typed Subscribe settings (wire.md §3). Unknown keys are kept in `extra`, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionSettings {
    /// Filter expression selecting the signals (wire.md §7).
    pub filter_expression: String,
    /// Compact measurements carry a timestamp (default true).
    pub include_time: bool,
    /// 2-byte ms base-time offsets (default false).
    pub use_millisecond_resolution: bool,
    /// Ask the publisher to drop NaN values (default false).
    pub request_nan_value_filter: bool,
    /// Temporal replay interval in ms; −1 = publisher default.
    pub processing_interval: i32,
    /// Latest-value snapshots every `publish_interval` (default false).
    pub throttled: bool,
    /// Throttle period in seconds (default 1.0).
    pub publish_interval: f64,
    /// Lag time in seconds (default 10).
    pub lag_time: f64,
    /// Lead time in seconds (default 5).
    pub lead_time: f64,
    /// Time-reasonability check in throttled mode. `Default` is false, like the pyapi string,
    /// but a connection string *without* the key parses as true, cppapi's default (wire.md §3).
    pub enable_time_reasonability_check: bool,
    /// "now" from the local clock rather than the latest timestamp (default false).
    pub use_local_clock_as_real_time: bool,
    /// UDP delivery request.
    pub data_channel: Option<DataChannel>,
    /// Presence makes this a temporal subscription; an empty value counts as absent.
    pub start_time_constraint: Option<String>,
    /// Temporal stop; an empty value counts as absent.
    pub stop_time_constraint: Option<String>,
    /// Opaque temporal parameters; an empty value counts as absent.
    pub time_constraint_parameters: Option<String>,
    /// Informational `{source=…;version=…;updatedOn=…}`.
    pub assembly_info: Option<ConnectionString>,
    /// Keys this library does not interpret (kept, re-emitted last).
    pub extra: ConnectionString,
}

impl Default for SubscriptionSettings {
    fn default() -> Self {
        let mut info = ConnectionString::new();
        info.insert("source", ASSEMBLY_SOURCE);
        info.insert("version", env!("CARGO_PKG_VERSION"));
        info.insert("updatedOn", ASSEMBLY_UPDATED_ON);
        Self {
            filter_expression: String::new(),
            include_time: true,
            use_millisecond_resolution: false,
            request_nan_value_filter: false,
            processing_interval: -1,
            throttled: false,
            publish_interval: 1.0,
            lag_time: 10.0,
            lead_time: 5.0,
            enable_time_reasonability_check: false,
            use_local_clock_as_real_time: false,
            data_channel: None,
            start_time_constraint: None,
            stop_time_constraint: None,
            time_constraint_parameters: None,
            assembly_info: Some(info),
            extra: ConnectionString::new(),
        }
    }
}

fn bad(key: &str, value: &str, expected: &'static str) -> ProtoError {
    ProtoError::BadValue {
        key: key.to_owned(),
        value: value.to_owned(),
        expected,
    }
}

fn bool_value(key: &str, v: &str) -> Result<bool, ProtoError> {
    parse_bool(v).ok_or_else(|| bad(key, v, "true, false or an integer"))
}

fn seconds_value(key: &str, v: &str) -> Result<f64, ProtoError> {
    v.trim()
        .parse::<f64>()
        .ok()
        .filter(|x| x.is_finite())
        .ok_or_else(|| bad(key, v, "a finite number of seconds"))
}

fn non_empty(v: &str) -> Option<String> {
    (!v.is_empty()).then(|| v.to_owned())
}

/// Formats seconds like pyapi (`1.000000`) when that is exact, else in the shortest form that
/// parses back to the same `f64`.
fn format_seconds(v: f64) -> String {
    let six = format!("{v:.6}");
    if six.parse::<f64>() == Ok(v) {
        six
    } else {
        format!("{v:?}")
    }
}

/// pyapi's boolean spelling.
fn py_bool(b: bool) -> &'static str {
    if b {
        "True"
    } else {
        "False"
    }
}

impl DataChannel {
    /// Parses the inside of `dataChannel={…}`: `localport=N`, or cppapi's `port=N`.
    pub fn parse(value: &str) -> Result<Self, ProtoError> {
        let expected = "{localport=N} with N a UDP port";
        let cs =
            ConnectionString::parse(value).map_err(|_| bad(keys::DATA_CHANNEL, value, expected))?;
        let port = cs
            .get(keys::LOCAL_PORT)
            .or_else(|| cs.get(keys::PORT))
            .and_then(|p| p.trim().parse::<u16>().ok())
            .ok_or_else(|| bad(keys::DATA_CHANNEL, value, expected))?;
        Ok(Self { local_port: port })
    }
}

impl SubscriptionSettings {
    /// Reads the wire.md §3 keys from `cs`; everything else goes to `extra`.
    ///
    /// Bad booleans and numbers give [`ProtoError::BadValue`] naming the key as the peer spelled
    /// it. An empty value means "not given" (the default applies), as cppapi and gsfapi treat
    /// it. An `assemblyInfo` that is not itself a connection string is informational only, so
    /// it is kept verbatim in `extra` instead of failing the subscription.
    pub fn from_connection_string(cs: &ConnectionString) -> Result<Self, ProtoError> {
        let mut s = Self {
            enable_time_reasonability_check: true,
            assembly_info: None,
            ..Self::default()
        };
        for (key, v) in cs.iter() {
            let is = |name: &str| key.eq_ignore_ascii_case(name);
            let blank = v.trim().is_empty();
            if is(keys::FILTER_EXPRESSION) {
                s.filter_expression = v.to_owned();
            } else if is(keys::START_TIME_CONSTRAINT) {
                s.start_time_constraint = non_empty(v);
            } else if is(keys::STOP_TIME_CONSTRAINT) {
                s.stop_time_constraint = non_empty(v);
            } else if is(keys::TIME_CONSTRAINT_PARAMETERS) {
                s.time_constraint_parameters = non_empty(v);
            } else if is(keys::ASSEMBLY_INFO) {
                match ConnectionString::parse(v) {
                    Ok(info) => s.assembly_info = Some(info),
                    Err(_) => s.extra.insert(key, v),
                }
            } else if blank && is_typed_key(key) {
                // Empty value: keep the default.
            } else if is(keys::INCLUDE_TIME) {
                s.include_time = bool_value(key, v)?;
            } else if is(keys::USE_MILLISECOND_RESOLUTION) {
                s.use_millisecond_resolution = bool_value(key, v)?;
            } else if is(keys::REQUEST_NAN_VALUE_FILTER) {
                s.request_nan_value_filter = bool_value(key, v)?;
            } else if is(keys::THROTTLED) {
                s.throttled = bool_value(key, v)?;
            } else if is(keys::ENABLE_TIME_REASONABILITY_CHECK) {
                s.enable_time_reasonability_check = bool_value(key, v)?;
            } else if is(keys::USE_LOCAL_CLOCK_AS_REAL_TIME) {
                s.use_local_clock_as_real_time = bool_value(key, v)?;
            } else if is(keys::PROCESSING_INTERVAL) {
                s.processing_interval = v
                    .trim()
                    .parse::<i32>()
                    .map_err(|_| bad(key, v, "an integer number of milliseconds"))?;
            } else if is(keys::PUBLISH_INTERVAL) {
                s.publish_interval = seconds_value(key, v)?;
            } else if is(keys::LAG_TIME) {
                s.lag_time = seconds_value(key, v)?;
            } else if is(keys::LEAD_TIME) {
                s.lead_time = seconds_value(key, v)?;
            } else if is(keys::DATA_CHANNEL) {
                s.data_channel = Some(
                    DataChannel::parse(v)
                        .map_err(|_| bad(key, v, "{localport=N} with N a UDP port"))?,
                );
            } else {
                s.extra.insert(key, v);
            }
        }
        Ok(s)
    }

    /// Parses a Subscribe connection string straight into settings.
    pub fn parse(text: &str) -> Result<Self, ProtoError> {
        Self::from_connection_string(&ConnectionString::parse(text)?)
    }

    /// The connection string a subscriber sends, in pyapi's key order and spelling (wire.md §3):
    /// the ten fixed keys, `assemblyInfo`, the braced `filterExpression`, then the optional
    /// tails (`dataChannel`, time constraints) and the `extra` keys.
    pub fn to_connection_string(&self) -> String {
        let mut out = format!(
            "throttled={};publishInterval={};includeTime={};enableTimeReasonabilityCheck={};\
             lagTime={};leadTime={};useLocalClockAsRealTime={};processingInterval={};\
             useMillisecondResolution={};requestNaNValueFilter={}",
            py_bool(self.throttled),
            format_seconds(self.publish_interval),
            py_bool(self.include_time),
            py_bool(self.enable_time_reasonability_check),
            format_seconds(self.lag_time),
            format_seconds(self.lead_time),
            py_bool(self.use_local_clock_as_real_time),
            self.processing_interval,
            py_bool(self.use_millisecond_resolution),
            py_bool(self.request_nan_value_filter),
        );
        if let Some(info) = &self.assembly_info {
            out.push_str(&format!(";assemblyInfo={{{info}}}"));
        }
        out.push_str(&format!(";filterExpression={{{}}}", self.filter_expression));
        if let Some(dc) = self.data_channel {
            out.push_str(&format!(";dataChannel={{localport={}}}", dc.local_port));
        }
        let optional = [
            (keys::START_TIME_CONSTRAINT, &self.start_time_constraint),
            (keys::STOP_TIME_CONSTRAINT, &self.stop_time_constraint),
            (
                keys::TIME_CONSTRAINT_PARAMETERS,
                &self.time_constraint_parameters,
            ),
        ];
        for (key, value) in optional {
            if let Some(v) = value {
                out.push_str(&format!(";{key}={}", quote_value(v)));
            }
        }
        if !self.extra.is_empty() {
            out.push_str(&format!(";{}", self.extra));
        }
        out
    }
}

/// Keys whose empty value means "use the default".
fn is_typed_key(key: &str) -> bool {
    [
        keys::INCLUDE_TIME,
        keys::USE_MILLISECOND_RESOLUTION,
        keys::REQUEST_NAN_VALUE_FILTER,
        keys::THROTTLED,
        keys::ENABLE_TIME_REASONABILITY_CHECK,
        keys::USE_LOCAL_CLOCK_AS_REAL_TIME,
        keys::PROCESSING_INTERVAL,
        keys::PUBLISH_INTERVAL,
        keys::LAG_TIME,
        keys::LEAD_TIME,
        keys::DATA_CHANNEL,
    ]
    .iter()
    .any(|k| k.eq_ignore_ascii_case(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_braces_and_case() {
        let cs = ConnectionString::parse(" A = 1 ; b={x=1;y={z;w}} ;;c= {  sp } ").unwrap();
        assert_eq!(cs.get("a"), Some("1"));
        assert_eq!(cs.get("B"), Some("x=1;y={z;w}"));
        assert_eq!(cs.get("c"), Some("  sp "));
        assert_eq!(cs.to_string(), "A=1;b={x=1;y={z;w}};c={  sp }");
        assert_eq!(ConnectionString::parse(&cs.to_string()).unwrap(), cs);
    }

    #[test]
    fn syntax_errors_have_offsets() {
        let e = ConnectionString::parse("a=1;b={x").unwrap_err();
        assert!(matches!(
            e,
            ProtoError::BadConnectionString { offset: 8, .. }
        ));
        let e = ConnectionString::parse("a=1}").unwrap_err();
        assert!(matches!(
            e,
            ProtoError::BadConnectionString { offset: 3, .. }
        ));
        let e = ConnectionString::parse("a=1;junk").unwrap_err();
        assert!(matches!(
            e,
            ProtoError::BadConnectionString { offset: 4, .. }
        ));
        let e = ConnectionString::parse("=1").unwrap_err();
        assert!(matches!(
            e,
            ProtoError::BadConnectionString { offset: 0, .. }
        ));
    }

    #[test]
    fn last_wins_and_value_with_equals() {
        let cs = ConnectionString::parse("k=1;K=2;f=a=b").unwrap();
        assert_eq!(cs.len(), 2);
        assert_eq!(cs.get("k"), Some("2"));
        assert_eq!(cs.get("f"), Some("a=b"));
    }

    #[test]
    fn limits_fire_with_their_reason_and_offset() {
        let lim = ConnStrLimits {
            max_keys: 3,
            max_depth: 2,
            max_len: 40,
        };
        assert!(ConnectionString::parse_with("a=1;b=2;c=3", &lim).is_ok());
        let e = ConnectionString::parse_with("a=1;b=2;c=3;d=4", &lim).unwrap_err();
        assert_eq!(
            e,
            ProtoError::ConnectionStringLimit {
                offset: 12,
                limit: ConnStrLimit::Keys,
                max: 3
            }
        );
        // Repeats count: the work is per pair.
        let e = ConnectionString::parse_with("a=1;a=2;a=3;a=4", &lim).unwrap_err();
        assert!(matches!(
            e,
            ProtoError::ConnectionStringLimit {
                limit: ConnStrLimit::Keys,
                ..
            }
        ));
        assert!(ConnectionString::parse_with("a={{x}}", &lim).is_ok());
        let e = ConnectionString::parse_with("a={{{x}}}", &lim).unwrap_err();
        assert_eq!(
            e,
            ProtoError::ConnectionStringLimit {
                offset: 4,
                limit: ConnStrLimit::Nesting,
                max: 2
            }
        );
        let e = ConnectionString::parse_with(&"a".repeat(41), &lim).unwrap_err();
        assert!(matches!(
            e,
            ProtoError::ConnectionStringLimit {
                limit: ConnStrLimit::Length,
                ..
            }
        ));
    }

    #[test]
    fn index_follows_insert_and_remove() {
        let mut cs = ConnectionString::parse("A=1;b=2;C=3").unwrap();
        assert_eq!(cs.remove("a"), Some("1".to_owned()));
        assert_eq!(cs.get("B"), Some("2"));
        assert_eq!(cs.get("c"), Some("3"));
        assert_eq!(cs.remove("a"), None);
        cs.insert("a", "4");
        cs.insert("B", "5");
        assert_eq!(cs.to_string(), "b=5;C=3;a=4");
        assert_eq!(cs, ConnectionString::parse("b=5;C=3;a=4").unwrap());
    }

    #[test]
    fn bools() {
        for (s, b) in [
            ("True", true),
            ("FALSE", false),
            ("1", true),
            ("0", false),
            ("-3", true),
        ] {
            assert_eq!(parse_bool(s), Some(b), "{s}");
        }
        assert_eq!(parse_bool("yes"), None);
        assert_eq!(parse_bool(""), None);
    }

    #[test]
    fn seconds_formatting() {
        assert_eq!(format_seconds(1.0), "1.000000");
        assert_eq!(format_seconds(0.1), "0.100000");
        assert_eq!(format_seconds(1e-9), "1e-9");
        assert_eq!(format_seconds(1e-9).parse::<f64>().unwrap(), 1e-9);
    }
}
