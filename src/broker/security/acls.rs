//! The persisted ACL bindings: `__acls.meta` (record log of `acl_record::AclRecord`, file
//! kind 5) and the in-memory `AclSet` the authorizer reads.
//!
//! Invariants:
//! - the set is exactly the replay of the file: a change is written and fsynced before it is
//!   applied to the set (so a binding a client was told about survives a crash, and no
//!   decision uses a binding that is not durable);
//! - changes are serialised by the file's mutex, taken before the set's write lock, so the
//!   file's order is the order changes were applied;
//! - decisions take only the set's read lock (`read`), never the file's mutex;
//! - a data directory without the file opens with no ACLs (the file is created empty); at open
//!   a file holding superseded records is rewritten to the live bindings.

use std::path::Path;
use std::sync::{Mutex, RwLock, RwLockReadGuard};

use super::acl_record::AclRecord;
use crate::broker::metadata::record_log::RecordLog;
use crate::error::{Error, Result};
use crate::security::acl::{AclBinding, AclBindingFilter, AclSet};

pub(crate) const ACLS_FILE: &str = "__acls.meta";

pub struct AclStore {
    file: Mutex<RecordLog<AclRecord>>,
    set: RwLock<AclSet>,
}

impl AclStore {
    /// Opens (or creates) `__acls.meta` in `dir` and replays it.
    pub(crate) fn open(dir: &Path) -> Result<AclStore> {
        let (mut file, records) = RecordLog::<AclRecord>::open(&dir.join(ACLS_FILE))?;
        let replayed = records.len();
        let mut set = AclSet::default();
        for r in records {
            match r {
                AclRecord::Added(b) => {
                    set.insert(b);
                }
                AclRecord::Removed(b) => {
                    set.remove(&b);
                }
            }
        }
        if replayed != set.len() {
            let live: Vec<AclRecord> = set.bindings().cloned().map(AclRecord::Added).collect();
            file.rewrite(&live)?;
        }
        Ok(AclStore {
            file: Mutex::new(file),
            set: RwLock::new(set),
        })
    }

    /// The bindings, for decisions and DescribeAcls (a read lock: hold it briefly).
    pub fn read(&self) -> RwLockReadGuard<'_, AclSet> {
        self.set.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds the bindings (each already validated); those already present are left as they
    /// are. Durable when it returns.
    pub fn create(&self, bindings: &[AclBinding]) -> Result<()> {
        let mut file = self.lock_file()?;
        let new: Vec<AclRecord> = {
            let set = self.read();
            let mut seen = std::collections::BTreeSet::new();
            bindings
                .iter()
                .filter(|b| !set.contains(b) && seen.insert(*b))
                .cloned()
                .map(AclRecord::Added)
                .collect()
        };
        write_durably(&mut file, &new)?;
        let mut set = self.set.write().unwrap_or_else(|p| p.into_inner());
        for r in new {
            if let AclRecord::Added(b) = r {
                set.insert(b);
            }
        }
        Ok(())
    }

    /// Removes every binding each filter matches; returns, per filter, the bindings it
    /// removed (a binding matched by two filters is reported by both, as Kafka). Durable when
    /// it returns.
    pub fn delete(&self, filters: &[AclBindingFilter]) -> Result<Vec<Vec<AclBinding>>> {
        let mut file = self.lock_file()?;
        let (matched, removed): (Vec<Vec<AclBinding>>, Vec<AclRecord>) = {
            let set = self.read();
            let matched: Vec<Vec<AclBinding>> = filters
                .iter()
                .map(|f| set.bindings().filter(|b| f.matches(b)).cloned().collect())
                .collect();
            let unique: std::collections::BTreeSet<&AclBinding> =
                matched.iter().flatten().collect();
            let removed = unique
                .into_iter()
                .cloned()
                .map(AclRecord::Removed)
                .collect();
            (matched, removed)
        };
        write_durably(&mut file, &removed)?;
        let mut set = self.set.write().unwrap_or_else(|p| p.into_inner());
        for r in &removed {
            if let AclRecord::Removed(b) = r {
                set.remove(b);
            }
        }
        Ok(matched)
    }

    fn lock_file(&self) -> Result<std::sync::MutexGuard<'_, RecordLog<AclRecord>>> {
        self.file
            .lock()
            .map_err(|_| Error::Metadata(format!("{ACLS_FILE}: a writer panicked")))
    }
}

fn write_durably(file: &mut RecordLog<AclRecord>, records: &[AclRecord]) -> Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    file.append_all(records)?;
    file.sync_handle()?
        .sync_data()
        .map_err(|e| Error::Metadata(format!("{ACLS_FILE}: fsync: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::Principal;
    use crate::security::acl::{AclOperation, AclPermission, PatternType, ResourceType};

    fn b(name: &str) -> AclBinding {
        AclBinding {
            resource_type: ResourceType::Topic,
            name: name.to_string(),
            pattern_type: PatternType::Literal,
            principal: Principal::user("a"),
            host: "*".into(),
            operation: AclOperation::Read,
            permission: AclPermission::Allow,
        }
    }

    #[test]
    fn bindings_survive_reopen_and_deletes_are_replayed() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = AclStore::open(dir.path()).unwrap();
            assert!(store.read().is_empty());
            store.create(&[b("x"), b("y"), b("x")]).unwrap();
            store.create(&[b("z")]).unwrap();
            let f = AclBindingFilter {
                name: Some("y".into()),
                ..AclBindingFilter::any()
            };
            let removed = store.delete(&[f.clone(), f]).unwrap();
            assert_eq!(removed, vec![vec![b("y")], vec![b("y")]]);
        }
        let len_before = std::fs::metadata(dir.path().join(ACLS_FILE)).unwrap().len();
        let store = AclStore::open(dir.path()).unwrap();
        let names: Vec<String> = store.read().bindings().map(|b| b.name.clone()).collect();
        assert_eq!(names, ["x", "z"]);
        // The superseded records were compacted away at open.
        let len_after = std::fs::metadata(dir.path().join(ACLS_FILE)).unwrap().len();
        assert!(len_after < len_before);
        drop(store);
        let store = AclStore::open(dir.path()).unwrap();
        assert_eq!(store.read().len(), 2);
    }
}
