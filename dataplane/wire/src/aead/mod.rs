//! Authenticated UDP datagrams: our extension for the UDP data channel (wire.md §8, carried per
//! §11), spoken only between our own peers and negotiated with the `sttpExt={udpCipher=…}`
//! connection-string key and the key messages of `sttp_proto::ext`.
//!
//! Why not the STTP cipher: the gsfapi scheme (AES-CBC, one IV per key, see
//! [`crate::legacy_cbc`]) has no integrity and no replay protection. Here each datagram is
//!
//! ```text
//! header (magic 0xA5, u32 epoch, u64 sequence) ‖ AES-256-GCM(bare response body) ‖ 16-byte tag
//! ```
//!
//! with the header as AAD and the nonce `0000 ‖ sequence` (layout: [`format`]). Every epoch has
//! its own fresh random key ([`generate_key`]) and the sender never reuses a sequence under a
//! key ([`SealingKey`] refuses to wrap), so no (key, nonce) pair ever repeats. The receiver
//! ([`Keyring`]) checks the per-epoch [`ReplayWindow`] before authenticating, updates it only
//! after, and keeps previous/current/next keys so that rotation loses nothing.
//!
//! Sans-IO: keys, bytes and the time in milliseconds come in as arguments.

pub mod format;
pub mod keyring;
pub mod open;
pub mod replay;
pub mod seal;

pub use format::{Header, HEADER_LEN, MAGIC, OVERHEAD, TAG_LEN};
pub use keyring::{InstallError, Keyring, KeyringStats, DEFAULT_GRACE_MS};
pub use open::{OpenError, Opened};
pub use replay::{ReplayError, ReplayWindow};
pub use seal::{generate_key, KeyGenError, SealError, SealingKey, KEY_LEN};
