//! The inbox's store: `inbox.sqlite`, requests and their follow-ups, each with the
//! client that sent it; idempotency keys are unique per client.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::Serialize;

use super::form::Form;
use crate::cases::{now_ms, StoreError};

/// What became of a follow-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Updated {
    /// Stored.
    Stored,
    /// A repeat of one this client sent under the same key: counted, not stored again.
    Repeat,
    /// There is no such request.
    NoRequest,
    /// Another client filed the request.
    NotYours,
}

const SCHEMA: &[&str] = &["CREATE TABLE requests (
        id INTEGER PRIMARY KEY,
        idempotency_key TEXT UNIQUE,
        token TEXT NOT NULL UNIQUE,
        service_code TEXT NOT NULL,
        lat REAL,
        long REAL,
        address_string TEXT,
        description TEXT NOT NULL,
        media_url TEXT,
        attributes TEXT NOT NULL,
        status TEXT NOT NULL,
        requested_ms INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL,
        received INTEGER NOT NULL DEFAULT 1
     );
     CREATE TABLE updates (
        id INTEGER PRIMARY KEY,
        request_id INTEGER NOT NULL REFERENCES requests (id),
        idempotency_key TEXT UNIQUE,
        status TEXT,
        description TEXT NOT NULL,
        attributes TEXT NOT NULL,
        at_ms INTEGER NOT NULL,
        received INTEGER NOT NULL DEFAULT 1
     );
     CREATE INDEX updates_by_request ON updates (request_id);",
    // 2: idempotency keys are scoped to the client that sent them (a key another
    // client sent first must not answer for this one's request), and every request
    // and follow-up records its client. Requests from before have client ''.
    "CREATE TABLE requests_v2 (
        id INTEGER PRIMARY KEY,
        client TEXT NOT NULL DEFAULT '',
        idempotency_key TEXT,
        token TEXT NOT NULL UNIQUE,
        service_code TEXT NOT NULL,
        lat REAL,
        long REAL,
        address_string TEXT,
        description TEXT NOT NULL,
        media_url TEXT,
        attributes TEXT NOT NULL,
        status TEXT NOT NULL,
        requested_ms INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL,
        received INTEGER NOT NULL DEFAULT 1,
        UNIQUE (client, idempotency_key)
     );
     INSERT INTO requests_v2 (id, idempotency_key, token, service_code, lat, long, address_string,
        description, media_url, attributes, status, requested_ms, updated_ms, received)
        SELECT id, idempotency_key, token, service_code, lat, long, address_string,
        description, media_url, attributes, status, requested_ms, updated_ms, received FROM requests;
     CREATE TABLE updates_v2 (
        id INTEGER PRIMARY KEY,
        request_id INTEGER NOT NULL,
        client TEXT NOT NULL DEFAULT '',
        idempotency_key TEXT,
        status TEXT,
        description TEXT NOT NULL,
        attributes TEXT NOT NULL,
        at_ms INTEGER NOT NULL,
        received INTEGER NOT NULL DEFAULT 1,
        UNIQUE (client, idempotency_key)
     );
     INSERT INTO updates_v2 (id, request_id, idempotency_key, status, description, attributes, at_ms, received)
        SELECT id, request_id, idempotency_key, status, description, attributes, at_ms, received FROM updates;
     DROP TABLE updates;
     DROP TABLE requests;
     ALTER TABLE requests_v2 RENAME TO requests;
     ALTER TABLE updates_v2 RENAME TO updates;
     CREATE INDEX updates_by_request ON updates (request_id);"];

/// A stored request, as `GET requests` shows it (GeoReport v2 fields, plus
/// `attributes`, `client`, `idempotency_key`, `received` and `updates`).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct StoredRequest {
    /// Id.
    pub service_request_id: String,
    /// `open` or `closed`.
    pub status: String,
    /// Service code.
    pub service_code: String,
    /// Service name.
    pub service_name: String,
    /// Description.
    pub description: String,
    /// RFC 3339.
    pub requested_datetime: String,
    /// RFC 3339.
    pub updated_datetime: String,
    /// `address_string` as sent.
    pub address: Option<String>,
    /// Latitude.
    pub lat: Option<f64>,
    /// Longitude.
    pub long: Option<f64>,
    /// Media URL.
    pub media_url: Option<String>,
    /// `attribute[...]` values.
    pub attributes: serde_json::Map<String, serde_json::Value>,
    /// The client that filed it (the name its API key belongs to).
    #[serde(default)]
    pub client: String,
    /// The sender's idempotency key (unique per client).
    pub idempotency_key: Option<String>,
    /// Times this request was received (retries of the same key included).
    pub received: i64,
    /// Follow-ups stored.
    pub updates: i64,
}

/// The inbox's store.
pub struct InboxStore {
    path: PathBuf,
    conn: Mutex<Connection>,
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

impl InboxStore {
    /// Opens (creating) `inbox.sqlite` in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let path = dir.join("inbox.sqlite");
        let conn = crate::cases::sqlite::open_migrated(&path, SCHEMA)?;
        Ok(Self {
            path,
            conn: Mutex::new(conn),
        })
    }

    fn err(&self, e: rusqlite::Error) -> StoreError {
        crate::cases::sqlite::classify(&self.path.display().to_string(), e)
    }

    /// Stores a request of `client` unless that client sent its key before; returns
    /// (id, token, was it new).
    pub(super) fn create(
        &self,
        f: &Form,
        client: &str,
        key: Option<&str>,
    ) -> Result<(i64, String, bool), StoreError> {
        let mut conn = self.conn.lock().expect("inbox lock");
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.err(e))?;
        if let Some(key) = key {
            let known: Option<(i64, String)> = tx
                .query_row(
                    "SELECT id, token FROM requests WHERE client = ?1 AND idempotency_key = ?2",
                    [client, key],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(|e| self.err(e))?;
            if let Some((id, token)) = known {
                tx.execute(
                    "UPDATE requests SET received = received + 1 WHERE id = ?1",
                    [id],
                )
                .map_err(|e| self.err(e))?;
                tx.commit().map_err(|e| self.err(e))?;
                return Ok((id, token, false));
            }
        }
        let token = format!(
            "{:016x}{:016x}",
            rand::random::<u64>(),
            rand::random::<u64>()
        );
        let now = now_ms();
        tx.execute(
            "INSERT INTO requests (idempotency_key, token, service_code, lat, long, address_string, description,
             media_url, attributes, status, requested_ms, updated_ms, client)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'open', ?10, ?10, ?11)",
            params![
                key,
                token,
                f.service_code,
                f.lat,
                f.long,
                f.address_string,
                f.description,
                f.media_url,
                serde_json::Value::Object(f.attributes.clone()).to_string(),
                now,
                client
            ],
        )
        .map_err(|e| self.err(e))?;
        let id = tx.last_insert_rowid();
        tx.commit().map_err(|e| self.err(e))?;
        Ok((id, token, true))
    }

    /// Stores a follow-up of request `id` from `client`, who must be the one that filed
    /// it.
    pub(super) fn update(
        &self,
        id: i64,
        f: &Form,
        client: &str,
        key: Option<&str>,
    ) -> Result<Updated, StoreError> {
        let mut conn = self.conn.lock().expect("inbox lock");
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.err(e))?;
        let owner: Option<String> = tx
            .query_row("SELECT client FROM requests WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| self.err(e))?;
        match owner {
            None => return Ok(Updated::NoRequest),
            Some(o) if o != client => return Ok(Updated::NotYours),
            Some(_) => {}
        }
        if let Some(key) = key {
            let n = tx
                .execute(
                    "UPDATE updates SET received = received + 1
                     WHERE client = ?1 AND idempotency_key = ?2",
                    [client, key],
                )
                .map_err(|e| self.err(e))?;
            if n > 0 {
                tx.commit().map_err(|e| self.err(e))?;
                return Ok(Updated::Repeat);
            }
        }
        let now = now_ms();
        let attributes = serde_json::Value::Object(f.attributes.clone()).to_string();
        tx.execute(
            "INSERT INTO updates (request_id, idempotency_key, status, description, attributes, at_ms, client)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![id, key, f.status, f.description, attributes, now, client],
        )
        .map_err(|e| self.err(e))?;
        tx.execute(
            "UPDATE requests SET status = coalesce(?2, status), description = ?3, attributes = ?4,
             media_url = coalesce(?5, media_url), updated_ms = ?6 WHERE id = ?1",
            params![id, f.status, f.description, attributes, f.media_url, now],
        )
        .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(Updated::Stored)
    }

    /// The request id behind a token.
    pub(super) fn token(&self, token: &str) -> Result<Option<i64>, StoreError> {
        let conn = self.conn.lock().expect("inbox lock");
        conn.query_row("SELECT id FROM requests WHERE token = ?1", [token], |r| {
            r.get(0)
        })
        .optional()
        .map_err(|e| self.err(e))
    }

    /// Requests matching a filter, newest first, at most 1000.
    pub fn requests(&self, filter: &RequestFilter) -> Result<Vec<StoredRequest>, StoreError> {
        let conn = self.conn.lock().expect("inbox lock");
        let mut stmt = conn
            .prepare_cached(
                "SELECT id, status, service_code, description, requested_ms, updated_ms, address_string, lat, long,
                 media_url, attributes, idempotency_key, received,
                 (SELECT count(*) FROM updates u WHERE u.request_id = requests.id), client
                 FROM requests
                 WHERE (?1 IS NULL OR requested_ms >= ?1) AND (?2 IS NULL OR requested_ms <= ?2)
                   AND (?3 IS NULL OR status = ?3) AND (?4 IS NULL OR idempotency_key = ?4)
                 ORDER BY id DESC",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(
                params![
                    filter.start_ms,
                    filter.end_ms,
                    filter.status,
                    filter.idempotency_key
                ],
                |r| {
                    let attributes: String = r.get(10)?;
                    Ok(StoredRequest {
                        service_request_id: r.get::<_, i64>(0)?.to_string(),
                        status: r.get(1)?,
                        service_code: r.get(2)?,
                        service_name: String::new(),
                        description: r.get(3)?,
                        requested_datetime: rfc3339(r.get(4)?),
                        updated_datetime: rfc3339(r.get(5)?),
                        address: r.get(6)?,
                        lat: r.get(7)?,
                        long: r.get(8)?,
                        media_url: r.get(9)?,
                        attributes: serde_json::from_str(&attributes).unwrap_or_default(),
                        client: r.get(14)?,
                        idempotency_key: r.get(11)?,
                        received: r.get(12)?,
                        updates: r.get(13)?,
                    })
                },
            )
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let req = row.map_err(|e| self.err(e))?;
            if !filter.ids.is_empty() && !filter.ids.contains(&req.service_request_id) {
                continue;
            }
            if !filter.service_codes.is_empty() && !filter.service_codes.contains(&req.service_code)
            {
                continue;
            }
            out.push(req);
            if out.len() >= filter.limit.unwrap_or(1000) {
                break;
            }
        }
        Ok(out)
    }
}

/// `GET requests.json` filters.
#[derive(Debug, Clone, Default)]
pub struct RequestFilter {
    /// `service_request_id`, comma-separated.
    pub ids: Vec<String>,
    /// `service_code`, comma-separated.
    pub service_codes: Vec<String>,
    /// `status`.
    pub status: Option<String>,
    /// `start_date`.
    pub start_ms: Option<i64>,
    /// `end_date`.
    pub end_ms: Option<i64>,
    /// `idempotency_key` (extension).
    pub idempotency_key: Option<String>,
    /// At most this many (default 1000).
    pub limit: Option<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inbox_of_the_first_schema_keeps_its_requests() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("inbox.sqlite");
        {
            let conn = crate::cases::sqlite::open_migrated(&path, &SCHEMA[..1]).unwrap();
            conn.execute(
                "INSERT INTO requests (idempotency_key, token, service_code, lat, long, description,
                 attributes, status, requested_ms, updated_ms) VALUES
                 ('k1', 't1', '0505', 31.2, 121.4, 'old', '{}', 'open', 1, 1)",
                [],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO updates (request_id, idempotency_key, description, attributes, at_ms)
                 VALUES (1, 'u1', 'later', '{}', 2)",
                [],
            )
            .unwrap();
        }
        let store = InboxStore::open(tmp.path()).unwrap();
        let list = store.requests(&RequestFilter::default()).unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(
            (
                list[0].client.as_str(),
                list[0].idempotency_key.as_deref(),
                list[0].updates
            ),
            ("", Some("k1"), 1)
        );
        // the same key from a client is that client's own
        let f = Form {
            service_code: "0505".into(),
            lat: Some(1.0),
            long: Some(2.0),
            ..Form::default()
        };
        let (id, _, new) = store.create(&f, "gridwatch", Some("k1")).unwrap();
        assert!(new && id == 2);
        assert_eq!(store.create(&f, "gridwatch", Some("k1")).unwrap().0, 2);
    }
}
