//! Secrets kept as digests and compared without saying how much of them was right:
//! API tokens (`registry::access`) and the built-in inbox's client keys
//! (`cases::inbox::clients`) are stored as SHA-256 digests, shown and stored as hex.

use sha2::{Digest, Sha256};

/// The SHA-256 of `secret`.
pub fn sha256(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Whether two digests are equal, in time that does not depend on where they differ.
pub fn same_digest(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A digest from its 64 hex digits.
pub fn unhex(s: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_go_to_hex_and_back_and_compare_whole() {
        let (a, mut b) = (sha256("x"), sha256("x"));
        assert!(same_digest(&a, &b));
        b[31] ^= 1;
        assert!(!same_digest(&a, &b));
        assert_eq!(unhex(&hex(&a)), Some(a));
        assert_eq!(unhex("abc"), None);
        assert_eq!(
            unhex(&format!("+{}", &hex(&a)[1..])),
            None,
            "hex digits only"
        );
        assert_eq!(hex(&[0, 255]), "00ff");
    }
}
