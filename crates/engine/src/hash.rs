//! FNV-1a (64-bit): the one hash function of the workspace. It names things, it protects
//! nothing: seeded random streams ([`crate::Rng::derive`]), the engine's memo keys, and, through
//! [`fingerprint`], the run hash and every key of the artefact store (`attrib-run`). It is not
//! cryptographic; a collision is astronomically unlikely for the few thousand keys a run holds,
//! and every store entry also checks its size or its metadata when read.
//!
//! Changing it changes every seeded stream (hence every training run) and every cache key: keep
//! it, bit for bit.

/// FNV-1a 64-bit offset basis.
pub const BASIS: u64 = 0xcbf2_9ce4_8422_2325;
/// FNV-1a 64-bit prime.
pub const PRIME: u64 = 0x0100_0000_01b3;

/// An FNV-1a hasher (64-bit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Fnv1a::new()
    }
}

impl Fnv1a {
    /// The hasher at the offset basis.
    pub fn new() -> Self {
        Fnv1a(BASIS)
    }

    /// Mixes in bytes, one FNV-1a step each.
    pub fn bytes(mut self, bytes: &[u8]) -> Self {
        for &b in bytes {
            self.0 = (self.0 ^ b as u64).wrapping_mul(PRIME);
        }
        self
    }

    /// Mixes in a whole 64-bit word in one FNV-1a step (faster than its 8 bytes; for in-memory
    /// keys of small integers such as shapes).
    pub fn word(mut self, w: u64) -> Self {
        self.0 = (self.0 ^ w).wrapping_mul(PRIME);
        self
    }

    /// The hash.
    pub fn finish(self) -> u64 {
        self.0
    }
}

/// FNV-1a over `parts`, each followed by the separator byte `0xff` (so `["ab", "c"]` and
/// `["a", "bc"]` differ), as 16 lowercase hex digits: the run hash and the store's keys.
pub fn fingerprint(parts: &[&[u8]]) -> String {
    let h = parts
        .iter()
        .fold(Fnv1a::new(), |h, p| h.bytes(p).bytes(&[0xff]));
    format!("{:016x}", h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // Reference values of FNV-1a 64 (Fowler, Noll, Vo: the published test vectors).
        assert_eq!(Fnv1a::new().finish(), 0xcbf2_9ce4_8422_2325);
        assert_eq!(Fnv1a::new().bytes(b"a").finish(), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(
            Fnv1a::new().bytes(b"foobar").finish(),
            0x8594_4171_f739_67e8
        );
        // A word step is the byte step applied to the whole word.
        assert_eq!(Fnv1a::new().word(b'a' as u64), Fnv1a::new().bytes(b"a"));
    }

    #[test]
    fn fingerprint_separates_parts() {
        assert_ne!(fingerprint(&[b"ab", b"c"]), fingerprint(&[b"a", b"bc"]));
        assert_eq!(fingerprint(&[b"ab", b"c"]).len(), 16);
        let manual = Fnv1a::new().bytes(b"a\xffb\xff").finish();
        assert_eq!(fingerprint(&[b"a", b"b"]), format!("{manual:016x}"));
    }
}
