//! The audit log: who (a token's name and role), what (an action on a target), when,
//! and the document before and after. Camera and token writes append their entry in
//! their own transaction; reviews, written by the case store, right after.

use serde::Serialize;

use super::sql::{Tx, Val};
use super::{Actor, Registry};
use crate::cases::StoreError;

/// One entry of the audit log.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AuditEntry {
    /// Its number.
    pub id: i64,
    /// When (ms since the epoch).
    pub at_ms: i64,
    /// Who: the token's name.
    pub actor: String,
    /// With which role.
    pub role: String,
    /// What: `camera.create`, `camera.update`, `camera.delete`, `camera.enable`,
    /// `camera.disable`, `camera.import`, `token.create`, `token.revoke`, `case.review`.
    pub action: String,
    /// On what: `camera/<id>`, `token/<id>`, `case/<id>`, `cameras` (imports).
    pub target: String,
    /// The document before (absent for a creation).
    pub before: Option<serde_json::Value>,
    /// The document after (absent for a deletion).
    pub after: Option<serde_json::Value>,
}

/// Appends to the audit log.
pub(crate) fn audit(
    tx: &mut dyn Tx,
    at_ms: i64,
    actor: &Actor,
    action: &str,
    target: &str,
    before: Option<&serde_json::Value>,
    after: Option<&serde_json::Value>,
) -> Result<(), StoreError> {
    tx.exec(
        "INSERT INTO audit_log (at_ms, actor, role, action, target, before_doc, after_doc)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            at_ms.into(),
            actor.name.as_str().into(),
            actor.role.as_str().into(),
            action.into(),
            target.into(),
            before.map(|v| v.to_string()).into(),
            after.map(|v| v.to_string()).into(),
        ],
    )?;
    Ok(())
}

impl Registry {
    /// The audit log, newest first: at most `limit` from `offset`, optionally of one
    /// target; with how many there are.
    pub fn audit_log(
        &self,
        target: Option<&str>,
        limit: usize,
        offset: usize,
    ) -> Result<(Vec<AuditEntry>, u64), StoreError> {
        let (limit, offset) = (limit as i64, offset as i64);
        self.tx(|tx| {
            let (filter, params): (&str, Vec<Val>) = match target {
                Some(t) => ("WHERE target = $1", vec![t.into()]),
                None => ("", vec![]),
            };
            let total = tx
                .rows(&format!("SELECT count(*) FROM audit_log {filter}"), &params)?
                .first()
                .map_or(0, |r| r.int(0)) as u64;
            let n = params.len();
            let mut p = params;
            p.push(limit.into());
            p.push(offset.into());
            let parse = |t: Option<String>| t.and_then(|t| serde_json::from_str(&t).ok());
            let rows = tx.rows(
                &format!(
                    "SELECT id, at_ms, actor, role, action, target, before_doc, after_doc FROM audit_log {filter}
                     ORDER BY id DESC LIMIT ${} OFFSET ${}",
                    n + 1,
                    n + 2
                ),
                &p,
            )?;
            Ok((
                rows.iter()
                    .map(|r| AuditEntry {
                        id: r.int(0),
                        at_ms: r.int(1),
                        actor: r.text(2),
                        role: r.text(3),
                        action: r.text(4),
                        target: r.text(5),
                        before: parse(r.opt_text(6)),
                        after: parse(r.opt_text(7)),
                    })
                    .collect(),
                total,
            ))
        })
    }

    /// Writes one audit entry on its own (for writes made elsewhere: reviews).
    pub fn audit(
        &self,
        actor: &Actor,
        action: &str,
        target: &str,
        before: Option<&serde_json::Value>,
        after: Option<&serde_json::Value>,
    ) -> Result<(), StoreError> {
        let now = self.now_ms();
        self.tx(|tx| audit(tx, now, actor, action, target, before, after))
    }
}
