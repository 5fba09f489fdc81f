//! The subscriber's metadata cache: the last DataSet the publisher sent, indexed by signal ID so
//! every received point can be named.

use std::collections::HashMap;
use sttp_proto::metadata::DataSet;
use uuid::Uuid;

/// What the metadata says about one signal.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SignalMetadata {
    /// Point tag.
    pub point_tag: String,
    /// Measurement key (`SOURCE:N`).
    pub id: String,
    /// Device acronym.
    pub device: String,
    /// Signal type acronym (FREQ, VPHM, …).
    pub signal_type: String,
    /// Description.
    pub description: String,
}

/// Metadata indexed by signal ID.
#[derive(Debug, Clone, Default)]
pub struct MetadataCache {
    /// The DataSet as received.
    pub dataset: DataSet,
    signals: HashMap<Uuid, SignalMetadata>,
}

impl MetadataCache {
    /// Indexes the MeasurementDetail table of `dataset`.
    pub fn new(dataset: DataSet) -> Self {
        let mut signals = HashMap::new();
        if let Some(t) = dataset.table("MeasurementDetail") {
            let text = |row: usize, col: &str| {
                t.value_by_name(row, col)
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            };
            for row in 0..t.len() {
                let Some(id) = t.value_by_name(row, "SignalID").as_guid() else {
                    continue;
                };
                signals.insert(
                    id,
                    SignalMetadata {
                        point_tag: text(row, "PointTag"),
                        id: text(row, "ID"),
                        device: text(row, "DeviceAcronym"),
                        signal_type: text(row, "SignalAcronym"),
                        description: text(row, "Description"),
                    },
                );
            }
        }
        Self { dataset, signals }
    }

    /// Metadata of one signal.
    pub fn signal(&self, id: &Uuid) -> Option<&SignalMetadata> {
        self.signals.get(id)
    }

    /// Number of signals described.
    pub fn len(&self) -> usize {
        self.signals.len()
    }

    /// True when no signal is described.
    pub fn is_empty(&self) -> bool {
        self.signals.is_empty()
    }
}
