//! A case as one zip an enforcement system can archive (`gridwatch cases export`):
//!
//! - `case.json`: the case record, its zones, sightings, reviews and deliveries;
//! - `evidence/<id>.jpg` (and any other evidence file, by its stored name): the images
//!   exactly as stored, so their SHA-256 are the store's;
//! - `chain.json`: the evidence chain ([`super::integrity`]) — its genesis, each item's
//!   SHA-256, camera, time and link, and the head — enough to recompute it without
//!   gridwatch;
//! - `manifest.json`: the format, the case, when it was exported, and every other
//!   file's path, size and SHA-256.
//!
//! Entries are stored, not deflated: JPEG and MP4 do not shrink, and any unzip reads
//! a stored entry. A case whose evidence does not verify is not exported: an archive
//! is evidence only if it matches its chain.

use std::io::{Seek, Write};

use serde::Serialize;
use sha2::{Digest, Sha256};
use zip::write::SimpleFileOptions;
use zip::CompressionMethod;

use super::integrity::{genesis, verify_case};
use super::{CaseStore, StoreError};

/// The manifest's `format`.
pub const FORMAT: &str = "gridwatch case export 1";

/// Sightings listed in `case.json` at most.
const SIGHTINGS: usize = 1000;

/// Why a case could not be exported.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The store failed (or has no such case).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The case's evidence does not verify.
    #[error("case {case}: its evidence does not verify: {}", problems.join("; "))]
    Unverified {
        /// The case.
        case: i64,
        /// What does not match.
        problems: Vec<String>,
    },
    /// The zip could not be written.
    #[error("writing the export: {0}")]
    Write(String),
}

impl From<zip::result::ZipError> for ExportError {
    fn from(e: zip::result::ZipError) -> Self {
        Self::Write(e.to_string())
    }
}

impl From<std::io::Error> for ExportError {
    fn from(e: std::io::Error) -> Self {
        Self::Write(e.to_string())
    }
}

/// One file of the export, as the manifest lists it.
#[derive(Debug, Clone, Serialize)]
pub struct ManifestFile {
    /// Path in the zip.
    pub path: String,
    /// Its size.
    pub bytes: u64,
    /// Its SHA-256, hex.
    pub sha256: String,
}

/// What was exported.
#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: &'static str,
    /// The case.
    pub case_id: i64,
    /// When it was exported, ms since the Unix epoch.
    pub exported_ms: i64,
    /// The evidence chain's head (what an archive keeps to check the case later).
    pub chain_head: String,
    /// Every other file of the zip.
    pub files: Vec<ManifestFile>,
}

#[derive(Serialize)]
struct ChainItem<'a> {
    id: i64,
    file: &'a str,
    sha256: &'a str,
    camera: &'a str,
    at_ms: i64,
    role: Option<super::photo::PhotoRole>,
    chain: Option<&'a str>,
}

fn zip_time(ms: i64) -> zip::DateTime {
    use chrono::{Datelike, Timelike};
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.naive_utc())
        .and_then(|t| {
            zip::DateTime::from_date_and_time(
                t.year().clamp(1980, 2107) as u16,
                t.month() as u8,
                t.day() as u8,
                t.hour() as u8,
                t.minute() as u8,
                t.second() as u8,
            )
            .ok()
        })
        .unwrap_or_default()
}

struct Zip<W: Write + Seek> {
    zip: zip::ZipWriter<W>,
    files: Vec<ManifestFile>,
}

impl<W: Write + Seek> Zip<W> {
    fn add(&mut self, path: &str, at_ms: i64, bytes: &[u8]) -> Result<(), ExportError> {
        let options = SimpleFileOptions::default()
            .compression_method(CompressionMethod::Stored)
            .last_modified_time(zip_time(at_ms))
            .unix_permissions(0o644);
        self.zip.start_file(path, options)?;
        self.zip.write_all(bytes)?;
        self.files.push(ManifestFile {
            path: path.to_string(),
            bytes: bytes.len() as u64,
            sha256: format!("{:x}", Sha256::digest(bytes)),
        });
        Ok(())
    }
}

/// Writes case `case_id` as a zip to `out`; `now_ms` is the export's time. Fails
/// without writing a usable archive if the case's evidence does not verify.
pub fn write_zip<W: Write + Seek>(
    store: &dyn CaseStore,
    case_id: i64,
    now_ms: i64,
    out: W,
) -> Result<Manifest, ExportError> {
    let check = verify_case(store, case_id)?;
    if !check.problems.is_empty() {
        return Err(ExportError::Unverified {
            case: case_id,
            problems: check.problems,
        });
    }
    let case = store.case(case_id)?;
    let evidence = store.evidence(case_id)?;
    let deliveries = store.deliveries(Some(case_id))?;
    let (remote_id, _token) = store.remote(case_id)?;
    let doc = serde_json::json!({
        "case": case,
        "remote_id": remote_id,
        "zones": store.case_zones(case_id)?,
        "evidence": evidence,
        "sightings": store.sightings(case_id, SIGHTINGS)?,
        "reviews": store.reviews(case_id)?,
        "deliveries": deliveries,
    });
    let rule = match check.version {
        1 => "genesis = sha256(\"gridwatch evidence chain 1\\n{case_id}\\n{kind}\\n{cell}\\n{first_seen_ms}\"); \
              chain = sha256(\"{previous chain}\\n{sha256}\\n{camera}\\n{at_ms}\"), lowercase hex",
        _ => "genesis = sha256(\"gridwatch evidence chain 2\\n{case_id}\\n{kind}\\n{cell}\\n{first_seen_ms}\"); \
              chain = sha256(\"{previous chain}\\n{sha256}\\n{camera}\\n{at_ms}\\n{role}\") (role empty when null), lowercase hex",
    };
    let chain = serde_json::json!({
        "version": check.version,
        "rule": rule,
        "genesis": genesis(check.version, case.id, case.kind.as_str(), &case.cell, case.first_seen_ms),
        "items": evidence.iter().map(|e| ChainItem {
            id: e.id,
            file: &e.file,
            sha256: &e.sha256,
            camera: &e.camera,
            at_ms: e.at_ms,
            role: e.role,
            chain: e.chain.as_deref(),
        }).collect::<Vec<_>>(),
        "head": check.head,
    });
    let mut zip = Zip {
        zip: zip::ZipWriter::new(out),
        files: Vec::new(),
    };
    zip.add(
        "case.json",
        now_ms,
        &serde_json::to_vec_pretty(&doc).expect("json"),
    )?;
    for e in &evidence {
        // verified just now; gone since is a store failure, not a silent hole
        let bytes = store
            .evidence_bytes(case_id, e.id)?
            .ok_or_else(|| StoreError::Io {
                path: e.file.clone(),
                message: "removed while exporting".into(),
            })?;
        zip.add(&e.file, e.at_ms, &bytes)?;
    }
    zip.add(
        "chain.json",
        now_ms,
        &serde_json::to_vec_pretty(&chain).expect("json"),
    )?;
    let manifest = Manifest {
        format: FORMAT,
        case_id,
        exported_ms: now_ms,
        chain_head: check.head,
        files: std::mem::take(&mut zip.files),
    };
    let mut z = zip.zip;
    let options = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Stored)
        .last_modified_time(zip_time(now_ms));
    z.start_file("manifest.json", options)?;
    z.write_all(&serde_json::to_vec_pretty(&manifest).expect("json"))?;
    z.finish()?;
    Ok(manifest)
}
