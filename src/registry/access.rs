//! Who may do what: three roles, and API tokens that carry one.
//!
//! - **viewer**: read cases, evidence, cameras and their frames;
//! - **reviewer**: a viewer who may also confirm and reject cases;
//! - **admin**: a reviewer who may also change cameras, zones, calibration and tokens,
//!   and read the audit log.
//!
//! A token is `gw_<id>_<secret>`: the id (public, 8 hex digits) finds it, the secret
//! (32 random bytes, base64url) proves it. The store keeps only the secret's SHA-256;
//! a presented token's digest is compared with it in constant time. An admin creates
//! and revokes tokens (`gridwatch tokens`, `/api/tokens`); the token itself is shown
//! once, when it is made. The config's `api.token` (or `api.token_env`) is an admin
//! token too, named `config-token`, for bootstrapping.

use std::collections::HashMap;
use std::sync::RwLock;

use base64::Engine;
use rand::RngCore;
use serde::{Deserialize, Serialize};

use super::{audit, Registry, RegistryError};
use crate::cases::StoreError;

/// A role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads cases, evidence, cameras and frames.
    Viewer,
    /// Also confirms and rejects cases.
    Reviewer,
    /// Also changes cameras, zones, calibration and tokens; reads the audit log.
    Admin,
}

impl Role {
    /// Every role, least first.
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Reviewer, Role::Admin];

    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Reviewer => "reviewer",
            Role::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("{s:?} is not a role (viewer, reviewer or admin)"))
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who makes a call: a token's name and role (or the built-in actors).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Actor {
    /// The token's name (`anonymous` without a token, where the config opens reads or
    /// writes; `config-token` for `api.token`; `config` and `cli` for the service's and
    /// the command line's own writes).
    pub name: String,
    /// Its role.
    pub role: Role,
    /// The token's id, for a stored token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

impl Actor {
    /// An actor that is not a token: the service itself, or the command line (which
    /// reaches the store directly, so it is an admin).
    pub fn system(name: &str) -> Self {
        Self {
            name: name.into(),
            role: Role::Admin,
            token: None,
        }
    }
}

/// A stored token, without its secret.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TokenInfo {
    /// Its id (the part after `gw_`).
    pub id: String,
    /// Its name (who holds it).
    pub name: String,
    /// Its role.
    pub role: Role,
    /// When it was made.
    pub created_ms: i64,
    /// Who made it.
    pub created_by: String,
    /// When it was revoked.
    pub revoked_ms: Option<i64>,
}

use crate::secret::{hex, same_digest, sha256 as digest, unhex};

/// Splits `gw_<id>_<secret>`.
fn split(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix("gw_")?;
    let (id, secret) = rest.split_once('_')?;
    (id.len() == 8 && id.bytes().all(|b| b.is_ascii_hexdigit()) && !secret.is_empty())
        .then_some((id, secret))
}

/// A token's name: 1 to 100 characters of text.
fn check_name(name: &str) -> Result<(), RegistryError> {
    if name.trim().is_empty() {
        return Err(RegistryError::Invalid(vec![
            "name: 1 to 100 characters".into()
        ]));
    }
    crate::cases::text::check("name", name, 100, false).map_err(|e| RegistryError::Invalid(vec![e]))
}

impl Registry {
    /// Makes a token; returns it (the only time its secret is seen) and its record.
    pub fn create_token(
        &self,
        actor: &Actor,
        name: &str,
        role: Role,
    ) -> Result<(String, TokenInfo), RegistryError> {
        check_name(name)?;
        let mut rng = rand::rng();
        let mut id = [0u8; 4];
        let mut secret = [0u8; 32];
        rng.fill_bytes(&mut id);
        rng.fill_bytes(&mut secret);
        let id = hex(&id);
        let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret);
        let now = self.now_ms();
        let info = TokenInfo {
            id: id.clone(),
            name: name.to_string(),
            role,
            created_ms: now,
            created_by: actor.name.clone(),
            revoked_ms: None,
        };
        self.tx(|tx| {
            tx.exec(
                "INSERT INTO api_tokens (id, name, role, hash, created_ms, created_by) VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    id.as_str().into(),
                    name.into(),
                    role.as_str().into(),
                    hex(&digest(&secret)).into(),
                    now.into(),
                    actor.name.as_str().into(),
                ],
            )?;
            let doc = serde_json::to_value(&info).unwrap_or_default();
            audit(tx, now, actor, "token.create", &format!("token/{id}"), None, Some(&doc))
        })?;
        Ok((format!("gw_{id}_{secret}"), info))
    }

    /// Every token, newest first.
    pub fn tokens(&self) -> Result<Vec<TokenInfo>, StoreError> {
        self.tx(|tx| {
            Ok(tx
                .rows(
                    "SELECT id, name, role, created_ms, created_by, revoked_ms FROM api_tokens ORDER BY created_ms DESC, id",
                    &[],
                )?
                .iter()
                .filter_map(|r| {
                    Some(TokenInfo {
                        id: r.text(0),
                        name: r.text(1),
                        role: r.text(2).parse().ok()?,
                        created_ms: r.int(3),
                        created_by: r.text(4),
                        revoked_ms: r.opt_int(5),
                    })
                })
                .collect())
        })
    }

    /// Revokes a token (at once on this node; on the others at their next poll).
    pub fn revoke_token(&self, actor: &Actor, id: &str) -> Result<(), RegistryError> {
        let now = self.now_ms();
        let done = self.tx(|tx| {
            let n = tx.exec(
                "UPDATE api_tokens SET revoked_ms = $2 WHERE id = $1 AND revoked_ms IS NULL",
                &[id.into(), now.into()],
            )?;
            if n == 1 {
                audit(
                    tx,
                    now,
                    actor,
                    "token.revoke",
                    &format!("token/{id}"),
                    None,
                    None,
                )?;
            }
            Ok(n == 1)
        })?;
        if done {
            Ok(())
        } else {
            Err(RegistryError::NotFound(format!("token {id}")))
        }
    }

    /// The tokens in force, as the API checks them.
    fn live_tokens(&self) -> Result<HashMap<String, Known>, StoreError> {
        self.tx(|tx| {
            Ok(tx
                .rows(
                    "SELECT id, name, role, hash FROM api_tokens WHERE revoked_ms IS NULL",
                    &[],
                )?
                .iter()
                .filter_map(|r| {
                    Some((
                        r.text(0),
                        Known {
                            name: r.text(1),
                            role: r.text(2).parse().ok()?,
                            hash: unhex(&r.text(3))?,
                        },
                    ))
                })
                .collect())
        })
    }
}

#[derive(Debug, Clone)]
struct Known {
    name: String,
    role: Role,
    hash: [u8; 32],
}

/// The tokens in force, in memory: the API checks a request against it without a
/// question to the store. [`Tokens::refresh`] reads them again (the service does at
/// every registry poll, and at once after a token is made or revoked on this node).
#[derive(Default)]
pub struct Tokens {
    known: RwLock<HashMap<String, Known>>,
    /// `api.token`'s digest: an admin named `config-token`.
    root: Option<[u8; 32]>,
    /// When a token not known here last made this node read the tokens again.
    asked: std::sync::Mutex<Option<std::time::Instant>>,
}

/// How often a token this node does not know (made a moment ago on another node or on
/// the command line) may make it read the tokens again: an unknown token never costs
/// the store more than one read a second.
const UNKNOWN_REFRESH: std::time::Duration = std::time::Duration::from_secs(1);

impl Tokens {
    /// No tokens but `root` (the config's `api.token`), until refreshed.
    pub fn new(root: Option<&str>) -> Self {
        Self {
            known: RwLock::default(),
            root: root.filter(|t| !t.trim().is_empty()).map(digest),
            asked: std::sync::Mutex::new(None),
        }
    }

    /// Reads the tokens in force from the registry.
    pub fn refresh(&self, registry: &Registry) -> Result<(), StoreError> {
        let live = registry.live_tokens()?;
        *self.known.write().unwrap_or_else(|p| p.into_inner()) = live;
        Ok(())
    }

    /// Whether any token could be accepted (a stored one, or the config's).
    pub fn any(&self) -> bool {
        self.root.is_some()
            || !self
                .known
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .is_empty()
    }

    /// Whether `presented` is shaped as a stored token whose id this node does not know
    /// and the tokens may be read again for it now (at most once a second).
    pub fn worth_asking(&self, presented: &str) -> bool {
        let Some((id, _)) = split(presented) else {
            return false;
        };
        if self
            .known
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&id.to_ascii_lowercase())
        {
            return false;
        }
        let mut asked = self.asked.lock().unwrap_or_else(|p| p.into_inner());
        if asked.is_some_and(|t| t.elapsed() < UNKNOWN_REFRESH) {
            return false;
        }
        *asked = Some(std::time::Instant::now());
        true
    }

    /// The actor a presented token is, if it is one in force.
    pub fn check(&self, presented: &str) -> Option<Actor> {
        if let Some((id, secret)) = split(presented) {
            let known = self.known.read().unwrap_or_else(|p| p.into_inner());
            if let Some(k) = known.get(&id.to_ascii_lowercase()) {
                if same_digest(&digest(secret), &k.hash) {
                    return Some(Actor {
                        name: k.name.clone(),
                        role: k.role,
                        token: Some(id.to_string()),
                    });
                }
                return None;
            }
        }
        let root = self.root.as_ref()?;
        same_digest(&digest(presented), root).then(|| Actor {
            name: "config-token".into(),
            role: Role::Admin,
            token: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_order_and_parse() {
        assert!(Role::Viewer < Role::Reviewer && Role::Reviewer < Role::Admin);
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>(), Ok(r));
        }
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn tokens_are_split_and_digests_compared_whole() {
        assert_eq!(split("gw_0a1b2c3d_secret"), Some(("0a1b2c3d", "secret")));
        for bad in [
            "gw_0a1b2c3_x",
            "gw_0a1b2c3d_",
            "xx_0a1b2c3d_s",
            "gw_zzzzzzzz_s",
        ] {
            assert_eq!(split(bad), None, "{bad}");
        }
        let t = Tokens::new(Some("root-secret"));
        assert_eq!(t.check("root-secret").unwrap().role, Role::Admin);
        assert!(t.check("root-secre").is_none());
        assert!(
            Tokens::new(Some("  ")).check("  ").is_none(),
            "an empty token is none"
        );
    }

    #[test]
    fn an_unknown_token_asks_the_store_at_most_once_a_second() {
        let t = Tokens::new(None);
        assert!(!t.worth_asking("not-a-token"), "only stored tokens' shape");
        assert!(t.worth_asking("gw_0a1b2c3d_x"));
        assert!(!t.worth_asking("gw_0a1b2c3d_x"));
        assert!(
            !t.worth_asking("gw_99999999_y"),
            "every unknown id shares the limit"
        );
    }
}
