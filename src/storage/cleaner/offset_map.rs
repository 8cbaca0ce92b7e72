//! The cleaner's key → latest offset map: a fixed-size open-addressing hash table of key
//! digests, as Kafka's `SkimpyOffsetMap`.
//!
//! Memory is fixed at construction: `slots × (DIGEST_BYTES + 8)` bytes, whatever the keys'
//! sizes (a key is stored as a 128-bit digest, never as its bytes). The table accepts at most
//! `capacity()` keys (`slots × LOAD_FACTOR`, Kafka's `log.cleaner.io.buffer.load.factor` 0.9);
//! the cleaner stops mapping at a batch boundary before it would exceed that and cleans only
//! the prefix it mapped. Two keys with the same digest would share a slot (one record of the
//! older key could then be dropped); with 128-bit digests the chance is about n²/2¹²⁹.
//!
//! Invariants: `put` keeps the larger offset for a key (offsets are fed in increasing order;
//! the max also holds otherwise); `latest_offset` is the largest offset ever put.

use std::hash::{Hash, Hasher};

/// Bytes of one key digest.
pub const DIGEST_BYTES: usize = 16;
/// Bytes of one slot: digest + offset.
pub const SLOT_BYTES: usize = DIGEST_BYTES + 8;
/// Fraction of the slots the map fills at most (keeps linear probes short).
const LOAD_FACTOR: f64 = 0.9;

#[derive(Debug)]
pub struct OffsetMap {
    digests: Vec<[u8; DIGEST_BYTES]>,
    /// `-1`: the slot is empty.
    offsets: Vec<i64>,
    entries: usize,
    latest_offset: i64,
}

/// A 128-bit digest of `key`: two SipHash-1-3 runs (std's `DefaultHasher`, fixed keys) over
/// the key with different one-byte prefixes. Only compared within one pass, never stored.
pub fn digest(key: &[u8]) -> [u8; DIGEST_BYTES] {
    let mut out = [0u8; DIGEST_BYTES];
    for (i, half) in out.chunks_exact_mut(8).enumerate() {
        let mut h = std::hash::DefaultHasher::new();
        (i as u8).hash(&mut h);
        key.hash(&mut h);
        half.copy_from_slice(&h.finish().to_le_bytes());
    }
    out
}

impl OffsetMap {
    /// A map using at most `memory_bytes` (at least one slot).
    pub fn with_memory(memory_bytes: usize) -> OffsetMap {
        let slots = (memory_bytes / SLOT_BYTES).max(2);
        OffsetMap {
            digests: vec![[0u8; DIGEST_BYTES]; slots],
            offsets: vec![-1; slots],
            entries: 0,
            latest_offset: -1,
        }
    }

    /// Bytes the table holds (what `with_memory` allocated).
    pub fn memory_bytes(&self) -> usize {
        self.offsets.len() * SLOT_BYTES
    }

    /// Most keys it accepts.
    pub fn capacity(&self) -> usize {
        ((self.offsets.len() as f64 * LOAD_FACTOR) as usize).max(1)
    }

    pub fn len(&self) -> usize {
        self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// Room for `keys` more keys (at worst all new).
    pub fn has_room_for(&self, keys: usize) -> bool {
        self.entries.saturating_add(keys) <= self.capacity()
    }

    /// The largest offset put, `-1` if none.
    pub fn latest_offset(&self) -> i64 {
        self.latest_offset
    }

    /// Records that `key` was seen at `offset`. Returns false (and changes nothing) when the
    /// key is new and the map is at capacity.
    pub fn put(&mut self, key: &[u8], offset: i64) -> bool {
        let d = digest(key);
        let slot = self.probe(&d);
        if self.offsets[slot] < 0 {
            if self.entries >= self.capacity() {
                return false;
            }
            self.entries += 1;
            self.digests[slot] = d;
            self.offsets[slot] = offset;
        } else {
            self.offsets[slot] = self.offsets[slot].max(offset);
        }
        self.latest_offset = self.latest_offset.max(offset);
        true
    }

    /// The latest offset of `key`, if it was put.
    pub fn get(&self, key: &[u8]) -> Option<i64> {
        let d = digest(key);
        let off = self.offsets[self.probe(&d)];
        (off >= 0).then_some(off)
    }

    /// Records that offsets up to `offset` were scanned (a batch without keys still moves the
    /// end of the mapped range).
    pub fn scanned_to(&mut self, offset: i64) {
        self.latest_offset = self.latest_offset.max(offset);
    }

    /// The slot holding `d`, or the empty slot where it would go. Terminates: the table is
    /// never full (`capacity() < slots`).
    fn probe(&self, d: &[u8; DIGEST_BYTES]) -> usize {
        let n = self.offsets.len();
        let mut slot = (u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
            % n as u64) as usize;
        loop {
            if self.offsets[slot] < 0 || &self.digests[slot] == d {
                return slot;
            }
            slot = (slot + 1) % n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    proptest! {
        /// Against a `HashMap`: every accepted key maps to its largest offset; once full, new
        /// keys are refused and old ones still update.
        #[test]
        fn behaves_as_a_bounded_map(ops in proptest::collection::vec((0u16..200, 0i64..10_000), 0..400), memory in 48usize..4000) {
            let mut map = OffsetMap::with_memory(memory);
            let mut model: HashMap<u16, i64> = HashMap::new();
            for (k, off) in ops {
                let key = k.to_be_bytes();
                let known = model.contains_key(&k);
                let accepted = map.put(&key, off);
                prop_assert_eq!(accepted, known || model.len() < map.capacity());
                if accepted {
                    let e = model.entry(k).or_insert(off);
                    *e = (*e).max(off);
                }
                prop_assert!(map.len() <= map.capacity());
            }
            for (k, off) in &model {
                prop_assert_eq!(map.get(&k.to_be_bytes()), Some(*off));
            }
            prop_assert_eq!(map.len(), model.len());
            prop_assert!(map.memory_bytes() <= memory.max(2 * SLOT_BYTES));
        }
    }
}
