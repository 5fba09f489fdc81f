//! Per-subscription packet builder: turns routed points into DataPacket frames (compact or TSSC,
//! wire.md §4), with the in-band responses that must stay ordered with the data — DataStartTime
//! (0x86) before the first packet and UpdateBaseTimes (0x84) before the first packet that uses
//! new base times (wire.md §6).

use crate::sink::{PacketSink, SinkStatus};
use crate::stats::SubscriptionStats;
use std::sync::Arc;
use std::time::{Duration, Instant};
use sttp_wire::compact::{self, BaseTimeSchedule, BaseTimes, CompactOptions};
use sttp_wire::frame::{self, code, ResponseMark};
use sttp_wire::{ticks, tssc, Measurement, StateFlags};

/// Data packet format of a subscription, fixed by the operational modes (wire.md §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Compact measurements (wire.md §4.1).
    Compact,
    /// TSSC (wire.md §4.2); TCP only.
    Tssc,
}

/// Throttled publication (wire.md §3 `throttled`): keep the latest value per signal and publish a
/// snapshot every interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Throttle {
    /// Snapshot period.
    pub interval: Duration,
    /// Time-reasonability check: values older than `lag` or newer than `lead` (relative to the
    /// newest timestamp seen) are published as NaN with BadTime.
    pub reasonability: Option<(i64, i64)>,
}

/// Everything a subscription's encoder needs to know, as plain values.
#[derive(Debug, Clone, PartialEq)]
pub struct EncoderSettings {
    pub format: Format,
    /// `includeTime`: compact measurements carry a timestamp.
    pub include_time: bool,
    /// `useMillisecondResolution`: compact offsets in 2-byte milliseconds.
    pub millisecond_resolution: bool,
    /// Compact base-time offsets (cppapi/gsfapi default true).
    pub use_base_time_offsets: bool,
    /// `requestNaNValueFilter`: drop NaN values.
    pub nan_filter: bool,
    /// Largest DataPacket payload (flags + count + measurements).
    pub max_payload: usize,
    /// Minimum time between flushes (`processingInterval` > 0); zero flushes as soon as the
    /// worker has drained its input.
    pub min_flush_interval: Duration,
    /// Throttled publication, if requested.
    pub throttle: Option<Throttle>,
    /// Latency budget: a buffered point waits at most this long for more points to share its
    /// packet (issue: flush on a target size or a deadline, default 1 ms).
    pub flush_deadline: Duration,
    /// Target size: the buffer is flushed at once when it holds this many bytes.
    pub flush_bytes: usize,
    /// Packets go out as UDP datagrams while the in-band responses (DataStartTime,
    /// UpdateBaseTimes) go over TCP (wire.md §8). The two paths race, so a new base time is
    /// only used once [`BASE_TIME_GRACE`] has passed since it was sent; until then
    /// measurements carry full timestamps.
    pub datagrams: bool,
}

/// How long a UDP subscription keeps sending full timestamps after announcing new base times
/// over TCP, so that no datagram can overtake the announcement it depends on (wire.md §6, §8).
pub const BASE_TIME_GRACE: Duration = Duration::from_millis(250);

/// The default target size of one flush.
pub const DEFAULT_FLUSH_BYTES: usize = 64 * 1024;

impl Default for EncoderSettings {
    fn default() -> Self {
        Self {
            format: Format::Tssc,
            include_time: true,
            millisecond_resolution: false,
            use_base_time_offsets: true,
            nan_filter: false,
            max_payload: 32_768 - frame::RESPONSE_HEADER_LEN,
            min_flush_interval: Duration::ZERO,
            throttle: None,
            flush_deadline: Duration::from_millis(1),
            flush_bytes: DEFAULT_FLUSH_BYTES,
            datagrams: false,
        }
    }
}

/// The open packet's state.
#[derive(Debug, Clone, Copy)]
struct OpenPacket {
    mark: ResponseMark,
}

/// Builds one subscription's frames.
pub struct SubscriptionEncoder {
    settings: EncoderSettings,
    cache_flag: u8,
    tssc: tssc::PacketEncoder,
    compact: compact::PacketEncoder,
    schedule: Option<BaseTimeSchedule>,
    base: Option<BaseTimes>,
    /// New base times announced but not yet used (datagram mode), and when they may be.
    pending_base: Option<(BaseTimes, Instant)>,
    resend_base: bool,
    buf: Vec<u8>,
    open: Option<OpenPacket>,
    buffered_points: u64,
    buffered_packets: u64,
    /// When the oldest unflushed point was encoded.
    oldest: Option<Instant>,
    sent_start_time: bool,
    latest: Vec<Option<Measurement>>,
    newest_ts: i64,
    next_snapshot: Option<Instant>,
    last_flush: Instant,
    stats: Arc<SubscriptionStats>,
}

impl std::fmt::Debug for SubscriptionEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubscriptionEncoder")
            .field("settings", &self.settings)
            .field("cache_flag", &self.cache_flag)
            .field("buffered", &self.buf.len())
            .finish_non_exhaustive()
    }
}

impl SubscriptionEncoder {
    /// A new encoder; it produces nothing until points are pushed.
    pub fn new(settings: EncoderSettings, cache_index: u8, stats: Arc<SubscriptionStats>) -> Self {
        let opts = CompactOptions {
            include_time: settings.include_time,
            millisecond_resolution: settings.millisecond_resolution,
        };
        let schedule = (settings.format == Format::Compact
            && settings.include_time
            && settings.use_base_time_offsets)
            .then(|| BaseTimeSchedule::new(settings.millisecond_resolution));
        Self {
            compact: compact::PacketEncoder::new(opts),
            tssc: tssc::PacketEncoder::new(),
            schedule,
            base: None,
            pending_base: None,
            resend_base: false,
            cache_flag: cache_flag(cache_index),
            buf: Vec::with_capacity(settings.max_payload + 64),
            open: None,
            buffered_points: 0,
            buffered_packets: 0,
            oldest: None,
            sent_start_time: false,
            latest: Vec::new(),
            newest_ts: 0,
            next_snapshot: None,
            last_flush: Instant::now(),
            settings,
            stats,
        }
    }

    /// The settings in force.
    pub fn settings(&self) -> &EncoderSettings {
        &self.settings
    }

    /// Changes the largest packet payload from the next packet on (a new data-channel cipher
    /// may add a different overhead).
    pub fn set_max_payload(&mut self, max_payload: usize) {
        self.settings.max_payload = max_payload;
    }

    /// Adds one routed point. Throttled subscriptions only remember it.
    #[inline]
    pub fn push(&mut self, m: Measurement, now: Instant) {
        if self.settings.nan_filter && m.value.is_nan() {
            SubscriptionStats::add(&self.stats.dropped_nan, 1);
            return;
        }
        if self.settings.throttle.is_some() {
            self.remember(m, now);
            return;
        }
        self.encode(m, now);
    }

    fn remember(&mut self, m: Measurement, now: Instant) {
        let Ok(i) = usize::try_from(m.runtime_id) else {
            return;
        };
        if self.latest.len() <= i {
            self.latest.resize(i + 1, None);
        }
        if let Some(slot) = self.latest.get_mut(i) {
            *slot = Some(m);
        }
        self.newest_ts = self.newest_ts.max(ticks::value(m.timestamp));
        if self.next_snapshot.is_none() {
            if let Some(t) = self.settings.throttle {
                self.next_snapshot = Some(now + t.interval);
            }
        }
    }

    fn encode(&mut self, m: Measurement, now: Instant) {
        if self.oldest.is_none() {
            self.oldest = Some(now);
        }
        if !self.sent_start_time {
            self.sent_start_time = true;
            frame::write_response(
                &mut self.buf,
                code::DATA_START_TIME,
                code::SUBSCRIBE,
                &m.timestamp.to_be_bytes(),
            );
        }
        if let Some(schedule) = self.schedule.as_mut() {
            if let Some(base) = schedule.observe(ticks::value(m.timestamp)) {
                self.close_packet();
                self.base = Some(base);
                self.write_base_times(base);
                if self.settings.datagrams {
                    self.compact.set_base_times(None);
                    self.pending_base = Some((base, now + BASE_TIME_GRACE));
                } else {
                    self.compact.set_base_times(Some(base));
                }
            }
        }
        if let Some((base, from)) = self.pending_base {
            if now >= from {
                self.close_packet();
                self.pending_base = None;
                self.compact.set_base_times(Some(base));
            }
        }
        if self.resend_base {
            self.resend_base = false;
            if let Some(base) = self.base {
                self.close_packet();
                self.write_base_times(base);
            }
        }
        if self.open.is_none() {
            self.open_packet();
        }
        if !self.try_add(&m) {
            self.close_packet();
            self.open_packet();
            // An empty packet always has room for one measurement of at most 17 bytes.
            let _ = self.try_add(&m);
        }
        self.buffered_points += 1;
    }

    fn write_base_times(&mut self, base: BaseTimes) {
        let mut payload = Vec::with_capacity(20);
        base.encode(&mut payload);
        frame::write_response(
            &mut self.buf,
            code::UPDATE_BASE_TIMES,
            code::SUBSCRIBE,
            &payload,
        );
    }

    #[inline]
    fn try_add(&mut self, m: &Measurement) -> bool {
        match self.settings.format {
            Format::Tssc => self.tssc.try_add(&mut self.buf, m),
            Format::Compact => self.compact.try_add(&mut self.buf, m),
        }
    }

    fn open_packet(&mut self) {
        let mark = frame::begin_response(&mut self.buf, code::DATA_PACKET, code::SUBSCRIBE, true);
        let max = self.settings.max_payload;
        match self.settings.format {
            Format::Tssc => self.tssc.begin(&mut self.buf, self.cache_flag, max),
            Format::Compact => self.compact.begin(&mut self.buf, self.cache_flag, max),
        }
        self.open = Some(OpenPacket { mark });
    }

    fn close_packet(&mut self) {
        if let Some(open) = self.open.take() {
            let count = match self.settings.format {
                Format::Tssc => self.tssc.finish(&mut self.buf),
                Format::Compact => self.compact.finish(&mut self.buf),
            };
            if count == 0 {
                // Nothing was encodable (runtime IDs out of range): drop the empty response.
                self.buf.truncate(open.mark.start());
            } else {
                frame::finish_response(&mut self.buf, open.mark);
                self.buffered_packets += 1;
            }
        }
    }

    /// True when a flush at `now` would send something and is due: the buffer reached the
    /// target size, or its oldest point has waited the flush deadline, or a throttled snapshot
    /// is due — and never sooner than the processing interval allows.
    pub fn wants_flush(&self, now: Instant) -> bool {
        let due =
            now.saturating_duration_since(self.last_flush) >= self.settings.min_flush_interval;
        due && (self.buffer_due(now) || self.snapshot_due(now))
    }

    fn buffer_due(&self, now: Instant) -> bool {
        if self.buf.is_empty() {
            return false;
        }
        self.buf.len() >= self.settings.flush_bytes
            || self
                .oldest
                .is_none_or(|t| now.saturating_duration_since(t) >= self.settings.flush_deadline)
    }

    fn snapshot_due(&self, now: Instant) -> bool {
        self.next_snapshot.is_some_and(|t| now >= t)
    }

    /// When this encoder next needs the worker's attention, if ever.
    pub fn next_deadline(&self) -> Option<Instant> {
        let flush = (!self.buf.is_empty()).then(|| {
            let deadline = self
                .oldest
                .map_or(self.last_flush, |t| t + self.settings.flush_deadline);
            deadline.max(self.last_flush + self.settings.min_flush_interval)
        });
        match (flush, self.next_snapshot) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn emit_snapshot(&mut self, now: Instant) {
        let Some(throttle) = self.settings.throttle else {
            return;
        };
        self.next_snapshot = Some(now + throttle.interval);
        let newest = self.newest_ts;
        let latest = std::mem::take(&mut self.latest);
        for m in latest.iter().flatten() {
            let mut m = *m;
            if let Some((lag, lead)) = throttle.reasonability {
                let ts = ticks::value(m.timestamp);
                if ts < newest.saturating_sub(lag) || ts > newest.saturating_add(lead) {
                    m.value = f32::NAN;
                    m.flags |= StateFlags::BAD_TIME;
                }
            }
            self.encode(m, now);
        }
        self.latest = latest;
    }

    /// Closes the open packet and offers everything buffered to `sink`. On a full sink the bytes
    /// are dropped and counted, and the stream restarts (TSSC sequence 0, base times re-sent) so
    /// the subscriber resynchronises on the next packet.
    pub fn flush(&mut self, sink: &mut dyn PacketSink, now: Instant) -> SinkStatus {
        if self.snapshot_due(now) {
            self.emit_snapshot(now);
        }
        self.close_packet();
        if self.buf.is_empty() {
            return SinkStatus::Accepted;
        }
        self.last_flush = now;
        self.oldest = None;
        let bytes = std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(self.settings.max_payload + 64),
        );
        let len = bytes.len() as u64;
        let status = sink.offer(bytes);
        let (points, packets) = (self.buffered_points, self.buffered_packets);
        self.buffered_points = 0;
        self.buffered_packets = 0;
        match status {
            SinkStatus::Accepted => {
                SubscriptionStats::add(&self.stats.points, points);
                SubscriptionStats::add(&self.stats.packets, packets);
                SubscriptionStats::add(&self.stats.bytes, len);
            }
            SinkStatus::Full => {
                SubscriptionStats::add(&self.stats.dropped_queue_full, points);
                SubscriptionStats::add(&self.stats.stream_resets, 1);
                self.tssc.reset();
                self.resend_base = true;
            }
            SinkStatus::Closed => {}
        }
        status
    }

    /// Starts over for a newly confirmed signal index cache (wire.md §5): new TSSC encoder with
    /// sequence 0, packets flagged with the new cache slot, throttle memory cleared.
    pub fn activate(&mut self, cache_index: u8, settings: EncoderSettings) {
        self.close_packet();
        let keep = std::mem::take(&mut self.buf);
        let stats = self.stats.clone();
        let (points, packets) = (self.buffered_points, self.buffered_packets);
        *self = Self::new(settings, cache_index, stats);
        // Frames already built for the old cache are still valid for the subscriber.
        self.buf = keep;
        self.buffered_points = points;
        self.buffered_packets = packets;
    }
}

fn cache_flag(cache_index: u8) -> u8 {
    if cache_index == 1 {
        sttp_wire::packet::flags::CACHE_INDEX
    } else {
        0
    }
}
