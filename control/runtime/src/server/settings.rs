//! Negotiated subscription settings → the data plane's plain encoder settings.

use std::time::Duration;
use sttp_dataplane::encoder::{EncoderSettings, Format, Throttle};
use sttp_proto::connstr::SubscriptionSettings;
use sttp_proto::opmodes::OperationalModes;
use sttp_wire::ticks;

/// Translates negotiated subscription settings into the data plane's plain values.
pub fn encoder_settings(
    s: &SubscriptionSettings,
    modes: OperationalModes,
    processing_interval: i32,
) -> EncoderSettings {
    let throttle = s.throttled.then(|| {
        let interval = if s.publish_interval > 0.0 {
            s.publish_interval
        } else if s.lag_time > 0.0 {
            s.lag_time
        } else {
            1.0
        };
        Throttle {
            interval: Duration::from_secs_f64(interval.clamp(0.001, 86_400.0)),
            reasonability: s.enable_time_reasonability_check.then(|| {
                let t = |secs: f64| (secs.clamp(0.0, 86_400.0) * ticks::PER_SECOND as f64) as i64;
                (t(s.lag_time), t(s.lead_time))
            }),
        }
    });
    EncoderSettings {
        format: if modes.use_tssc() {
            Format::Tssc
        } else {
            Format::Compact
        },
        include_time: s.include_time,
        millisecond_resolution: s.use_millisecond_resolution,
        nan_filter: s.request_nan_value_filter,
        min_flush_interval: Duration::from_millis(processing_interval.max(0) as u64),
        throttle,
        ..EncoderSettings::default()
    }
}
