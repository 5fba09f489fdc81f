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

/// Inflates `data`, refusing to produce more than `limit` bytes. Memory is bounded by the limit
/// too: the output grows in steps that never reserve past `limit` (plus one read chunk), so a
/// bomb (1 GiB of zeros in 1 MB) costs at most `limit` bytes and the time to inflate `limit`
/// bytes before it is refused with [`GunzipError::TooLarge`]. A truncated or corrupt stream is
/// [`GunzipError::Invalid`]. See docs/subscriber.md "Limits".
pub fn decompress(data: &[u8], limit: usize) -> Result<Vec<u8>, GunzipError> {
    const CHUNK: usize = 64 * 1024;
    let mut out: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; CHUNK];
    let mut dec = GzDecoder::new(data);
    loop {
        let n = match dec.read(&mut chunk) {
            Ok(0) => return Ok(out),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(GunzipError::Invalid(e.to_string())),
        };
        if out.len().saturating_add(n) > limit {
            return Err(GunzipError::TooLarge(limit));
        }
        if out.capacity() - out.len() < n {
            // Double, but never past the limit: no allocation beyond what may be returned.
            let target = out.capacity().saturating_mul(2).max(CHUNK).min(limit);
            out.reserve_exact(target.saturating_sub(out.len()).max(n));
        }
        out.extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
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
        // Truncated: every proper prefix fails (none inflates to the whole).
        for cut in [3, z.len() / 2, z.len() - 1] {
            assert!(
                matches!(decompress(&z[..cut], 10_000), Err(GunzipError::Invalid(_))),
                "prefix of {cut} bytes"
            );
        }
    }

    #[test]
    fn a_bomb_is_refused_at_the_limit_without_allocating_past_it() {
        // 64 MiB of zeros is ~64 KB of gzip.
        let bomb = compress(&vec![0u8; 64 << 20]);
        assert!(bomb.len() < 1 << 20);
        assert_eq!(
            decompress(&bomb, 1 << 20),
            Err(GunzipError::TooLarge(1 << 20))
        );
        // Exactly at the limit is fine, and the buffer never exceeds the limit.
        let ok = decompress(&compress(&vec![1u8; 300_000]), 300_000).unwrap();
        assert_eq!(ok.len(), 300_000);
        assert!(ok.capacity() <= 300_000 + 64 * 1024);
    }
}
