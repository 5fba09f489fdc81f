//! gzip (RFC 1952) for metadata and signal index caches (wire.md §2, §5, §7), with a bound on the
//! inflated size so a small hostile payload cannot exhaust memory.

use flate2::{read::GzDecoder, write::GzEncoder, Compression};
use std::io::{Read, Write};

/// The two magic bytes every gzip member starts with.
pub const MAGIC: [u8; 2] = [0x1F, 0x8B];

/// True when `data` starts with the gzip magic; subscribers sniff it as well as trusting their
/// own requested flags (wire.md §2).
pub fn is_gzip(data: &[u8]) -> bool {
    data.starts_with(&MAGIC)
}

/// Compresses `data` at the default level.
pub fn compress(data: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(
        Vec::with_capacity(data.len() / 4 + 64),
        Compression::default(),
    );
    // Writing into a Vec cannot fail.
    let _ = enc.write_all(data);
    enc.finish().unwrap_or_default()
}

/// Why inflating failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GunzipError {
    /// The stream was not valid gzip.
    #[error("invalid gzip data: {0}")]
    Invalid(String),
    /// The inflated size passed the limit.
    #[error("gzip data inflates past the limit of {0} bytes")]
    TooLarge(usize),
}

/// Inflates `data`, refusing to produce more than `limit` bytes.
pub fn decompress(data: &[u8], limit: usize) -> Result<Vec<u8>, GunzipError> {
    let mut out = Vec::new();
    let mut dec = GzDecoder::new(data).take(limit as u64 + 1);
    dec.read_to_end(&mut out)
        .map_err(|e| GunzipError::Invalid(e.to_string()))?;
    if out.len() > limit {
        return Err(GunzipError::TooLarge(limit));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_limit() {
        let data = vec![7u8; 10_000];
        let z = compress(&data);
        assert!(is_gzip(&z));
        assert_eq!(decompress(&z, 10_000).unwrap(), data);
        assert_eq!(decompress(&z, 9_999), Err(GunzipError::TooLarge(9_999)));
        assert!(matches!(
            decompress(b"\x1f\x8bjunk", 100),
            Err(GunzipError::Invalid(_))
        ));
    }
}
