//! The access policy model and its evaluation: who a peer is ([`AccessPolicy::identify`]) and
//! which points it may see ([`AccessPolicy::evaluate`]).
//!
//! # Precedence (the draft STTP rule, deny by default)
//!
//! Each identity lists allow and deny rules of three kinds: explicit points (by GUID or point
//! tag), named groups, and filter expressions. A group holds points two ways: listed by GUID or
//! tag (its *explicit* members) and through its own filter expression (its *implicit* members).
//! A point's fate is decided by the first of these four levels that mentions it:
//!
//! 1. **point explicit** — the point is in the identity's `allow_points` / `deny_points`;
//! 2. **group explicit** — the point is an explicit member of a group in `allow_groups` /
//!    `deny_groups`;
//! 3. **filter implicit** — the point is selected by one of `allow_filters` / `deny_filters`;
//! 4. **group implicit** — the point is an implicit member (through the group's filter) of a group
//!    in `allow_groups` / `deny_groups`.
//!
//! Within one level a deny beats an allow. A point no level mentions is denied. So
//! `deny_filters = ["SignalType = 'STAT'"]` with `allow_points = ["PMU1:ST"]` lets that one status
//! point through, and `allow_groups = ["north"]` never overrides an explicit `deny_points`.
//!
//! Filter expressions are the subscription filter language (wire.md §7) evaluated against the
//! publisher's full ActiveMeasurements table, so disabled measurements (which are not in it) are
//! never allowed. If a filter fails to evaluate (say it names a column the metadata lacks) the
//! identity is given nothing — an access rule that cannot be evaluated must not widen access —
//! and the reason comes back as a warning.

use super::cidr::AddressRange;
use super::set::SignalSet;
use crate::catalog::Catalog;
use crate::filter::EvalContext;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use uuid::Uuid;

/// A point named in a rule or a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PointRef {
    /// By signal ID.
    Guid(Uuid),
    /// By point tag, compared case-insensitively (as the filter language's `"TAG"` statement
    /// does); every signal carrying the tag matches.
    Tag(String),
}

impl PointRef {
    /// A GUID when `text` is one (any form `uuid` accepts: dashed, plain, braced, URN), else a
    /// point tag.
    pub fn parse(text: &str) -> Self {
        match Uuid::parse_str(text.trim()) {
            Ok(g) => PointRef::Guid(g),
            Err(_) => PointRef::Tag(text.to_owned()),
        }
    }
}

impl std::fmt::Display for PointRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PointRef::Guid(g) => write!(f, "{g}"),
            PointRef::Tag(t) => write!(f, "\"{t}\""),
        }
    }
}

/// A named group of points.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Group {
    /// Explicit members.
    pub points: Vec<PointRef>,
    /// Implicit members: what this filter expression selects.
    pub filter: Option<String>,
}

/// One side (allow or deny) of an identity's rules.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RuleSet {
    /// Explicit points.
    pub points: Vec<PointRef>,
    /// Group names (each exists in [`AccessPolicy::groups`]; the parser checks).
    pub groups: Vec<String>,
    /// Filter expressions.
    pub filters: Vec<String>,
}

/// A subscriber identity and its rules.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Identity {
    /// Name used in logs.
    pub name: String,
    /// Accepted certificate SHA-256 fingerprints, lowercase hex without separators.
    pub fingerprints: Vec<String>,
    /// Accepted certificate subject common names (compared case-insensitively).
    pub common_names: Vec<String>,
    /// Source address ranges the peer must connect from (empty: any).
    pub addresses: Vec<AddressRange>,
    /// Allow rules.
    pub allow: RuleSet,
    /// Deny rules.
    pub deny: RuleSet,
}

/// What the transport proved about a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Who {
    /// Source address.
    pub addr: IpAddr,
    /// Verified client certificate's SHA-256 fingerprint (hex, any case, `:` separators allowed).
    pub fingerprint_sha256: Option<String>,
    /// Verified client certificate's subject common name.
    pub common_name: Option<String>,
}

impl Identity {
    /// True when `who` is this identity. A certificate condition (fingerprints or common names,
    /// either one matching) and an address condition must both hold when both are given; an
    /// identity without certificate conditions is matched by address alone (plain TCP).
    pub fn matches(&self, who: &Who) -> bool {
        let cert_ok = if self.fingerprints.is_empty() && self.common_names.is_empty() {
            true
        } else {
            let fp = who.fingerprint_sha256.as_deref().map(normalise_fingerprint);
            let by_fp = fp.is_some_and(|fp| self.fingerprints.contains(&fp));
            let by_cn = who
                .common_name
                .as_deref()
                .is_some_and(|cn| self.common_names.iter().any(|c| c.eq_ignore_ascii_case(cn)));
            by_fp || by_cn
        };
        let addr_ok =
            self.addresses.is_empty() || self.addresses.iter().any(|r| r.contains(who.addr));
        cert_ok && addr_ok
    }
}

/// Lowercase hex without `:` or space separators.
pub fn normalise_fingerprint(text: &str) -> String {
    text.chars()
        .filter(|c| *c != ':' && !c.is_whitespace())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// The whole policy.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AccessPolicy {
    /// Named groups.
    pub groups: BTreeMap<String, Group>,
    /// Identities, tried in order; the first that matches a peer is the peer's identity.
    pub identities: Vec<Identity>,
}

/// The points an identity may see.
#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    /// The identity's name.
    pub identity: String,
    /// Allowed global signal indices of the catalog evaluated against.
    pub allowed: SignalSet,
    /// Rules that named unknown points, or filters that failed (these leave nothing allowed).
    pub warnings: Vec<String>,
}

/// Why a peer gets nothing at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Refusal {
    /// Log text.
    pub reason: String,
}

impl AccessPolicy {
    /// The identity `who` is, if any (first match in policy order).
    pub fn identify(&self, who: &Who) -> Option<&Identity> {
        self.identities.iter().find(|i| i.matches(who))
    }

    /// Identifies `who` and computes its allowed points in `catalog`. A peer no identity matches
    /// is refused.
    pub fn evaluate(
        &self,
        who: &Who,
        catalog: &Catalog,
        ctx: &EvalContext,
    ) -> Result<Grant, Refusal> {
        let identity = self.identify(who).ok_or_else(|| Refusal {
            reason: format!(
                "no access policy identity matches this peer (address {}, certificate {})",
                who.addr,
                match (&who.fingerprint_sha256, &who.common_name) {
                    (None, _) => "none".to_owned(),
                    (Some(fp), None) => format!("SHA-256 {fp}"),
                    (Some(fp), Some(cn)) => format!("SHA-256 {fp}, CN \"{cn}\""),
                }
            ),
        })?;
        let (allowed, warnings) = self.allowed_for(identity, catalog, ctx);
        Ok(Grant {
            identity: identity.name.clone(),
            allowed,
            warnings,
        })
    }

    /// The points `identity` may see in `catalog`, by the precedence in the module docs.
    pub fn allowed_for(
        &self,
        identity: &Identity,
        catalog: &Catalog,
        ctx: &EvalContext,
    ) -> (SignalSet, Vec<String>) {
        let n = catalog.signals().len() as u32;
        let mut r = Resolver::new(catalog, ctx, &identity.name);
        // Levels 1–4, each as (allowed, denied).
        let levels = [
            (
                r.points(&identity.allow.points),
                r.points(&identity.deny.points),
            ),
            (
                self.group_members(&mut r, &identity.allow.groups, false),
                self.group_members(&mut r, &identity.deny.groups, false),
            ),
            (
                r.filters(&identity.allow.filters),
                r.filters(&identity.deny.filters),
            ),
            (
                self.group_members(&mut r, &identity.allow.groups, true),
                self.group_members(&mut r, &identity.deny.groups, true),
            ),
        ];
        let mut allowed = SignalSet::empty(n);
        if r.failed {
            return (allowed, r.warnings);
        }
        for i in 0..n {
            for (allow, deny) in &levels {
                if deny.contains(i) {
                    break;
                }
                if allow.contains(i) {
                    allowed.insert(i);
                    break;
                }
            }
        }
        (allowed, r.warnings)
    }

    /// Explicit (`implicit == false`) or filter-selected members of the named groups.
    fn group_members(&self, r: &mut Resolver<'_>, names: &[String], implicit: bool) -> SignalSet {
        let mut set = SignalSet::empty(r.capacity());
        for name in names {
            let Some(group) = self.groups.get(name) else {
                r.fail(format!("group \"{name}\" is not defined"));
                continue;
            };
            let members = if implicit {
                r.filters(group.filter.as_slice())
            } else {
                r.points(&group.points)
            };
            for i in members.iter() {
                set.insert(i);
            }
        }
        set
    }
}

/// Resolves point references and filters against one catalog, collecting warnings.
struct Resolver<'a> {
    catalog: &'a Catalog,
    ctx: &'a EvalContext,
    identity: &'a str,
    by_tag: Option<HashMap<String, Vec<u32>>>,
    warnings: Vec<String>,
    failed: bool,
}

impl<'a> Resolver<'a> {
    fn new(catalog: &'a Catalog, ctx: &'a EvalContext, identity: &'a str) -> Self {
        Self {
            catalog,
            ctx,
            identity,
            by_tag: None,
            warnings: Vec::new(),
            failed: false,
        }
    }

    fn capacity(&self) -> u32 {
        self.catalog.signals().len() as u32
    }

    fn fail(&mut self, why: String) {
        self.failed = true;
        self.warnings.push(format!(
            "identity \"{}\" gets no points: {why}",
            self.identity
        ));
    }

    fn points(&mut self, refs: &[PointRef]) -> SignalSet {
        let mut set = SignalSet::empty(self.capacity());
        for p in refs {
            let found: Vec<u32> = match p {
                PointRef::Guid(g) => self.catalog.signal_index(g).into_iter().collect(),
                PointRef::Tag(t) => {
                    let catalog = self.catalog;
                    let by_tag = self.by_tag.get_or_insert_with(|| {
                        let mut m: HashMap<String, Vec<u32>> = HashMap::new();
                        for (i, s) in catalog.signals().iter().enumerate() {
                            m.entry(s.point_tag.to_lowercase())
                                .or_default()
                                .push(i as u32);
                        }
                        m
                    });
                    by_tag.get(&t.to_lowercase()).cloned().unwrap_or_default()
                }
            };
            if found.is_empty() {
                self.warnings.push(format!(
                    "identity \"{}\": point {p} is not in the metadata",
                    self.identity
                ));
            }
            for i in found {
                set.insert(i);
            }
        }
        set
    }

    fn filters(&mut self, filters: &[String]) -> SignalSet {
        let mut set = SignalSet::empty(self.capacity());
        for f in filters {
            match self.catalog.select_signals(f, self.ctx) {
                Ok(selected) => selected.into_iter().for_each(|i| set.insert(i)),
                Err(e) => self.fail(format!("filter \"{f}\" failed: {e}")),
            }
        }
        set
    }
}
