//! Evidence integrity: each evidence item of a case is chained to the one before it
//! and the first to the case record, so an altered, removed, reordered or relabelled
//! image, or a changed record of one, is found by [`verify_case`] (`gridwatch cases
//! verify`).
//!
//! The chain (version 2): `genesis = SHA-256("gridwatch evidence chain 2\n{case}\n
//! {kind}\n{cell}\n{first_seen_ms}")`, and for each item in order, with file SHA-256
//! `h`: `chain = SHA-256("{previous item's chain}\n{h}\n{camera}\n{at_ms}\n{role}")`,
//! hex (`role` as the store names it, empty for an item without one). Each item's
//! record keeps its chain; the last one is the case's chain head.
//!
//! Version 1, of cases chained before roles were: `"gridwatch evidence chain 1"` and
//! links without the role. A case keeps the version its first item was chained with
//! (its first link shows which), so its chain never mixes them; a version-1 case's
//! roles are not covered.
//!
//! What it proves, and what not: the chain is not secret, so someone who can rewrite
//! the whole store can rewrite the chain with it. The head is what makes that
//! detectable: a copy of it kept elsewhere (`cases verify` prints it; whoever archives
//! a case keeps it) no longer matches. Items stored before the chain existed are named as
//! unchained; the chain goes on past them.

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::photo::PhotoRole;
use super::{CaseStore, StoreError};

/// The chain version new cases get.
pub const VERSION: u8 = 2;

fn hex(text: &str) -> String {
    format!("{:x}", Sha256::digest(text.as_bytes()))
}

/// The chain's start: the case record's fixed fields.
pub fn genesis(version: u8, case_id: i64, kind: &str, cell: &str, first_seen_ms: i64) -> String {
    hex(&format!(
        "gridwatch evidence chain {version}\n{case_id}\n{kind}\n{cell}\n{first_seen_ms}"
    ))
}

/// The chain of an item that follows `previous`.
pub fn link(
    version: u8,
    previous: &str,
    sha256: &str,
    camera: &str,
    at_ms: i64,
    role: Option<PhotoRole>,
) -> String {
    match version {
        1 => hex(&format!("{previous}\n{sha256}\n{camera}\n{at_ms}")),
        _ => hex(&format!(
            "{previous}\n{sha256}\n{camera}\n{at_ms}\n{}",
            role.map_or("", |r| r.as_str())
        )),
    }
}

/// The version of a case's chain, from its first chained item (`None`: none yet, so
/// [`VERSION`]): 1 when that item's chain is the version-1 link from the version-1
/// genesis, else 2.
pub fn version_of(
    first: Option<(&str, &str, i64, &str)>,
    case_id: i64,
    kind: &str,
    cell: &str,
    first_seen_ms: i64,
) -> u8 {
    match first {
        Some((sha256, camera, at_ms, chain)) => {
            let g = genesis(1, case_id, kind, cell, first_seen_ms);
            if link(1, &g, sha256, camera, at_ms, None) == chain {
                1
            } else {
                2
            }
        }
        None => VERSION,
    }
}

/// What checking one case found.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CaseCheck {
    /// The case.
    pub case_id: i64,
    /// Evidence items checked.
    pub items: usize,
    /// The chain's head (the last chained item's chain; the genesis with none).
    pub head: String,
    /// The chain's version.
    pub version: u8,
    /// What does not match, each naming the item.
    pub problems: Vec<String>,
}

/// Checks a case's evidence: every image against its SHA-256, every record against
/// the chain.
pub fn verify_case(store: &dyn CaseStore, case_id: i64) -> Result<CaseCheck, StoreError> {
    let case = store.case(case_id)?;
    let items = store.evidence(case_id)?;
    let (kind, first) = (case.kind.as_str(), case.first_seen_ms);
    let first_chained = items.iter().find_map(|e| {
        let c = e.chain.as_deref()?;
        Some((e.sha256.as_str(), e.camera.as_str(), e.at_ms, c))
    });
    let version = version_of(first_chained, case.id, kind, &case.cell, first);
    let mut previous = genesis(version, case.id, kind, &case.cell, first);
    let mut problems = Vec::new();
    for e in &items {
        let name = format!("case {case_id} evidence {} ({})", e.id, e.file);
        match store.evidence_bytes(case_id, e.id)? {
            None => problems.push(format!("{name}: the image is missing")),
            Some(bytes) => {
                let sha = format!("{:x}", Sha256::digest(&bytes));
                if sha != e.sha256 {
                    problems.push(format!(
                        "{name}: the image does not match its SHA-256 (it was altered): recorded {}, found {sha}",
                        e.sha256
                    ));
                }
            }
        }
        let want = link(version, &previous, &e.sha256, &e.camera, e.at_ms, e.role);
        match &e.chain {
            None => problems.push(format!(
                "{name}: not chained (stored before evidence was chained)"
            )),
            Some(c) if *c != want => {
                problems.push(format!(
                    "{name}: its chain does not follow from the item before it or the case record (an item was removed or reordered, or this record (its time, camera or role) or the case's was changed)"
                ));
                previous = c.clone();
            }
            Some(c) => previous = c.clone(),
        }
    }
    Ok(CaseCheck {
        case_id,
        items: items.len(),
        head: previous,
        version,
        problems,
    })
}
