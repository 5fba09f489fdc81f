//! The embedded demo source: a synthetic PMU fleet whose values move like a real 60 Hz grid.
//!
//! Each PMU reports frequency, dF/dt, three voltage and three current phasors (magnitude and
//! angle) and a status word — 15 signals. The system frequency wanders slowly around 60 Hz with
//! noise; every PMU's phase angle integrates the frequency deviation, so angles drift as they do
//! when a grid runs off nominal; currents follow a slow load cycle. Signal IDs are derived from
//! the seed, so a restarted publisher serves the same GUIDs and subscribers can simply reconnect.

use crate::clock::now_ticks;
use crate::config::DemoConfig;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use sttp_dataplane::{SourceHandle, SourcePoint};
use sttp_proto::catalog::Catalog;
use sttp_proto::metadata::builder::{
    DeviceRecord, MeasurementRecord, MetadataBuilder, PhasorRecord,
};
use sttp_proto::metadata::DataSet;
use sttp_wire::ticks;
use uuid::Uuid;

/// Signals per PMU.
pub const SIGNALS_PER_PMU: usize = 15;
/// Source acronym of the demo measurement keys (`DEMO:1` …).
pub const SOURCE: &str = "DEMO";

/// What one signal measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantity {
    Frequency,
    DfDt,
    VoltageMagnitude(u8),
    VoltageAngle(u8),
    CurrentMagnitude(u8),
    CurrentAngle(u8),
    Status,
}

impl Quantity {
    const ALL: [Quantity; SIGNALS_PER_PMU] = [
        Quantity::Frequency,
        Quantity::DfDt,
        Quantity::VoltageMagnitude(0),
        Quantity::VoltageAngle(0),
        Quantity::VoltageMagnitude(1),
        Quantity::VoltageAngle(1),
        Quantity::VoltageMagnitude(2),
        Quantity::VoltageAngle(2),
        Quantity::CurrentMagnitude(0),
        Quantity::CurrentAngle(0),
        Quantity::CurrentMagnitude(1),
        Quantity::CurrentAngle(1),
        Quantity::CurrentMagnitude(2),
        Quantity::CurrentAngle(2),
        Quantity::Status,
    ];

    fn signal_acronym(self) -> &'static str {
        match self {
            Quantity::Frequency => "FREQ",
            Quantity::DfDt => "DFDT",
            Quantity::VoltageMagnitude(_) => "VPHM",
            Quantity::VoltageAngle(_) => "VPHA",
            Quantity::CurrentMagnitude(_) => "IPHM",
            Quantity::CurrentAngle(_) => "IPHA",
            Quantity::Status => "FLAG",
        }
    }

    fn phase(self) -> Option<u8> {
        match self {
            Quantity::VoltageMagnitude(p)
            | Quantity::VoltageAngle(p)
            | Quantity::CurrentMagnitude(p)
            | Quantity::CurrentAngle(p) => Some(p),
            _ => None,
        }
    }

    fn tag_suffix(self) -> String {
        const PH: [char; 3] = ['A', 'B', 'C'];
        let ph = |p: u8| PH.get(usize::from(p)).copied().unwrap_or('?');
        match self {
            Quantity::Frequency => "FREQ".into(),
            Quantity::DfDt => "DFDT".into(),
            Quantity::VoltageMagnitude(p) => format!("V{}:MAG", ph(p)),
            Quantity::VoltageAngle(p) => format!("V{}:ANG", ph(p)),
            Quantity::CurrentMagnitude(p) => format!("I{}:MAG", ph(p)),
            Quantity::CurrentAngle(p) => format!("I{}:ANG", ph(p)),
            Quantity::Status => "STATUS".into(),
        }
    }
}

/// One demo signal.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoSignal {
    /// Signal GUID.
    pub signal_id: Uuid,
    /// PMU number (0-based).
    pub pmu: usize,
    /// What it measures.
    pub quantity: Quantity,
    /// Point tag.
    pub point_tag: String,
}

/// The fleet: its signals and the metadata describing them.
#[derive(Debug, Clone)]
pub struct DemoFleet {
    config: DemoConfig,
    signals: Vec<DemoSignal>,
    metadata: DataSet,
}

/// A deterministic 64-bit mixer (splitmix64), for GUIDs and noise.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn guid(seed: u64, n: u64) -> Uuid {
    let hi = mix(seed ^ mix(n));
    let lo = mix(hi ^ n.rotate_left(17));
    uuid::Builder::from_random_bytes(((u128::from(hi) << 64) | u128::from(lo)).to_be_bytes())
        .into_uuid()
}

/// Metadata timestamps: a fixed instant with non-zero milliseconds (peers.md P1).
const UPDATED_ON: i64 = ticks::from_civil(2026, 1, 1, 0, 0, 0, 1_230_000);

impl DemoFleet {
    /// Builds the fleet for `config.signals` signals.
    pub fn new(config: &DemoConfig) -> Self {
        let pmus = config.signals.div_ceil(SIGNALS_PER_PMU).max(1);
        let mut builder = MetadataBuilder {
            schema_version: 1,
            ..MetadataBuilder::default()
        };
        let node = guid(config.seed, u64::MAX);
        let mut signals = Vec::with_capacity(config.signals);
        for pmu in 0..pmus {
            let acronym = format!("PMU{:03}", pmu + 1);
            let (lat, lon) = (
                30.0 + (pmu % 17) as f64 * 0.7,
                -100.0 + (pmu % 23) as f64 * 0.9,
            );
            builder.devices.push(DeviceRecord {
                node_id: node,
                unique_id: guid(config.seed, 1_000_000 + pmu as u64),
                acronym: acronym.clone(),
                name: format!("Demo Substation {} PMU", pmu + 1),
                original_source: None,
                is_concentrator: false,
                access_id: (pmu + 1) as i32,
                parent_acronym: None,
                protocol_name: "STTP".into(),
                frames_per_second: config.rate.round().clamp(1.0, i32::MAX as f64) as i32,
                company_acronym: Some("DEMO".into()),
                vendor_acronym: Some("SEL".into()),
                vendor_device_name: Some("SEL-487E".into()),
                longitude: Some(lon),
                latitude: Some(lat),
                interconnection_name: Some("Eastern Interconnection".into()),
                contact_list: None,
                enabled: true,
                updated_on: UPDATED_ON,
            });
            for (p, label) in ["A", "B", "C"].iter().enumerate() {
                for (k, kind) in ["V", "I"].iter().enumerate() {
                    builder.phasors.push(PhasorRecord {
                        id: (pmu * 6 + k * 3 + p + 1) as i32,
                        device_acronym: acronym.clone(),
                        label: format!("{acronym} {kind}{label}"),
                        phasor_type: (*kind).into(),
                        phase: (*label).into(),
                        destination_phasor_id: None,
                        source_index: (k * 3 + p + 1) as i32,
                        base_kv: Some(345),
                        updated_on: UPDATED_ON,
                    });
                }
            }
            for quantity in Quantity::ALL {
                let n = signals.len();
                if n >= config.signals {
                    break;
                }
                let signal_id = guid(config.seed, n as u64);
                let point_tag = format!("{acronym}:{}", quantity.tag_suffix());
                let source_index = quantity.phase().map(|p| {
                    let kind = matches!(
                        quantity,
                        Quantity::CurrentMagnitude(_) | Quantity::CurrentAngle(_)
                    );
                    i32::from(p) + 1 + if kind { 3 } else { 0 }
                });
                builder.measurements.push(MeasurementRecord {
                    device_acronym: acronym.clone(),
                    id: format!("{SOURCE}:{}", n + 1),
                    signal_id,
                    point_tag: point_tag.clone(),
                    alternate_tag: None,
                    signal_reference: format!(
                        "{acronym}-{}",
                        quantity.tag_suffix().replace(':', "-")
                    ),
                    signal_acronym: quantity.signal_acronym().into(),
                    phasor_source_index: source_index,
                    description: format!("{} {}", acronym, quantity.tag_suffix()),
                    internal: true,
                    enabled: true,
                    updated_on: UPDATED_ON,
                });
                signals.push(DemoSignal {
                    signal_id,
                    pmu,
                    quantity,
                    point_tag,
                });
            }
        }
        Self {
            config: config.clone(),
            metadata: builder.build(),
            signals,
        }
    }

    /// The signals in registry order.
    pub fn signals(&self) -> &[DemoSignal] {
        &self.signals
    }

    /// The metadata describing the fleet.
    pub fn metadata(&self) -> &DataSet {
        &self.metadata
    }

    /// Starts the generator thread publishing into `source` until `stop` is set.
    pub fn spawn(
        &self,
        catalog: &Catalog,
        source: SourceHandle,
        stop: Arc<AtomicBool>,
    ) -> std::io::Result<JoinHandle<()>> {
        let indices: Vec<(u32, DemoSignal)> = self
            .signals
            .iter()
            .filter_map(|s| catalog.signal_index(&s.signal_id).map(|i| (i, s.clone())))
            .collect();
        let rate = self.config.rate;
        let seed = self.config.seed;
        std::thread::Builder::new()
            .name("sttp-demo-source".into())
            .spawn(move || generate(&indices, rate, seed, &source, &stop))
    }
}

/// Values of one frame at time `t` seconds.
struct GridModel {
    seed: u64,
    noise_state: u64,
    angle: f64,
    last_t: Option<f64>,
    last_freq: f64,
}

impl GridModel {
    fn noise(&mut self) -> f64 {
        self.noise_state = mix(self.noise_state ^ self.seed);
        // Uniform in [-1, 1).
        (self.noise_state >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }

    fn frequency(&mut self, t: f64) -> f64 {
        60.0 + 0.018 * (t * std::f64::consts::TAU / 97.0).sin()
            + 0.006 * (t * std::f64::consts::TAU / 13.0).sin()
            + 0.0008 * self.noise()
    }

    fn value(&mut self, s: &DemoSignal, freq: f64, dfdt: f64, t: f64) -> f32 {
        let pmu = s.pmu as f64;
        let offset = -3.5 * pmu.sqrt();
        let phase_shift = |p: u8| -120.0 * f64::from(p);
        let wrap = |a: f64| (a + 180.0).rem_euclid(360.0) - 180.0;
        let load = 1.0 + 0.15 * (t * std::f64::consts::TAU / 600.0 + pmu).sin();
        let v = match s.quantity {
            Quantity::Frequency => freq + 0.0004 * self.noise(),
            Quantity::DfDt => dfdt + 0.002 * self.noise(),
            Quantity::VoltageMagnitude(_) => {
                199_186.0 * (1.0 - 0.002 * pmu.min(10.0)) + 150.0 * self.noise()
            }
            Quantity::VoltageAngle(p) => {
                wrap(self.angle + offset + phase_shift(p) + 0.02 * self.noise())
            }
            Quantity::CurrentMagnitude(_) => 480.0 * load + 2.0 * self.noise(),
            Quantity::CurrentAngle(p) => {
                wrap(self.angle + offset + phase_shift(p) - 18.0 - 2.0 * load + 0.05 * self.noise())
            }
            Quantity::Status => 0.0,
        };
        v as f32
    }
}

/// Publishes frames at `rate` per second, aligned to frame boundaries of the wall clock, with
/// catch-up (bounded) when the thread falls behind.
fn generate(
    signals: &[(u32, DemoSignal)],
    rate: f64,
    seed: u64,
    source: &SourceHandle,
    stop: &AtomicBool,
) {
    let period = Duration::from_secs_f64(1.0 / rate);
    let period_ticks = (ticks::PER_SECOND as f64 / rate).max(1.0) as i64;
    let mut model = GridModel {
        seed,
        noise_state: seed,
        angle: 0.0,
        last_t: None,
        last_freq: 60.0,
    };
    let start = Instant::now();
    let start_ticks = now_ticks() / period_ticks * period_ticks;
    let mut frame: u64 = 0;
    let mut batch = Vec::with_capacity(signals.len() * 4);
    tracing::info!(signals = signals.len(), rate, "demo source started");
    while !stop.load(Ordering::Relaxed) {
        let due = (start.elapsed().as_secs_f64() * rate) as u64;
        if frame > due {
            std::thread::sleep(period.min(Duration::from_millis(5)));
            continue;
        }
        // Catch up at most one second of frames per turn.
        let last = due.min(frame + rate.ceil() as u64);
        batch.clear();
        while frame <= last {
            let ts = start_ticks + frame as i64 * period_ticks;
            let t = frame as f64 / rate;
            let freq = model.frequency(t);
            let dt = model.last_t.map(|l| t - l).unwrap_or(0.0);
            let dfdt = if dt > 0.0 {
                (freq - model.last_freq) / dt
            } else {
                0.0
            };
            model.angle =
                (model.angle + 360.0 * (freq - 60.0) * dt + 180.0).rem_euclid(360.0) - 180.0;
            model.last_t = Some(t);
            model.last_freq = freq;
            for (index, s) in signals {
                let value = model.value(s, freq, dfdt, t);
                batch.push(SourcePoint {
                    signal: *index,
                    timestamp: ts,
                    value,
                    flags: 0,
                });
            }
            frame += 1;
            if batch.len() >= 8192 {
                source.publish(&batch);
                batch.clear();
            }
        }
        source.publish(&batch);
    }
    tracing::info!(frames = frame, "demo source stopped");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fleet_has_exactly_the_requested_signals_and_stable_ids() {
        let c = DemoConfig {
            signals: 40,
            ..DemoConfig::default()
        };
        let a = DemoFleet::new(&c);
        let b = DemoFleet::new(&c);
        assert_eq!(a.signals().len(), 40);
        assert_eq!(a.signals(), b.signals());
        let unique: std::collections::HashSet<_> =
            a.signals().iter().map(|s| s.signal_id).collect();
        assert_eq!(unique.len(), 40);
        assert_eq!(a.metadata().table("DeviceDetail").map(|t| t.len()), Some(3));
    }

    #[test]
    fn values_look_like_a_60_hz_grid() {
        let fleet = DemoFleet::new(&DemoConfig::default());
        let mut m = GridModel {
            seed: 1,
            noise_state: 1,
            angle: 0.0,
            last_t: None,
            last_freq: 60.0,
        };
        for s in fleet.signals() {
            let v = m.value(s, 60.01, 0.0, 1.0);
            match s.quantity {
                Quantity::Frequency => assert!((v - 60.01).abs() < 0.01),
                Quantity::VoltageAngle(_) | Quantity::CurrentAngle(_) => {
                    assert!((-180.0..180.0).contains(&v))
                }
                Quantity::VoltageMagnitude(_) => assert!(v > 190_000.0 && v < 210_000.0),
                Quantity::CurrentMagnitude(_) => assert!(v > 300.0 && v < 700.0),
                _ => {}
            }
        }
    }
}
