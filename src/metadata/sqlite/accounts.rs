//! [`AccountStore`] on SQLite: the SQL of users, grants and access tokens.

use rusqlite::{params, Connection, OptionalExtension, Row, Transaction};

use super::{now_millis, SqliteMetadata};
use crate::metadata::accounts::{
    AccountStore, GrantRecord, NewToken, TokenRecord, TokenScope, UserRecord,
};
use crate::metadata::MetadataError;

use super::schema::db;

fn user_id(conn: &Connection, name: &str) -> Result<Option<i64>, MetadataError> {
    conn.prepare_cached("SELECT id FROM users WHERE name = ?1")
        .and_then(|mut stmt| stmt.query_row([name], |r| r.get(0)).optional())
        .map_err(db)
}

/// The id of a grant subject: `None` (anonymous) stays `None`.
fn subject_id(tx: &Transaction<'_>, subject: Option<&str>) -> Result<Option<i64>, MetadataError> {
    match subject {
        None => Ok(None),
        Some(name) => user_id(tx, name)?
            .map(Some)
            .ok_or_else(|| MetadataError::UnknownUser(name.to_owned())),
    }
}

fn user_of(row: &Row<'_>) -> rusqlite::Result<UserRecord> {
    Ok(UserRecord {
        name: row.get(0)?,
        password_hash: row.get(1)?,
        created_at: row.get(2)?,
        updated_at: row.get(3)?,
    })
}

const TOKEN_COLUMNS: &str =
    "t.id, u.name, t.name, t.created_at, t.expires_at, t.revoked_at, t.last_used_at
     FROM access_tokens t JOIN users u ON u.id = t.user_id";

fn token_of(row: &Row<'_>) -> rusqlite::Result<TokenRecord> {
    Ok(TokenRecord {
        id: row.get(0)?,
        user: row.get(1)?,
        name: row.get(2)?,
        scopes: Vec::new(),
        created_at: row.get(3)?,
        expires_at: row.get(4)?,
        revoked_at: row.get(5)?,
        last_used_at: row.get(6)?,
    })
}

fn with_scopes(conn: &Connection, mut token: TokenRecord) -> Result<TokenRecord, MetadataError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT pattern, action FROM access_token_scopes WHERE token_id = ?1
             ORDER BY pattern, action",
        )
        .map_err(db)?;
    token.scopes = stmt
        .query_map([token.id], |r| {
            Ok(TokenScope {
                pattern: r.get(0)?,
                action: r.get(1)?,
            })
        })
        .and_then(Iterator::collect)
        .map_err(db)?;
    Ok(token)
}

fn one_token(
    conn: &Connection,
    condition: &str,
    param: &dyn rusqlite::ToSql,
) -> Result<Option<TokenRecord>, MetadataError> {
    let token = conn
        .prepare_cached(&format!("SELECT {TOKEN_COLUMNS} WHERE {condition}"))
        .and_then(|mut stmt| stmt.query_row([param], token_of).optional())
        .map_err(db)?;
    token.map(|t| with_scopes(conn, t)).transpose()
}

/// The query behind `has_users`: the first row of a table of a handful.
fn users_exist(conn: &Connection) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM users)")
        .and_then(|mut stmt| stmt.query_row([], |r| r.get(0)))
}

impl AccountStore for SqliteMetadata {
    fn has_users(&self) -> Result<bool, MetadataError> {
        self.prepare_at_once_reader();
        self.read(|conn| users_exist(conn).map_err(db))
    }

    fn has_users_at_once(&self) -> Option<bool> {
        self.read_at_once(users_exist)
    }

    fn create_user(&self, name: &str, password_hash: &str) -> Result<bool, MetadataError> {
        let now = now_millis();
        self.write(|tx| {
            tx.prepare_cached(
                "INSERT INTO users (name, password_hash, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?3) ON CONFLICT (name) DO NOTHING",
            )
            .and_then(|mut stmt| stmt.execute(params![name, password_hash, now]))
            .map(|n| n > 0)
            .map_err(db)
        })
    }

    fn user(&self, name: &str) -> Result<Option<UserRecord>, MetadataError> {
        self.read(|conn| {
            conn.prepare_cached(
                "SELECT name, password_hash, created_at, updated_at FROM users WHERE name = ?1",
            )
            .and_then(|mut stmt| stmt.query_row([name], user_of).optional())
            .map_err(db)
        })
    }

    fn list_users(&self) -> Result<Vec<UserRecord>, MetadataError> {
        self.read(|conn| {
            conn.prepare_cached(
                "SELECT name, password_hash, created_at, updated_at FROM users ORDER BY name",
            )
            .and_then(|mut stmt| stmt.query_map([], user_of)?.collect())
            .map_err(db)
        })
    }

    fn set_password(&self, name: &str, password_hash: &str) -> Result<bool, MetadataError> {
        let now = now_millis();
        self.write(|tx| {
            tx.prepare_cached(
                "UPDATE users SET password_hash = ?2, updated_at = ?3 WHERE name = ?1",
            )
            .and_then(|mut stmt| stmt.execute(params![name, password_hash, now]))
            .map(|n| n > 0)
            .map_err(db)
        })
    }

    fn delete_user(&self, name: &str) -> Result<bool, MetadataError> {
        // Grants, tokens and token scopes go with it (ON DELETE CASCADE).
        self.write(|tx| {
            tx.prepare_cached("DELETE FROM users WHERE name = ?1")
                .and_then(|mut stmt| stmt.execute([name]))
                .map(|n| n > 0)
                .map_err(db)
        })
    }

    fn add_grant(
        &self,
        subject: Option<&str>,
        pattern: &str,
        action: &str,
    ) -> Result<bool, MetadataError> {
        let now = now_millis();
        self.write(|tx| {
            let user = subject_id(tx, subject)?;
            tx.prepare_cached(
                "INSERT INTO grants (user_id, pattern, action, created_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT DO NOTHING",
            )
            .and_then(|mut stmt| stmt.execute(params![user, pattern, action, now]))
            .map(|n| n > 0)
            .map_err(db)
        })
    }

    fn remove_grants(
        &self,
        subject: Option<&str>,
        pattern: &str,
        action: Option<&str>,
    ) -> Result<usize, MetadataError> {
        self.write(|tx| {
            let user = subject_id(tx, subject)?;
            tx.prepare_cached(
                "DELETE FROM grants WHERE user_id IS ?1 AND pattern = ?2 AND (?3 IS NULL OR action = ?3)",
            )
            .and_then(|mut stmt| stmt.execute(params![user, pattern, action]))
            .map_err(db)
        })
    }

    fn all_grants(&self) -> Result<Vec<GrantRecord>, MetadataError> {
        self.read(|conn| {
            conn.prepare_cached(
                "SELECT u.name, g.pattern, g.action FROM grants g LEFT JOIN users u ON u.id = g.user_id
                 ORDER BY u.name NULLS FIRST, g.pattern, g.action",
            )
            .and_then(|mut stmt| {
                stmt.query_map([], |r| {
                    Ok(GrantRecord {
                        subject: r.get(0)?,
                        pattern: r.get(1)?,
                        action: r.get(2)?,
                    })
                })?
                .collect()
            })
            .map_err(db)
        })
    }

    fn grants_for(&self, user: Option<&str>) -> Result<Vec<GrantRecord>, MetadataError> {
        self.read(|conn| {
            conn.prepare_cached(
                "SELECT u.name, g.pattern, g.action FROM grants g LEFT JOIN users u ON u.id = g.user_id
                 WHERE g.user_id IS NULL OR u.name = ?1",
            )
            .and_then(|mut stmt| {
                stmt.query_map([user], |r| {
                    Ok(GrantRecord {
                        subject: r.get(0)?,
                        pattern: r.get(1)?,
                        action: r.get(2)?,
                    })
                })?
                .collect()
            })
            .map_err(db)
        })
    }

    fn create_token(&self, token: NewToken<'_>) -> Result<bool, MetadataError> {
        let now = now_millis();
        self.write(|tx| {
            let user = user_id(tx, token.user)?
                .ok_or_else(|| MetadataError::UnknownUser(token.user.to_owned()))?;
            let id: Option<i64> = tx
                .prepare_cached(
                    "INSERT INTO access_tokens (user_id, name, secret_hash, created_at, expires_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (user_id, name) WHERE revoked_at IS NULL DO NOTHING
                     RETURNING id",
                )
                .and_then(|mut stmt| {
                    stmt.query_row(
                        params![user, token.name, token.secret_hash, now, token.expires_at],
                        |r| r.get(0),
                    )
                    .optional()
                })
                .map_err(db)?;
            let Some(id) = id else {
                return Ok(false);
            };
            for scope in token.scopes {
                tx.prepare_cached(
                    "INSERT OR IGNORE INTO access_token_scopes (token_id, pattern, action)
                     VALUES (?1, ?2, ?3)",
                )
                .and_then(|mut stmt| stmt.execute(params![id, scope.pattern, scope.action]))
                .map_err(db)?;
            }
            Ok(true)
        })
    }

    fn token_by_hash(&self, secret_hash: &str) -> Result<Option<TokenRecord>, MetadataError> {
        self.read(|conn| one_token(conn, "t.secret_hash = ?1", &secret_hash))
    }

    fn token_by_id(&self, id: i64) -> Result<Option<TokenRecord>, MetadataError> {
        self.read(|conn| one_token(conn, "t.id = ?1", &id))
    }

    fn list_tokens(&self, user: Option<&str>) -> Result<Vec<TokenRecord>, MetadataError> {
        self.read(|conn| {
            let tokens: Vec<TokenRecord> = conn
                .prepare_cached(&format!(
                    "SELECT {TOKEN_COLUMNS} WHERE ?1 IS NULL OR u.name = ?1 ORDER BY t.created_at, t.id"
                ))
                .and_then(|mut stmt| stmt.query_map([user], token_of)?.collect())
                .map_err(db)?;
            tokens.into_iter().map(|t| with_scopes(conn, t)).collect()
        })
    }

    fn revoke_token(&self, user: Option<&str>, name: &str) -> Result<usize, MetadataError> {
        let now = now_millis();
        self.write(|tx| {
            tx.prepare_cached(
                "UPDATE access_tokens SET revoked_at = ?3
                 WHERE name = ?2 AND revoked_at IS NULL
                   AND (?1 IS NULL OR user_id = (SELECT id FROM users WHERE name = ?1))",
            )
            .and_then(|mut stmt| stmt.execute(params![user, name, now]))
            .map_err(db)
        })
    }

    fn touch_token(&self, id: i64, now: i64) -> Result<(), MetadataError> {
        self.write(|tx| {
            tx.prepare_cached("UPDATE access_tokens SET last_used_at = ?2 WHERE id = ?1")
                .and_then(|mut stmt| stmt.execute(params![id, now]))
                .map(|_| ())
                .map_err(db)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, SqliteMetadata) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteMetadata::open(&dir.path().join("db")).unwrap();
        (dir, store)
    }

    #[test]
    fn users_added_elsewhere_are_seen_at_once() {
        let (dir, s) = store();
        assert_eq!(
            s.has_users_at_once(),
            None,
            "answered before it was prepared"
        );
        assert!(!s.has_users().unwrap());
        assert_eq!(s.has_users_at_once(), Some(false));
        // Another process (an admin command) adds the first user.
        let other = SqliteMetadata::open(&dir.path().join("db")).unwrap();
        assert!(other.create_user("john", "h").unwrap());
        assert_eq!(s.has_users_at_once(), Some(true));
        assert!(other.delete_user("john").unwrap());
        assert_eq!(s.has_users_at_once(), Some(false));
    }

    #[test]
    fn users_are_unique_and_removal_takes_their_grants_and_tokens() {
        let (_dir, s) = store();
        assert!(!s.has_users().unwrap());
        assert!(s.create_user("john", "h1").unwrap());
        assert!(!s.create_user("john", "h2").unwrap());
        assert!(s.has_users().unwrap());
        assert!(s.add_grant(Some("john"), "john/*", "push").unwrap());
        assert!(!s.add_grant(Some("john"), "john/*", "push").unwrap());
        assert!(s.add_grant(None, "public/**", "pull").unwrap());
        assert!(!s.add_grant(None, "public/**", "pull").unwrap());
        let scopes = [TokenScope {
            pattern: "john/app".into(),
            action: "pull".into(),
        }];
        let token = NewToken {
            user: "john",
            name: "ci",
            secret_hash: "abc",
            scopes: &scopes,
            expires_at: None,
        };
        assert!(s.create_token(token).unwrap());
        let found = s.token_by_hash("abc").unwrap().unwrap();
        assert_eq!((found.user.as_str(), found.scopes.len()), ("john", 1));
        assert_eq!(s.grants_for(Some("john")).unwrap().len(), 2);
        assert_eq!(s.grants_for(None).unwrap().len(), 1);

        assert!(s.delete_user("john").unwrap());
        assert_eq!(s.all_grants().unwrap().len(), 1, "anonymous grants stay");
        assert!(s.token_by_hash("abc").unwrap().is_none());
        assert!(matches!(
            s.add_grant(Some("john"), "x", "pull"),
            Err(MetadataError::UnknownUser(_))
        ));
    }

    #[test]
    fn a_revoked_token_frees_its_name() {
        let (_dir, s) = store();
        s.create_user("robot", "h").unwrap();
        let new = |hash: &'static str| NewToken {
            user: "robot",
            name: "ci",
            secret_hash: hash,
            scopes: &[],
            expires_at: Some(5),
        };
        assert!(s.create_token(new("one")).unwrap());
        assert!(!s.create_token(new("two")).unwrap());
        assert_eq!(s.revoke_token(Some("robot"), "ci").unwrap(), 1);
        assert!(s
            .token_by_hash("one")
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some());
        assert!(s.create_token(new("two")).unwrap());
        assert_eq!(s.list_tokens(Some("robot")).unwrap().len(), 2);
        assert_eq!(s.revoke_token(None, "ci").unwrap(), 1);
    }

    #[test]
    fn revoking_grants_by_pattern_or_action() {
        let (_dir, s) = store();
        s.create_user("a", "h").unwrap();
        s.add_grant(Some("a"), "x/*", "pull").unwrap();
        s.add_grant(Some("a"), "x/*", "delete").unwrap();
        s.add_grant(None, "x/*", "pull").unwrap();
        assert_eq!(s.remove_grants(Some("a"), "x/*", Some("pull")).unwrap(), 1);
        assert_eq!(s.remove_grants(Some("a"), "x/*", None).unwrap(), 1);
        assert_eq!(s.all_grants().unwrap().len(), 1);
        assert_eq!(s.remove_grants(None, "x/*", None).unwrap(), 1);
    }
}
