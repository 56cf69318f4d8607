//! The PostgreSQL store's unblurred originals ([`crate::cases::originals`]): in the
//! database, for every node to serve, deleted with their evidence items.

use super::PgStore;
use crate::cases::originals::OriginalStore;
use crate::cases::StoreError;

impl OriginalStore for PgStore {
    fn add_original(
        &self,
        case_id: i64,
        evidence_id: i64,
        at_ms: i64,
        jpeg: &[u8],
    ) -> Result<(), StoreError> {
        let mut client = self.conn()?;
        client
            .execute(
                "INSERT INTO evidence_original (evidence_id, case_id, at_ms, jpeg)
                 SELECT id, case_id, $3, $4 FROM evidence WHERE id = $1 AND case_id = $2
                 ON CONFLICT (evidence_id) DO NOTHING",
                &[&evidence_id, &case_id, &at_ms, &jpeg],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    fn original_jpeg(&self, case_id: i64, evidence_id: i64) -> Result<Option<Vec<u8>>, StoreError> {
        let mut client = self.conn()?;
        Ok(client
            .query_opt(
                "SELECT jpeg FROM evidence_original WHERE evidence_id = $1 AND case_id = $2",
                &[&evidence_id, &case_id],
            )
            .map_err(|e| self.err(e))?
            .map(|r| r.get(0)))
    }

    fn originals(&self, case_id: i64) -> Result<Vec<i64>, StoreError> {
        let mut client = self.conn()?;
        Ok(client
            .query(
                "SELECT evidence_id FROM evidence_original WHERE case_id = $1 ORDER BY evidence_id",
                &[&case_id],
            )
            .map_err(|e| self.err(e))?
            .iter()
            .map(|r| r.get(0))
            .collect())
    }

    fn prune_originals(&self, before_ms: i64) -> Result<u64, StoreError> {
        let mut client = self.conn()?;
        client
            .execute(
                "DELETE FROM evidence_original WHERE at_ms < $1",
                &[&before_ms],
            )
            .map_err(|e| self.err(e))
    }
}
