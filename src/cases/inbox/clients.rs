//! Who may write to the inbox: clients, each a name and the SHA-256 of its API key.
//!
//! The key itself is never stored: a client is configured with the hash
//! (`gridwatch inbox --client NAME:SHA256`, or `--client-env NAME=VAR` to read the key
//! from the environment and hash it at start), and a request names its client by
//! sending the key — as GeoReport v2's `api_key` form field, an `X-Api-Key` header, or
//! `Authorization: Bearer KEY`. Keys are compared by their hashes, every client's in
//! full, so the time taken says nothing about how much of a key was right.

use crate::secret::{hex, same_digest, sha256};

/// One client of the inbox.
#[derive(Clone, PartialEq, Eq)]
pub struct InboxClient {
    /// Its name: recorded with each request and follow-up it sends; idempotency keys
    /// are scoped to it.
    pub name: String,
    key_sha256: [u8; 32],
}

impl std::fmt::Debug for InboxClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InboxClient")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl InboxClient {
    /// A client whose key is `key`.
    pub fn with_key(name: &str, key: &str) -> Self {
        Self {
            name: name.to_string(),
            key_sha256: sha256(key),
        }
    }

    /// A client given as `NAME:SHA256` (64 hex digits): what `--client` takes.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let (name, hex) = spec
            .split_once(':')
            .ok_or_else(|| format!("`{spec}` is not NAME:SHA256"))?;
        check_name(name)?;
        let key_sha256 = crate::secret::unhex(hex.trim()).ok_or_else(|| {
            format!(
                "client {name}: the key's SHA-256 must be 64 hex digits (`gridwatch inbox --new-client {name}` makes a key and prints it)"
            )
        })?;
        Ok(Self {
            name: name.to_string(),
            key_sha256,
        })
    }

    /// The `NAME:SHA256` line for this client.
    pub fn spec(&self) -> String {
        format!("{}:{}", self.name, hex(&self.key_sha256))
    }
}

/// Client names: letters, digits, `-`, `_`, `.`, 1 to 64 characters.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "client name `{name}`: use 1 to 64 letters, digits, `-`, `_` or `.`"
        ))
    }
}

/// A new random API key (256 bits, hex).
pub fn new_key() -> String {
    hex(&rand::random::<[u8; 32]>())
}

/// The client whose key `key` is, if any. Every client's hash is compared in full.
pub fn authenticate<'a>(clients: &'a [InboxClient], key: &str) -> Option<&'a InboxClient> {
    let h = sha256(key);
    let mut found = None;
    for c in clients {
        if same_digest(&c.key_sha256, &h) && found.is_none() {
            found = Some(c);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_known_by_their_hash_only() {
        let key = new_key();
        assert_eq!(key.len(), 64);
        let a = InboxClient::with_key("gridwatch", &key);
        let b = InboxClient::parse(&a.spec()).unwrap();
        assert_eq!(a, b);
        assert!(!format!("{a:?}").contains(&key[..8]), "Debug shows no key");
        let clients = [InboxClient::with_key("other", "k2"), b];
        assert_eq!(authenticate(&clients, &key).unwrap().name, "gridwatch");
        assert_eq!(authenticate(&clients, "k2").unwrap().name, "other");
        assert!(authenticate(&clients, "").is_none());
        assert!(authenticate(&clients, &key[..63]).is_none());
        assert!(authenticate(&[], &key).is_none());
    }

    #[test]
    fn bad_client_specs_say_what_is_wrong() {
        assert!(InboxClient::parse("nohash")
            .unwrap_err()
            .contains("NAME:SHA256"));
        assert!(InboxClient::parse("a:1234").unwrap_err().contains("64 hex"));
        assert!(InboxClient::parse(&format!("bad name:{}", "0".repeat(64)))
            .unwrap_err()
            .contains("client name"));
        assert!(InboxClient::parse(&format!("ok:{}", "z".repeat(64))).is_err());
    }
}
