//! Evidence integrity: each evidence item of a case is chained to the one before it
//! and the first to the case record, so an altered, removed or reordered image, or a
//! changed record of one, is found by [`verify_case`] (`gridwatch cases verify`).
//!
//! The chain: `genesis = SHA-256("gridwatch evidence chain 1\n{case}\n{kind}\n{cell}\n
//! {first_seen_ms}")`, and for each item in order, with image SHA-256 `h`:
//! `chain = SHA-256("{previous item's chain}\n{h}\n{camera}\n{at_ms}")`, hex.
//! Each item's record keeps its chain; the last one is the case's chain head.
//!
//! What it proves, and what not: the chain is not secret, so someone who can rewrite
//! the whole store can rewrite the chain with it. The head is what makes that
//! detectable: a copy of it kept elsewhere (`cases verify` prints it; whoever archives
//! a case keeps it) no longer matches. Items stored before the chain existed are named as
//! unchained; the chain goes on past them.

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{CaseStore, StoreError};

fn hex(text: &str) -> String {
    format!("{:x}", Sha256::digest(text.as_bytes()))
}

/// The chain's start: the case record's fixed fields.
pub fn genesis(case_id: i64, kind: &str, cell: &str, first_seen_ms: i64) -> String {
    hex(&format!(
        "gridwatch evidence chain 1\n{case_id}\n{kind}\n{cell}\n{first_seen_ms}"
    ))
}

/// The chain of an item that follows `previous`.
pub fn link(previous: &str, sha256: &str, camera: &str, at_ms: i64) -> String {
    hex(&format!("{previous}\n{sha256}\n{camera}\n{at_ms}"))
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
    /// What does not match, each naming the item.
    pub problems: Vec<String>,
}

/// Checks a case's evidence: every image against its SHA-256, every record against
/// the chain.
pub fn verify_case(store: &dyn CaseStore, case_id: i64) -> Result<CaseCheck, StoreError> {
    let case = store.case(case_id)?;
    let mut previous = genesis(case.id, case.kind.as_str(), &case.cell, case.first_seen_ms);
    let mut problems = Vec::new();
    let items = store.evidence(case_id)?;
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
        let want = link(&previous, &e.sha256, &e.camera, e.at_ms);
        match &e.chain {
            None => problems.push(format!(
                "{name}: not chained (stored before evidence was chained)"
            )),
            Some(c) if *c != want => {
                problems.push(format!(
                    "{name}: its chain does not follow from the item before it or the case record (an item was removed or reordered, or this record or the case's was changed)"
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
        problems,
    })
}
