//! Topics: name rules, identity, and their partitions.

use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use super::partition::Partition;
use crate::config::TopicConfig;
use crate::error::Error;

pub use crate::limits::TOPIC_NAME_BYTES_MAX;

/// Kafka's topic name rules: 1..=249 chars of `[a-zA-Z0-9._-]`, not `.` or `..`. These rules
/// also make the name safe as a path component.
pub fn validate_topic_name(name: &str) -> Result<(), Error> {
    let bad = |why| Err(Error::InvalidTopic(name.to_string(), why));
    if name.is_empty() {
        return bad("topic name is empty");
    }
    if name.len() > TOPIC_NAME_BYTES_MAX {
        return bad("topic name is longer than 249 characters");
    }
    if name == "." || name == ".." {
        return bad("topic name cannot be '.' or '..'");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return bad("topic names may contain only ASCII alphanumerics, '.', '_' and '-'");
    }
    Ok(())
}

/// A persisted topic definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicMeta {
    pub name: String,
    pub id: [u8; 16],
    pub config: TopicConfig,
}

pub struct Topic {
    pub meta: RwLock<TopicMeta>,
    pub partitions: RwLock<Vec<Arc<Partition>>>,
}

impl Topic {
    pub fn partition(&self, index: i32) -> Option<Arc<Partition>> {
        let parts = self.partitions.read().ok()?;
        usize::try_from(index)
            .ok()
            .and_then(|i| parts.get(i).cloned())
    }

    /// The partitions as they are now (CreatePartitions may add more after it).
    pub fn partitions_snapshot(&self) -> Vec<Arc<Partition>> {
        self.partitions
            .read()
            .map(|p| p.clone())
            .unwrap_or_default()
    }

    pub fn partition_count(&self) -> usize {
        self.partitions.read().map(|p| p.len()).unwrap_or(0)
    }

    pub fn id(&self) -> [u8; 16] {
        self.meta.read().map(|m| m.id).unwrap_or([0; 16])
    }
}

/// A fresh random 16-byte topic id (UUID v4 layout) from the std hasher's random keys.
pub fn new_topic_id() -> [u8; 16] {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut out = [0u8; 16];
    for (i, chunk) in out.chunks_mut(8).enumerate() {
        let mut h = RandomState::new().build_hasher();
        h.write_u128(nanos);
        h.write_usize(i);
        chunk.copy_from_slice(&h.finish().to_be_bytes());
    }
    out[6] = (out[6] & 0x0f) | 0x40;
    out[8] = (out[8] & 0x3f) | 0x80;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(validate_topic_name("events.v1_x-2").is_ok());
        for bad in ["", ".", "..", "a/b", "../etc", "a b", "ü"] {
            assert!(validate_topic_name(bad).is_err(), "{bad:?} accepted");
        }
        assert!(validate_topic_name(&"a".repeat(250)).is_err());
    }

    #[test]
    fn topic_ids_are_distinct_and_nonzero() {
        let a = new_topic_id();
        let b = new_topic_id();
        assert_ne!(a, b);
        assert_ne!(a, [0; 16]);
    }
}
