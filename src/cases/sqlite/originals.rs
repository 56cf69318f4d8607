//! The SQLite store's unblurred originals ([`crate::cases::originals`]): in the
//! database file, beside their evidence items, deleted with them.

use rusqlite::{params, OptionalExtension};

use super::SqliteStore;
use crate::cases::originals::OriginalStore;
use crate::cases::StoreError;

impl OriginalStore for SqliteStore {
    fn add_original(
        &self,
        case_id: i64,
        evidence_id: i64,
        at_ms: i64,
        jpeg: &[u8],
    ) -> Result<(), StoreError> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        conn.execute(
            "INSERT INTO evidence_original (evidence_id, case_id, at_ms, jpeg)
             SELECT id, case_id, ?3, ?4 FROM evidence WHERE id = ?1 AND case_id = ?2
             ON CONFLICT (evidence_id) DO NOTHING",
            params![evidence_id, case_id, at_ms, jpeg],
        )
        .map_err(|e| self.err(e))?;
        Ok(())
    }

    fn original_jpeg(&self, case_id: i64, evidence_id: i64) -> Result<Option<Vec<u8>>, StoreError> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        conn.query_row(
            "SELECT jpeg FROM evidence_original WHERE evidence_id = ?1 AND case_id = ?2",
            params![evidence_id, case_id],
            |r| r.get(0),
        )
        .optional()
        .map_err(|e| self.err(e))
    }

    fn originals(&self, case_id: i64) -> Result<Vec<i64>, StoreError> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let mut stmt = conn
            .prepare_cached(
                "SELECT evidence_id FROM evidence_original WHERE case_id = ?1 ORDER BY evidence_id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([case_id], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    fn prune_originals(&self, before_ms: i64) -> Result<u64, StoreError> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        conn.execute(
            "DELETE FROM evidence_original WHERE at_ms < ?1",
            [before_ms],
        )
        .map(|n| n as u64)
        .map_err(|e| self.err(e))
    }
}
