//! The policy file: TOML text → [`AccessPolicy`], with errors that name the line, column and
//! what is wrong. Pure (no file access), so it can be fuzzed and unit-tested.
//!
//! ```toml
//! [groups.north]
//! points = ["PMU1:FREQ", "6f1ad81d-9bd4-4d3c-884e-cf2174462a71"]   # explicit members
//! filter = "Device LIKE 'NORTH%'"                                    # implicit members
//!
//! [[identity]]
//! name = "control-centre-b"
//! fingerprints = ["3b1f…64 hex digits…"]   # client certificate SHA-256 (TLS)
//! common_names = ["cc-b.example.net"]
//! addresses = ["10.20.0.0/16"]             # and it must connect from here
//! allow_groups = ["north"]
//! deny_points = ["PMU1:STATUS"]
//! allow_filters = ["SignalType = 'FREQ'"]
//! deny_filters = []
//! ```
//!
//! Keys not listed here are errors (a misspelt `deny_point` must not silently allow). An identity
//! must give at least one of `fingerprints`, `common_names`, `addresses` (write
//! `addresses = ["0.0.0.0/0", "::/0"]` to mean anyone). Strings in point lists are GUIDs when they
//! parse as one, point tags otherwise. Filters are checked for syntax here; whether the columns
//! they name exist is only known against metadata, at evaluation.

use super::cidr::AddressRange;
use super::policy::{normalise_fingerprint, AccessPolicy, Group, Identity, PointRef, RuleSet};
use crate::filter;
use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

/// A policy file error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct PolicyError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    #[serde(default)]
    groups: BTreeMap<String, Spanned<RawGroup>>,
    #[serde(default)]
    identity: Vec<Spanned<RawIdentity>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    #[serde(default)]
    points: Vec<Spanned<String>>,
    filter: Option<Spanned<String>>,
}

type Strings = Vec<Spanned<String>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIdentity {
    name: Spanned<String>,
    #[serde(default)]
    fingerprints: Strings,
    #[serde(default)]
    common_names: Strings,
    #[serde(default)]
    addresses: Strings,
    #[serde(default)]
    allow_points: Strings,
    #[serde(default)]
    deny_points: Strings,
    #[serde(default)]
    allow_groups: Strings,
    #[serde(default)]
    deny_groups: Strings,
    #[serde(default)]
    allow_filters: Strings,
    #[serde(default)]
    deny_filters: Strings,
}

impl AccessPolicy {
    /// Parses and checks a policy file's text.
    pub fn from_toml(text: &str) -> Result<Self, PolicyError> {
        let raw: RawPolicy = toml::from_str(text).map_err(|e| {
            let at = e.span().map_or(0, |s| s.start);
            error(text, at, e.message().to_owned())
        })?;
        let mut groups = BTreeMap::new();
        for (name, g) in raw.groups {
            let at = g.span().start;
            let g = g.into_inner();
            if name.trim().is_empty() {
                return Err(error(text, at, "a group name must not be empty".into()));
            }
            if g.points.is_empty() && g.filter.is_none() {
                return Err(error(
                    text,
                    at,
                    format!("group \"{name}\" has neither points nor a filter"),
                ));
            }
            groups.insert(
                name,
                Group {
                    points: points(text, &g.points)?,
                    filter: g.filter.map(|f| check_filter(text, &f)).transpose()?,
                },
            );
        }
        let mut identities: Vec<Identity> = Vec::new();
        for spanned in raw.identity {
            let at = spanned.span().start;
            let raw = spanned.into_inner();
            let name = raw.name.get_ref().trim().to_owned();
            if name.is_empty() {
                return Err(error(
                    text,
                    raw.name.span().start,
                    "identity name must not be empty".into(),
                ));
            }
            if identities.iter().any(|i| i.name == name) {
                return Err(error(
                    text,
                    raw.name.span().start,
                    format!("identity \"{name}\" is defined twice"),
                ));
            }
            if raw.fingerprints.is_empty()
                && raw.common_names.is_empty()
                && raw.addresses.is_empty()
            {
                return Err(error(
                    text,
                    at,
                    format!("identity \"{name}\" matches nobody: give fingerprints, common_names or addresses (addresses = [\"0.0.0.0/0\", \"::/0\"] means anyone)"),
                ));
            }
            let mut fingerprints = Vec::new();
            for f in &raw.fingerprints {
                let fp = normalise_fingerprint(f.get_ref());
                if fp.len() != 64 || !fp.chars().all(|c| c.is_ascii_hexdigit()) {
                    return Err(error(
                        text,
                        f.span().start,
                        format!("fingerprint \"{}\" is not a SHA-256 fingerprint (64 hex digits, ':' separators allowed)", f.get_ref()),
                    ));
                }
                fingerprints.push(fp);
            }
            let mut addresses = Vec::new();
            for a in &raw.addresses {
                addresses.push(
                    AddressRange::parse(a.get_ref())
                        .map_err(|m| error(text, a.span().start, format!("address range: {m}")))?,
                );
            }
            let group_names = |list: &Strings| -> Result<Vec<String>, PolicyError> {
                list.iter()
                    .map(|g| {
                        if groups.contains_key(g.get_ref()) {
                            Ok(g.get_ref().clone())
                        } else {
                            Err(error(
                                text,
                                g.span().start,
                                format!("group \"{}\" is not defined in [groups]", g.get_ref()),
                            ))
                        }
                    })
                    .collect()
            };
            let filters = |list: &Strings| -> Result<Vec<String>, PolicyError> {
                list.iter().map(|f| check_filter(text, f)).collect()
            };
            identities.push(Identity {
                name,
                fingerprints,
                common_names: raw
                    .common_names
                    .iter()
                    .map(|c| c.get_ref().clone())
                    .collect(),
                addresses,
                allow: RuleSet {
                    points: points(text, &raw.allow_points)?,
                    groups: group_names(&raw.allow_groups)?,
                    filters: filters(&raw.allow_filters)?,
                },
                deny: RuleSet {
                    points: points(text, &raw.deny_points)?,
                    groups: group_names(&raw.deny_groups)?,
                    filters: filters(&raw.deny_filters)?,
                },
            });
        }
        Ok(AccessPolicy { groups, identities })
    }
}

fn points(text: &str, list: &Strings) -> Result<Vec<PointRef>, PolicyError> {
    list.iter()
        .map(|p| {
            if p.get_ref().trim().is_empty() {
                Err(error(
                    text,
                    p.span().start,
                    "a point must be a GUID or a point tag, not empty".into(),
                ))
            } else {
                Ok(PointRef::parse(p.get_ref()))
            }
        })
        .collect()
}

fn check_filter(text: &str, f: &Spanned<String>) -> Result<String, PolicyError> {
    let expr = filter::parse(f.get_ref()).map_err(|e| {
        error(
            text,
            f.span().start,
            format!("filter \"{}\": {e}", f.get_ref()),
        )
    })?;
    if expr.is_empty() {
        return Err(error(
            text,
            f.span().start,
            "an empty filter selects nothing; remove it instead".into(),
        ));
    }
    Ok(f.get_ref().clone())
}

/// An error at byte `offset` of `text`.
fn error(text: &str, offset: usize, message: String) -> PolicyError {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    PolicyError {
        line,
        column,
        message,
    }
}
