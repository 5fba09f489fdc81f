//! What a publisher offers: its metadata DataSet, the derived ActiveMeasurements table that
//! subscription filters run against (wire.md §7), and the signal registry that gives every
//! published signal a dense global index for the data plane's routing tables.

use crate::acl::SignalSet;
use crate::filter::{self, EvalContext, FilterError};
use crate::gzip;
use crate::metadata::{self, DataSet, DataTable};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use uuid::Uuid;

/// One signal of the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignalInfo {
    /// The signal's GUID.
    pub signal_id: Uuid,
    /// Measurement-key source (`ID` column before the last `:`), e.g. `PPA`.
    pub source: String,
    /// Measurement-key number (`ID` column after the last `:`).
    pub key_id: u64,
    /// Point tag.
    pub point_tag: String,
}

/// The publisher's metadata and signal registry. Immutable once built; a metadata change builds
/// a new catalog.
#[derive(Debug)]
pub struct Catalog {
    node_id: Uuid,
    metadata: DataSet,
    /// ActiveMeasurements as the only table of the dataset subscription filters run against,
    /// so a FILTER naming any other table fails as it does on the reference publishers.
    active: DataSet,
    signals: Vec<SignalInfo>,
    by_guid: HashMap<Uuid, u32>,
    /// Set in the access-controlled views made by [`Catalog::restricted`].
    restriction: Option<Restriction>,
    xml: OnceLock<(String, Vec<u8>)>,
}

/// A restricted view's full catalog (the registry lives there) and what the view may show.
#[derive(Debug)]
struct Restriction {
    base: Arc<Catalog>,
    allowed: SignalSet,
}

/// What a subscription filter selected, split by access control.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selection {
    /// Allowed global signal indices, in filter-result order.
    pub allowed: Vec<u32>,
    /// Selected but refused by access control (empty for an unrestricted catalog).
    pub refused: Vec<u32>,
}

impl Catalog {
    /// Builds the catalog: ActiveMeasurements from `metadata`, and one registry entry per
    /// ActiveMeasurements row, in row order.
    pub fn new(node_id: Uuid, metadata: DataSet) -> Self {
        let active = metadata::active::active_measurements(&metadata, node_id);
        let sid = active.column_index("SignalID");
        let key = active.column_index("ID");
        let tag = active.column_index("PointTag");
        let mut signals = Vec::with_capacity(active.len());
        let mut by_guid = HashMap::with_capacity(active.len());
        for row in 0..active.len() {
            let Some(signal_id) = sid.and_then(|c| active.value(row, c).as_guid()) else {
                continue;
            };
            let id = key
                .and_then(|c| active.value(row, c).as_str())
                .unwrap_or_default();
            let (source, key_id) = split_measurement_key(id);
            let point_tag = tag
                .and_then(|c| active.value(row, c).as_str())
                .unwrap_or_default()
                .to_owned();
            if by_guid.contains_key(&signal_id) {
                continue;
            }
            by_guid.insert(signal_id, signals.len() as u32);
            signals.push(SignalInfo {
                signal_id,
                source,
                key_id,
                point_tag,
            });
        }
        let mut active_set = DataSet::new("Iaon");
        active_set.tables.push(active);
        Self {
            node_id,
            metadata,
            active: active_set,
            signals,
            by_guid,
            restriction: None,
            xml: OnceLock::new(),
        }
    }

    /// A view of this catalog showing only the `allowed` signals (access control, see
    /// [`crate::acl`]): metadata rows, ActiveMeasurements rows, registry lookups and filter
    /// selections of other signals disappear, while global signal indices stay those of the full
    /// catalog. Restricting a view again intersects the sets.
    pub fn restricted(self: &Arc<Self>, allowed: &SignalSet) -> Catalog {
        let (base, allowed) = match &self.restriction {
            Some(r) => {
                let mut a = allowed.clone();
                a.intersect_with(&r.allowed);
                (r.base.clone(), a)
            }
            None => (self.clone(), allowed.clone()),
        };
        let (metadata, active) = crate::acl::view::restrict(&base, &allowed);
        Self {
            node_id: base.node_id,
            metadata,
            active,
            signals: Vec::new(),
            by_guid: HashMap::new(),
            restriction: Some(Restriction { base, allowed }),
            xml: OnceLock::new(),
        }
    }

    /// The allowed signals of a restricted view; `None` for a full catalog.
    pub fn allowed(&self) -> Option<&SignalSet> {
        self.restriction.as_ref().map(|r| &r.allowed)
    }

    /// The publisher's node ID.
    pub fn node_id(&self) -> Uuid {
        self.node_id
    }

    /// The metadata DataSet.
    pub fn metadata(&self) -> &DataSet {
        &self.metadata
    }

    /// The ActiveMeasurements table.
    pub fn active_measurements(&self) -> &DataTable {
        static EMPTY: OnceLock<DataTable> = OnceLock::new();
        self.active
            .tables
            .first()
            .unwrap_or_else(|| EMPTY.get_or_init(DataTable::default))
    }

    /// Every registered signal; the position is the global signal index. A restricted view
    /// returns the full registry (it defines the index space); use [`Catalog::signal`] or
    /// [`Catalog::allowed`] for what the view shows.
    pub fn signals(&self) -> &[SignalInfo] {
        match &self.restriction {
            Some(r) => r.base.signals(),
            None => &self.signals,
        }
    }

    /// Global index of a signal (`None` for a signal a restricted view hides).
    pub fn signal_index(&self, signal_id: &Uuid) -> Option<u32> {
        match &self.restriction {
            Some(r) => r
                .base
                .signal_index(signal_id)
                .filter(|i| r.allowed.contains(*i)),
            None => self.by_guid.get(signal_id).copied(),
        }
    }

    /// A signal by global index (`None` for a signal a restricted view hides).
    pub fn signal(&self, index: u32) -> Option<&SignalInfo> {
        match &self.restriction {
            Some(r) if !r.allowed.contains(index) => None,
            Some(r) => r.base.signal(index),
            None => self.signals.get(index as usize),
        }
    }

    /// Global indices of the signals a subscription filter selects, in filter-result order
    /// without duplicates (runtime IDs are assigned in this order, as cppapi does).
    pub fn select_signals(
        &self,
        filter_text: &str,
        ctx: &EvalContext,
    ) -> Result<Vec<u32>, FilterError> {
        Ok(self.select_signals_split(filter_text, ctx)?.allowed)
    }

    /// Like [`Catalog::select_signals`], also returning what access control refused. A restricted
    /// view evaluates the filter against the full ActiveMeasurements (as gsfapi does, so `TOP n`
    /// counts refused rows too) and splits the result: the subscriber gets exactly
    /// allowed ∩ requested, and learns how many requested points were refused.
    pub fn select_signals_split(
        &self,
        filter_text: &str,
        ctx: &EvalContext,
    ) -> Result<Selection, FilterError> {
        if let Some(r) = &self.restriction {
            let (allowed, refused) = r
                .base
                .select_signals(filter_text, ctx)?
                .into_iter()
                .partition(|i| r.allowed.contains(*i));
            return Ok(Selection { allowed, refused });
        }
        if filter_text.trim().is_empty() {
            // cppapi: an empty filter matches nothing.
            return Ok(Selection::default());
        }
        let expr = filter::parse(filter_text)?;
        let active = self.active_measurements();
        let rows: Vec<usize> = expr
            .select(&self.active, &active.name, ctx)?
            .into_iter()
            .flat_map(|sel| sel.rows)
            .collect();
        let sid = active.column_index("SignalID");
        let mut seen = std::collections::HashSet::with_capacity(rows.len());
        Ok(Selection {
            allowed: rows
                .into_iter()
                .filter_map(|row| sid.and_then(|c| active.value(row, c).as_guid()))
                .filter_map(|g| self.signal_index(&g))
                .filter(|i| seen.insert(*i))
                .collect(),
            refused: Vec::new(),
        })
    }

    /// The whole metadata as XML, and gzipped; built once.
    pub fn metadata_xml(&self) -> (&str, &[u8]) {
        let (xml, gz) = self.xml.get_or_init(|| {
            let xml = metadata::xml::write_xml(&self.metadata);
            let gz = gzip::compress(xml.as_bytes());
            (xml, gz)
        });
        (xml, gz)
    }
}

/// Splits a measurement key `SOURCE:NUMBER` at the last `:` (wire.md §5).
pub fn split_measurement_key(id: &str) -> (String, u64) {
    match id.rsplit_once(':') {
        Some((source, n)) => (source.to_owned(), n.trim().parse().unwrap_or(0)),
        None => (id.to_owned(), 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measurement_keys_split_at_last_colon() {
        assert_eq!(split_measurement_key("PPA:15"), ("PPA".into(), 15));
        assert_eq!(split_measurement_key("A:B:7"), ("A:B".into(), 7));
        assert_eq!(split_measurement_key("NOKEY"), ("NOKEY".into(), 0));
    }
}
