//! The operational-modes word of DefineOperationalModes 0x06 (wire.md §2): version, legacy
//! compression-mode bits, string encoding, extension byte, metadata scope and compression flags.

use crate::encoding::StringEncoding;
use core::fmt;

/// Named masks of the operational-modes word (wire.md §2 bit table).
pub mod bits {
    /// VersionMask of cppapi/pyapi; publishers read the version through
    /// [`PRE_STANDARD_VERSION_MASK`].
    pub const VERSION_MASK: u32 = 0x0000_00FF;
    /// The bits publishers (and gsfapi's VersionMask) take the version from.
    pub const PRE_STANDARD_VERSION_MASK: u32 = 0x0000_001F;
    /// Legacy compression-mode bits (gsfapi).
    pub const COMPRESSION_MODE_MASK: u32 = 0x0000_00E0;
    /// Legacy compression mode: gzip.
    pub const GZIP: u32 = 0x0000_0020;
    /// Legacy compression mode: TSSC.
    pub const TSSC: u32 = 0x0000_0040;
    /// String encoding bits, see [`crate::encoding::StringEncoding`].
    pub const ENCODING_MASK: u32 = 0x0000_0300;
    /// ImplementationSpecificExtensionMask: a non-zero byte announces an extension (wire.md §11).
    pub const EXTENSION_MASK: u32 = 0x00FF_0000;
    /// Bit position of the extension byte.
    pub const EXTENSION_SHIFT: u32 = 16;
    /// ReceiveExternalMetadata (honoured by gsfapi only).
    pub const RECEIVE_EXTERNAL_METADATA: u32 = 0x0200_0000;
    /// ReceiveInternalMetadata (honoured by gsfapi only).
    pub const RECEIVE_INTERNAL_METADATA: u32 = 0x0400_0000;
    /// CompressPayloadData: TSSC for data packets.
    pub const COMPRESS_PAYLOAD_DATA: u32 = 0x2000_0000;
    /// CompressSignalIndexCache: gzip the 0x83 body.
    pub const COMPRESS_SIGNAL_INDEX_CACHE: u32 = 0x4000_0000;
    /// CompressMetadata: gzip the metadata XML.
    pub const COMPRESS_METADATA: u32 = 0x8000_0000;
}

/// The operational-modes `u32` a subscriber sends first (wire.md §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct OperationalModes(pub u32);

impl OperationalModes {
    /// The protocol version, read through the 0x1F mask like every publisher does.
    pub const fn version(self) -> u8 {
        (self.0 & bits::PRE_STANDARD_VERSION_MASK) as u8
    }

    /// The string encoding selected by bits 0x300.
    pub const fn encoding(self) -> StringEncoding {
        StringEncoding::from_modes(self.0)
    }

    const fn has(self, mask: u32) -> bool {
        self.0 & mask == mask
    }

    /// CompressPayloadData (0x20000000).
    pub const fn compress_payload(self) -> bool {
        self.has(bits::COMPRESS_PAYLOAD_DATA)
    }

    /// CompressSignalIndexCache (0x40000000).
    pub const fn compress_signal_index_cache(self) -> bool {
        self.has(bits::COMPRESS_SIGNAL_INDEX_CACHE)
    }

    /// CompressMetadata (0x80000000).
    pub const fn compress_metadata(self) -> bool {
        self.has(bits::COMPRESS_METADATA)
    }

    /// Legacy GZip compression-mode bit (0x20).
    pub const fn gzip_bit(self) -> bool {
        self.has(bits::GZIP)
    }

    /// Legacy TSSC compression-mode bit (0x40).
    pub const fn tssc_bit(self) -> bool {
        self.has(bits::TSSC)
    }

    /// ReceiveExternalMetadata (0x02000000).
    pub const fn receive_external_metadata(self) -> bool {
        self.has(bits::RECEIVE_EXTERNAL_METADATA)
    }

    /// ReceiveInternalMetadata (0x04000000).
    pub const fn receive_internal_metadata(self) -> bool {
        self.has(bits::RECEIVE_INTERNAL_METADATA)
    }

    /// The implementation-specific extension byte, `(modes >> 16) & 0xFF`; 0 means none.
    pub const fn extension(self) -> u8 {
        ((self.0 & bits::EXTENSION_MASK) >> bits::EXTENSION_SHIFT) as u8
    }

    /// Publisher decision: encode data packets with TSSC iff CompressPayloadData **and** the
    /// legacy TSSC bit 0x40 are set, as the cppapi and gsfapi publishers decide (wire.md §2).
    ///
    /// Deliberately stricter than the pyapi publisher (high bit only): every stock subscriber
    /// that wants TSSC sets both bits, while older GSF subscribers used CompressPayloadData with
    /// only the GZip mode to mean something else. The session still turns TSSC off for a UDP
    /// data channel (wire.md §8).
    pub const fn use_tssc(self) -> bool {
        self.compress_payload() && self.tssc_bit()
    }

    /// Publisher decision: gzip the signal index cache iff CompressSignalIndexCache **and** the
    /// legacy GZip bit 0x20 are set (cppapi/gsfapi rule, wire.md §2).
    ///
    /// Not the lenient pyapi rule: the .NET subscriber gunzips only when *both* bits are set
    /// (GSF `DataSubscriber.DeserializeMetadata` checks `CompressMetadata && mode == GZip`), and
    /// its default modes `0xC4000002` carry the Compress bits without GZip, so gzipping on the
    /// high bit alone would break it. pyapi, cppapi and goapi subscribers always set 0x20.
    pub const fn gzip_signal_index_cache(self) -> bool {
        self.compress_signal_index_cache() && self.gzip_bit()
    }

    /// Publisher decision: gzip metadata iff CompressMetadata **and** GZip 0x20 are set; see
    /// [`OperationalModes::gzip_signal_index_cache`] for why not the pyapi rule.
    pub const fn gzip_metadata(self) -> bool {
        self.compress_metadata() && self.gzip_bit()
    }

    /// What a stock subscriber sends (wire.md §2 defaults table): `version`, the encoding bits,
    /// the legacy GZip bit, CompressSignalIndexCache and CompressMetadata, plus TSSC (0x40 and
    /// CompressPayloadData) when `tssc`. Gives `0xE0000262` for `(2, true, Utf8)` and
    /// `0xC0000222` for `(2, false, Utf8)`.
    pub const fn subscriber(version: u8, tssc: bool, encoding: StringEncoding) -> Self {
        let mut m = (version as u32 & bits::PRE_STANDARD_VERSION_MASK)
            | encoding.bits()
            | bits::GZIP
            | bits::COMPRESS_SIGNAL_INDEX_CACHE
            | bits::COMPRESS_METADATA;
        if tssc {
            m |= bits::TSSC | bits::COMPRESS_PAYLOAD_DATA;
        }
        Self(m)
    }

    /// The same modes with the extension byte replaced (wire.md §11 item 3).
    pub const fn with_extension(self, ext: u8) -> Self {
        Self((self.0 & !bits::EXTENSION_MASK) | ((ext as u32) << bits::EXTENSION_SHIFT))
    }
}

impl fmt::Display for OperationalModes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "0x{:08X} (v{}, {}, tssc={}, gzip cache={}, gzip metadata={})",
            self.0,
            self.version(),
            self.encoding().name(),
            self.use_tssc(),
            self.gzip_signal_index_cache(),
            self.gzip_metadata()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stock_subscriber_defaults() {
        assert_eq!(
            OperationalModes::subscriber(2, true, StringEncoding::Utf8).0,
            0xE000_0262
        );
        assert_eq!(
            OperationalModes::subscriber(2, false, StringEncoding::Utf8).0,
            0xC000_0222
        );
    }

    #[test]
    fn python_default_fields() {
        let m = OperationalModes(0xE000_0262);
        assert_eq!(m.version(), 2);
        assert_eq!(m.encoding(), StringEncoding::Utf8);
        assert!(m.compress_payload() && m.compress_signal_index_cache() && m.compress_metadata());
        assert!(m.gzip_bit() && m.tssc_bit());
        assert_eq!(m.extension(), 0);
        assert!(!m.receive_external_metadata() && !m.receive_internal_metadata());
    }

    #[test]
    fn gsfapi_default_gets_no_gzip_and_utf16() {
        let m = OperationalModes(0xC400_0002);
        assert_eq!(m.encoding(), StringEncoding::Utf16Le);
        assert!(!m.gzip_bit() && m.compress_metadata());
        assert!(!m.gzip_metadata() && !m.gzip_signal_index_cache() && !m.use_tssc());
        let py = OperationalModes(0xE000_0262);
        assert!(py.gzip_metadata() && py.gzip_signal_index_cache() && py.use_tssc());
        assert!(!OperationalModes(0x2000_0222).use_tssc());
        assert!(m.receive_internal_metadata());
    }

    #[test]
    fn extension_byte() {
        let m = OperationalModes(0xE000_0262).with_extension(0xA5);
        assert_eq!(m.0, 0xE0A5_0262);
        assert_eq!(m.extension(), 0xA5);
        assert_eq!(m.with_extension(0), OperationalModes(0xE000_0262));
    }
}
