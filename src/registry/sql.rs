//! The registry's database: the case store's own (the SQLite file of the data
//! directory, or the shared PostgreSQL database), reached over a connection of its
//! own. The registry's statements are written once, in PostgreSQL's `$n` style, and
//! run on either: values are integers and text only ([`Val`]), booleans are 0 / 1.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, TransactionBehavior};

use crate::cases::StoreError;

/// A value bound to a statement or read from a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    /// An integer, or an integer column's NULL.
    Int(Option<i64>),
    /// Text, or a text column's NULL.
    Text(Option<String>),
}

impl From<i64> for Val {
    fn from(v: i64) -> Self {
        Val::Int(Some(v))
    }
}
impl From<bool> for Val {
    fn from(v: bool) -> Self {
        Val::Int(Some(v as i64))
    }
}
impl From<&str> for Val {
    fn from(v: &str) -> Self {
        Val::Text(Some(v.to_string()))
    }
}
impl From<String> for Val {
    fn from(v: String) -> Self {
        Val::Text(Some(v))
    }
}
impl From<Option<String>> for Val {
    fn from(v: Option<String>) -> Self {
        Val::Text(v)
    }
}
impl From<Option<i64>> for Val {
    fn from(v: Option<i64>) -> Self {
        Val::Int(v)
    }
}

/// A row read.
#[derive(Debug, Clone)]
pub struct Row(pub Vec<Val>);

impl Row {
    /// Column `i` as an integer (NULL and text: 0).
    pub fn int(&self, i: usize) -> i64 {
        self.opt_int(i).unwrap_or(0)
    }
    /// Column `i` as an integer or NULL.
    pub fn opt_int(&self, i: usize) -> Option<i64> {
        match self.0.get(i) {
            Some(Val::Int(v)) => *v,
            _ => None,
        }
    }
    /// Column `i` as text (NULL: empty).
    pub fn text(&self, i: usize) -> String {
        self.opt_text(i).unwrap_or_default()
    }
    /// Column `i` as text or NULL.
    pub fn opt_text(&self, i: usize) -> Option<String> {
        match self.0.get(i) {
            Some(Val::Text(v)) => v.clone(),
            _ => None,
        }
    }
}

/// One transaction's statements.
pub trait Tx {
    /// Runs a statement; returns the rows changed.
    fn exec(&mut self, sql: &str, params: &[Val]) -> Result<u64, StoreError>;
    /// Runs a query.
    fn rows(&mut self, sql: &str, params: &[Val]) -> Result<Vec<Row>, StoreError>;
}

/// `$1` … `$n` as SQLite's `?1` … `?n`.
fn sqlite_sql(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(|d| d.is_ascii_digit()) {
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}

struct LiteTx<'a> {
    tx: &'a rusqlite::Transaction<'a>,
    name: &'a str,
}

fn lite_params(params: &[Val]) -> Vec<rusqlite::types::Value> {
    use rusqlite::types::Value as V;
    params
        .iter()
        .map(|p| match p {
            Val::Int(Some(i)) => V::Integer(*i),
            Val::Text(Some(t)) => V::Text(t.clone()),
            Val::Int(None) | Val::Text(None) => V::Null,
        })
        .collect()
}

impl Tx for LiteTx<'_> {
    fn exec(&mut self, sql: &str, params: &[Val]) -> Result<u64, StoreError> {
        let err = |e| crate::cases::sqlite::classify(self.name, e);
        let mut stmt = self.tx.prepare_cached(&sqlite_sql(sql)).map_err(err)?;
        let n = stmt
            .execute(rusqlite::params_from_iter(lite_params(params)))
            .map_err(err)?;
        Ok(n as u64)
    }

    fn rows(&mut self, sql: &str, params: &[Val]) -> Result<Vec<Row>, StoreError> {
        use rusqlite::types::ValueRef;
        let err = |e| crate::cases::sqlite::classify(self.name, e);
        let mut stmt = self.tx.prepare_cached(&sqlite_sql(sql)).map_err(err)?;
        let n = stmt.column_count();
        let mut rows = stmt
            .query(rusqlite::params_from_iter(lite_params(params)))
            .map_err(err)?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(err)? {
            let mut row = Vec::with_capacity(n);
            for i in 0..n {
                row.push(match r.get_ref(i).map_err(err)? {
                    ValueRef::Integer(v) => Val::Int(Some(v)),
                    ValueRef::Real(v) => Val::Int(Some(v as i64)),
                    ValueRef::Text(t) => Val::Text(Some(String::from_utf8_lossy(t).into_owned())),
                    ValueRef::Blob(_) | ValueRef::Null => Val::Int(None),
                });
            }
            out.push(Row(row));
        }
        Ok(out)
    }
}

struct PgTx<'a, 'b> {
    tx: &'a mut postgres::Transaction<'b>,
    name: &'a str,
}

fn pg_params(params: &[Val]) -> Vec<Box<dyn postgres::types::ToSql + Sync>> {
    params
        .iter()
        .map(|p| -> Box<dyn postgres::types::ToSql + Sync> {
            match p {
                Val::Int(v) => Box::new(*v),
                Val::Text(v) => Box::new(v.clone()),
            }
        })
        .collect()
}

impl Tx for PgTx<'_, '_> {
    fn exec(&mut self, sql: &str, params: &[Val]) -> Result<u64, StoreError> {
        let p = pg_params(params);
        let refs: Vec<&(dyn postgres::types::ToSql + Sync)> = p.iter().map(|b| &**b).collect();
        self.tx
            .execute(sql, &refs)
            .map_err(|e| crate::cases::postgres::error(self.name, &e))
    }

    fn rows(&mut self, sql: &str, params: &[Val]) -> Result<Vec<Row>, StoreError> {
        use postgres::types::Type;
        let p = pg_params(params);
        let refs: Vec<&(dyn postgres::types::ToSql + Sync)> = p.iter().map(|b| &**b).collect();
        let rows = self
            .tx
            .query(sql, &refs)
            .map_err(|e| crate::cases::postgres::error(self.name, &e))?;
        Ok(rows
            .iter()
            .map(|r| {
                Row(r
                    .columns()
                    .iter()
                    .enumerate()
                    .map(|(i, c)| match *c.type_() {
                        Type::INT8 => Val::Int(r.get(i)),
                        Type::INT4 => Val::Int(r.get::<_, Option<i32>>(i).map(i64::from)),
                        Type::BOOL => Val::Int(r.get::<_, Option<bool>>(i).map(i64::from)),
                        _ => Val::Text(r.get(i)),
                    })
                    .collect())
            })
            .collect())
    }
}

/// The database: SQLite or PostgreSQL.
pub enum Backend {
    /// The data directory's SQLite file.
    Sqlite {
        /// The connection.
        conn: Mutex<Connection>,
        /// The file, for messages.
        name: String,
    },
    /// The shared PostgreSQL database.
    Pg(Box<crate::pg::Db>),
}

impl Backend {
    /// The case store's database — `url` (PostgreSQL) or `dir`'s SQLite file — whose
    /// migrations have run (open the case store first).
    pub fn open(url: Option<&str>, dir: &Path) -> Result<Self, StoreError> {
        match url {
            Some(url) => Ok(Backend::Pg(Box::new(crate::pg::Db::new(url)))),
            None => {
                let path = dir.join("cases.sqlite");
                let name = path.display().to_string();
                let conn = Connection::open(&path)
                    .and_then(|c| {
                        c.busy_timeout(std::time::Duration::from_secs(10))?;
                        c.pragma_update(None, "journal_mode", "wal")?;
                        Ok(c)
                    })
                    .map_err(|e| crate::cases::sqlite::classify(&name, e))?;
                Ok(Backend::Sqlite {
                    conn: Mutex::new(conn),
                    name,
                })
            }
        }
    }

    /// The database, for messages (a URL without its password).
    pub fn name(&self) -> &str {
        match self {
            Backend::Sqlite { name, .. } => name,
            Backend::Pg(db) => db.name(),
        }
    }

    /// Runs `f` in one transaction (SQLite: with the write lock from the start):
    /// committed when it returns `Ok`, rolled back otherwise.
    pub fn tx<R>(
        &self,
        f: impl FnOnce(&mut dyn Tx) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        match self {
            Backend::Sqlite { conn, name } => {
                let err = |e| crate::cases::sqlite::classify(name, e);
                let mut conn = conn.lock().unwrap_or_else(|p| p.into_inner());
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(err)?;
                let r = f(&mut LiteTx { tx: &tx, name })?;
                tx.commit().map_err(err)?;
                Ok(r)
            }
            Backend::Pg(db) => {
                let name = db.name();
                let mut client = db.lock().map_err(|e| StoreError::Unavailable {
                    store: name.to_string(),
                    message: format!("connecting: {e}"),
                })?;
                let mut tx = client
                    .transaction()
                    .map_err(|e| crate::cases::postgres::error(name, &e))?;
                let r = f(&mut PgTx { tx: &mut tx, name })?;
                tx.commit()
                    .map_err(|e| crate::cases::postgres::error(name, &e))?;
                Ok(r)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_sqlites() {
        assert_eq!(
            sqlite_sql("SELECT $1, '$x', $12 FROM t WHERE a = $2"),
            "SELECT ?1, '$x', ?12 FROM t WHERE a = ?2"
        );
    }
}
