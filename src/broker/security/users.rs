//! The SCRAM credential store: `__users.meta`, a record log (file kind 4) of upserts and
//! deletions of one user's credential for one mechanism; replaying it in order gives the
//! credentials. It never holds a password or a salted password: only what
//! `security::sasl::ScramCredential` keeps.
//!
//! # Byte layout, version 1
//!
//! Framing, header frame and torn-tail handling are `metadata::record_log`'s (a frame is
//! `length u32 BE | crc32 u32 BE | payload`; the header frame's payload is `"TSMD"`, format
//! version 1, file kind 4). Each record's payload, integers big-endian:
//!
//! | bytes | field |
//! | --- | --- |
//! | 1 | record version, `u8` = 1 |
//! | 1 | operation, `u8`: 0 = upsert, 1 = delete |
//! | 2 + n | user name: `u16` byte count, then UTF-8 |
//! | 1 | mechanism, `u8`: Kafka's type, 1 = SCRAM-SHA-256, 2 = SCRAM-SHA-512 |
//!
//! An upsert goes on with:
//!
//! | bytes | field |
//! | --- | --- |
//! | 4 | iterations, `u32` (4096..=16384 when written) |
//! | 2 + n | salt: `u16` byte count, then the bytes |
//! | 2 + n | StoredKey: `u16` byte count, then the bytes (32 or 64) |
//! | 2 + n | ServerKey: `u16` byte count, then the bytes (32 or 64) |
//!
//! Nothing may follow. A new layout gets a new version byte; version 1 stays readable. A data
//! directory without the file (written before credentials existed) opens with no users.
//!
//! Invariants: the in-memory map is the replay of the file; a change is fsynced before it
//! is visible (so an acknowledged AlterUserScramCredentials survives a crash); the file is
//! compacted (atomic rewrite) when it holds more than twice the live credentials plus
//! `USERS_COMPACT_SLACK` records.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use crate::broker::metadata::be_codec::{Reader, put_bytes};
use crate::broker::metadata::record_log::{MetaRecord, RecordLog};
use crate::error::{Error, Result};
use crate::limits::{
    SCRAM_ITERATIONS_MAX, SCRAM_ITERATIONS_MIN, SCRAM_SALT_BYTES, SCRAM_USERNAME_BYTES_MAX,
};
use crate::security::sasl::{ScramCredential, ScramHash};

/// The file's name in the data directory.
pub const USERS_FILE: &str = "__users.meta";
pub(crate) const USERS_FILE_KIND: u8 = 4;
const USER_RECORD_V1: u8 = 1;
const USERS_COMPACT_SLACK: usize = 1000;

/// One record of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum UserRecord {
    Upsert {
        name: String,
        hash: ScramHash,
        credential: ScramCredential,
    },
    Delete {
        name: String,
        hash: ScramHash,
    },
}

impl MetaRecord for UserRecord {
    const FILE_KIND: u8 = USERS_FILE_KIND;

    fn encode(&self) -> std::result::Result<Vec<u8>, String> {
        let mut out = vec![USER_RECORD_V1];
        let (op, name, hash) = match self {
            UserRecord::Upsert { name, hash, .. } => (0, name, hash),
            UserRecord::Delete { name, hash } => (1, name, hash),
        };
        out.push(op);
        put_bytes(&mut out, name.as_bytes())?;
        out.push(hash.wire_type() as u8);
        if let UserRecord::Upsert { credential: c, .. } = self {
            out.extend_from_slice(&c.iterations.to_be_bytes());
            put_bytes(&mut out, &c.salt)?;
            put_bytes(&mut out, &c.stored_key)?;
            put_bytes(&mut out, &c.server_key)?;
        }
        Ok(out)
    }

    fn decode(payload: &[u8]) -> std::result::Result<Self, String> {
        let mut r = Reader::new(payload);
        let version = r.u8()?;
        if version != USER_RECORD_V1 {
            return Err(format!("unknown user record version {version}"));
        }
        let op = r.u8()?;
        let name = std::str::from_utf8(r.bytes()?)
            .map_err(|_| "user name is not UTF-8".to_string())?
            .to_string();
        let mech = r.u8()?;
        let hash = ScramHash::from_wire_type(mech as i8)
            .ok_or_else(|| format!("unknown SCRAM mechanism type {mech}"))?;
        let record = match op {
            0 => {
                let iterations = r.u32()?;
                let salt = r.bytes()?.to_vec();
                let stored_key = r.bytes()?.to_vec();
                let server_key = r.bytes()?.to_vec();
                UserRecord::Upsert {
                    name,
                    hash,
                    credential: ScramCredential {
                        salt,
                        iterations,
                        stored_key,
                        server_key,
                    },
                }
            }
            1 => UserRecord::Delete { name, hash },
            op => return Err(format!("unknown user record operation {op}")),
        };
        if r.remaining() != 0 {
            return Err(format!("{} bytes after the user record", r.remaining()));
        }
        Ok(record)
    }

    fn decode_legacy(_: &[u8]) -> std::result::Result<Self, String> {
        Err("__users.meta has no legacy format".into())
    }
}

/// A change to apply (AlterUserScramCredentials, `thorstream users`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserChange {
    Upsert {
        name: String,
        hash: ScramHash,
        credential: ScramCredential,
    },
    Delete {
        name: String,
        hash: ScramHash,
    },
}

/// Why a credential is not acceptable (Kafka's UNACCEPTABLE_CREDENTIAL messages).
pub fn check_credential(name: &str, iterations: u32) -> std::result::Result<(), &'static str> {
    if name.is_empty() {
        return Err("Username must not be empty");
    }
    if name.len() > SCRAM_USERNAME_BYTES_MAX {
        return Err("Username too long");
    }
    if iterations < SCRAM_ITERATIONS_MIN {
        return Err("Too few iterations");
    }
    if iterations > SCRAM_ITERATIONS_MAX {
        return Err("Too many iterations");
    }
    Ok(())
}

type Credentials = BTreeMap<(String, ScramHash), ScramCredential>;

struct State {
    log: RecordLog<UserRecord>,
    credentials: Credentials,
    records: usize,
}

/// The credential store (see the module docs).
pub struct UserStore {
    state: Mutex<State>,
    /// Keys the salts shown for unknown users (random per process: a name gets the same salt
    /// for the process's life, unrelated to any real one).
    secret: [u8; 32],
}

fn replay(records: &[UserRecord]) -> Credentials {
    let mut credentials = Credentials::new();
    for r in records {
        match r {
            UserRecord::Upsert {
                name,
                hash,
                credential,
            } => {
                credentials.insert((name.clone(), *hash), credential.clone());
            }
            UserRecord::Delete { name, hash } => {
                credentials.remove(&(name.clone(), *hash));
            }
        }
    }
    credentials
}

/// `n` bytes from the OS's CSPRNG.
pub fn random_bytes(n: usize) -> Result<Vec<u8>> {
    let mut b = vec![0u8; n];
    getrandom::fill(&mut b).map_err(|e| Error::Metadata(format!("no randomness: {e}")))?;
    Ok(b)
}

/// A fresh salt for a new credential.
pub fn new_salt() -> Result<Vec<u8>> {
    random_bytes(SCRAM_SALT_BYTES)
}

impl UserStore {
    /// Opens (creating if missing) `__users.meta` in `dir`.
    pub fn open(dir: &Path) -> Result<UserStore> {
        let (log, records) = RecordLog::<UserRecord>::open(&dir.join(USERS_FILE))?;
        let mut secret = [0u8; 32];
        secret.copy_from_slice(&random_bytes(32)?);
        Ok(UserStore {
            state: Mutex::new(State {
                credentials: replay(&records),
                records: records.len(),
                log,
            }),
            secret,
        })
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, State>> {
        self.state
            .lock()
            .map_err(|_| Error::Metadata("user store lock poisoned".into()))
    }

    pub fn credential(&self, name: &str, hash: ScramHash) -> Option<ScramCredential> {
        self.lock()
            .ok()?
            .credentials
            .get(&(name.to_string(), hash))
            .cloned()
    }

    /// Every user with a credential, and its (mechanism, iterations) pairs, by name.
    pub fn list(&self) -> Vec<(String, Vec<(ScramHash, u32)>)> {
        let Ok(state) = self.lock() else {
            return Vec::new();
        };
        let mut out: Vec<(String, Vec<(ScramHash, u32)>)> = Vec::new();
        for ((name, hash), c) in &state.credentials {
            match out.last_mut() {
                Some((n, v)) if n == name => v.push((*hash, c.iterations)),
                _ => out.push((name.clone(), vec![(*hash, c.iterations)])),
            }
        }
        out
    }

    /// The salt an exchange shows a user without a credential.
    pub fn unknown_user_salt(&self, name: &str) -> Vec<u8> {
        let mut salt = ScramHash::Sha256.hmac(&self.secret, name.as_bytes());
        salt.truncate(SCRAM_SALT_BYTES);
        salt
    }

    /// Applies `changes` in order as one fsynced write; a deletion of a credential that does
    /// not exist is skipped (callers check first). Nothing is applied if the write fails.
    pub fn apply(&self, changes: &[UserChange]) -> Result<()> {
        let mut state = self.lock()?;
        let records: Vec<UserRecord> = changes
            .iter()
            .map(|c| match c {
                UserChange::Upsert {
                    name,
                    hash,
                    credential,
                } => UserRecord::Upsert {
                    name: name.clone(),
                    hash: *hash,
                    credential: credential.clone(),
                },
                UserChange::Delete { name, hash } => UserRecord::Delete {
                    name: name.clone(),
                    hash: *hash,
                },
            })
            .collect();
        if records.is_empty() {
            return Ok(());
        }
        state.log.append_all(&records)?;
        state
            .log
            .sync_handle()?
            .sync_data()
            .map_err(|e| Error::Metadata(format!("{USERS_FILE}: {e}")))?;
        for r in &records {
            match r {
                UserRecord::Upsert {
                    name,
                    hash,
                    credential,
                } => {
                    state
                        .credentials
                        .insert((name.clone(), *hash), credential.clone());
                }
                UserRecord::Delete { name, hash } => {
                    state.credentials.remove(&(name.clone(), *hash));
                }
            }
        }
        state.records += records.len();
        if state.records > 2 * state.credentials.len() + USERS_COMPACT_SLACK {
            let live: Vec<UserRecord> = state
                .credentials
                .iter()
                .map(|((name, hash), c)| UserRecord::Upsert {
                    name: name.clone(),
                    hash: *hash,
                    credential: c.clone(),
                })
                .collect();
            state.log.rewrite(&live)?;
            state.records = live.len();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cred(i: u32) -> ScramCredential {
        ScramCredential {
            salt: vec![1; 32],
            iterations: 4096 + i,
            stored_key: vec![2; 32],
            server_key: vec![3; 32],
        }
    }

    #[test]
    fn changes_survive_reopen_and_old_dirs_open_empty() {
        let dir = tempfile::tempdir().unwrap();
        let s = UserStore::open(dir.path()).unwrap();
        assert!(s.list().is_empty());
        s.apply(&[
            UserChange::Upsert {
                name: "alice".into(),
                hash: ScramHash::Sha256,
                credential: cred(0),
            },
            UserChange::Upsert {
                name: "alice".into(),
                hash: ScramHash::Sha512,
                credential: cred(1),
            },
            UserChange::Upsert {
                name: "bob".into(),
                hash: ScramHash::Sha512,
                credential: cred(2),
            },
            UserChange::Delete {
                name: "bob".into(),
                hash: ScramHash::Sha512,
            },
        ])
        .unwrap();
        drop(s);
        let s = UserStore::open(dir.path()).unwrap();
        assert_eq!(
            s.list(),
            vec![(
                "alice".to_string(),
                vec![(ScramHash::Sha256, 4096), (ScramHash::Sha512, 4097)]
            )]
        );
        assert_eq!(s.credential("alice", ScramHash::Sha512), Some(cred(1)));
        assert_eq!(s.credential("bob", ScramHash::Sha512), None);
        assert_eq!(s.unknown_user_salt("x"), s.unknown_user_salt("x"));
        assert_ne!(s.unknown_user_salt("x"), s.unknown_user_salt("y"));
    }

    #[test]
    fn compaction_keeps_the_live_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let s = UserStore::open(dir.path()).unwrap();
        for i in 0..(USERS_COMPACT_SLACK as u32 + 10) {
            s.apply(&[UserChange::Upsert {
                name: "u".into(),
                hash: ScramHash::Sha256,
                credential: cred(i % 100),
            }])
            .unwrap();
        }
        drop(s);
        let bytes = std::fs::metadata(dir.path().join(USERS_FILE))
            .unwrap()
            .len();
        assert!(bytes < 10_000, "{bytes} bytes after compaction");
        let s = UserStore::open(dir.path()).unwrap();
        assert_eq!(s.credential("u", ScramHash::Sha256), Some(cred(9)));
    }

    /// Version 1's bytes, as documented above.
    #[test]
    fn record_bytes_are_the_documented_ones() {
        let r = UserRecord::Delete {
            name: "ab".into(),
            hash: ScramHash::Sha512,
        };
        assert_eq!(r.encode().unwrap(), vec![1, 1, 0, 2, b'a', b'b', 2]);
        let u = UserRecord::Upsert {
            name: "a".into(),
            hash: ScramHash::Sha256,
            credential: ScramCredential {
                salt: vec![9],
                iterations: 4096,
                stored_key: vec![7],
                server_key: vec![8],
            },
        };
        assert_eq!(
            u.encode().unwrap(),
            vec![
                1, 0, 0, 1, b'a', 1, 0, 0, 0x10, 0, 0, 1, 9, 0, 1, 7, 0, 1, 8
            ]
        );
    }

    proptest! {
        #[test]
        fn records_round_trip(name in "\\PC{0,20}", salt in proptest::collection::vec(any::<u8>(), 0..40),
                              it in any::<u32>(), sha512 in any::<bool>(), delete in any::<bool>()) {
            let hash = if sha512 { ScramHash::Sha512 } else { ScramHash::Sha256 };
            let r = if delete {
                UserRecord::Delete { name, hash }
            } else {
                UserRecord::Upsert { name, hash, credential: ScramCredential {
                    salt: salt.clone(), iterations: it, stored_key: salt.clone(), server_key: salt } }
            };
            let bytes = r.encode().unwrap();
            prop_assert_eq!(UserRecord::decode(&bytes).unwrap(), r);
            // A byte more is refused, never ignored.
            let mut padded = bytes;
            padded.push(0);
            prop_assert!(UserRecord::decode(&padded).is_err());
        }

        #[test]
        fn any_payload_decodes_or_errs(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = UserRecord::decode(&bytes);
        }
    }
}
