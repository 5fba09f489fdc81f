//! The synthetic catalog: S signals of the [`crate::oracle`] source, 1000 per device, described
//! with the same metadata records a real publisher uses (wire.md §7).

use crate::oracle::signal_guid;
use sttp_proto::catalog::Catalog;
use sttp_proto::metadata::builder::{DeviceRecord, MeasurementRecord, MetadataBuilder};
use uuid::Uuid;

/// Signals per synthetic device.
const SIGNALS_PER_DEVICE: u32 = 1000;
/// Node ID of the perf publisher.
const NODE: Uuid = Uuid::from_u128(0x5e7f_0000_2664_4000_8000_ffff_ffff_ffff);
/// 2026-11-21T00:00:00Z in ticks, the records' `UpdatedOn`.
const UPDATED_ON: i64 = 639_308_160_000_000_000;

/// Builds the catalog of `signals` synthetic signals.
pub fn synthetic(signals: u32) -> Catalog {
    let mut builder = MetadataBuilder {
        schema_version: 1,
        ..MetadataBuilder::default()
    };
    let devices = signals.div_ceil(SIGNALS_PER_DEVICE).max(1);
    for d in 0..devices {
        builder.devices.push(DeviceRecord {
            node_id: NODE,
            unique_id: Uuid::from_u128(0x5e7f_0000_2664_4000_8000_fffe_0000_0000 | u128::from(d)),
            acronym: format!("PERF{d:04}"),
            name: format!("Perf device {d}"),
            original_source: None,
            is_concentrator: false,
            access_id: d as i32 + 1,
            parent_acronym: None,
            protocol_name: "STTP".into(),
            frames_per_second: 30,
            company_acronym: None,
            vendor_acronym: None,
            vendor_device_name: None,
            longitude: None,
            latitude: None,
            interconnection_name: None,
            contact_list: None,
            enabled: true,
            updated_on: UPDATED_ON,
        });
    }
    for i in 0..signals {
        let device = format!("PERF{:04}", i / SIGNALS_PER_DEVICE);
        builder.measurements.push(MeasurementRecord {
            device_acronym: device.clone(),
            id: format!("PERF:{}", i + 1),
            signal_id: signal_guid(i),
            point_tag: format!("{device}:S{i}"),
            alternate_tag: None,
            signal_reference: format!("{device}-S{i}"),
            signal_acronym: "FREQ".into(),
            phasor_source_index: None,
            description: format!("synthetic signal {i}"),
            internal: true,
            enabled: true,
            updated_on: UPDATED_ON,
        });
    }
    Catalog::new(NODE, builder.build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_signal_is_in_the_catalog_once() {
        let catalog = synthetic(2500);
        assert_eq!(catalog.signals().len(), 2500);
        let mut seen = std::collections::HashSet::new();
        for i in 0..2500 {
            let idx = catalog.signal_index(&signal_guid(i));
            assert!(idx.is_some(), "signal {i} missing");
            assert!(seen.insert(idx));
        }
        assert_eq!(catalog.signal_index(&signal_guid(2500)), None);
    }
}
