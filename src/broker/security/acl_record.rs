//! The record of `__acls.meta`: one ACL binding added or removed. Replaying the file in order
//! gives the ACL set (`acls.rs`).
//!
//! # Byte layout, version 1
//!
//! The payload (framed by `metadata::record_log`, file kind 5) is, integers big-endian:
//!
//! | bytes | field |
//! | --- | --- |
//! | 1 | record version, `u8` = 1 |
//! | 1 | `u8` 1 = binding added, 2 = binding removed |
//! | 1 | resource type, `i8`, Kafka's code (2 Topic, 3 Group, 4 Cluster, 5 TransactionalId, 6 DelegationToken, 7 User) |
//! | 2 + n | resource name: `u16` byte count, then UTF-8 |
//! | 1 | pattern type, `i8`, Kafka's code (3 Literal, 4 Prefixed) |
//! | 2 + n | principal type (`User`): `u16` byte count, then UTF-8 |
//! | 2 + n | principal name: `u16` byte count, then UTF-8 |
//! | 2 + n | host (`*` or an IP address): `u16` byte count, then UTF-8 |
//! | 1 | operation, `i8`, Kafka's code (2 All … 14 DescribeTokens) |
//! | 1 | permission, `i8`, Kafka's code (2 Deny, 3 Allow) |
//!
//! Nothing may follow. A record whose binding does not validate (`AclBinding::validate`: an
//! unknown code, `Any`, an empty name) does not decode, so it stops the start naming the file
//! and offset rather than granting something nobody asked for. A new layout gets a new
//! version byte; version 1 stays readable. Format 0 never existed for this file.

use crate::broker::metadata::be_codec::{Reader, put_str};
use crate::broker::metadata::record_log::MetaRecord;
use crate::security::Principal;
use crate::security::acl::{AclBinding, AclOperation, AclPermission, PatternType, ResourceType};

/// The header's file-kind byte of `__acls.meta`.
pub(crate) const ACL_FILE_KIND: u8 = 5;
const ACL_RECORD_V1: u8 = 1;
const ADDED: u8 = 1;
const REMOVED: u8 = 2;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AclRecord {
    Added(AclBinding),
    Removed(AclBinding),
}

impl MetaRecord for AclRecord {
    const FILE_KIND: u8 = ACL_FILE_KIND;

    fn encode(&self) -> Result<Vec<u8>, String> {
        let (tag, b) = match self {
            AclRecord::Added(b) => (ADDED, b),
            AclRecord::Removed(b) => (REMOVED, b),
        };
        let mut out = vec![ACL_RECORD_V1, tag, b.resource_type.code() as u8];
        put_str(&mut out, &b.name)?;
        out.push(b.pattern_type.code() as u8);
        put_str(&mut out, &b.principal.kind)?;
        put_str(&mut out, &b.principal.name)?;
        put_str(&mut out, &b.host)?;
        out.push(b.operation.code() as u8);
        out.push(b.permission.code() as u8);
        Ok(out)
    }

    fn decode(payload: &[u8]) -> Result<Self, String> {
        let mut r = Reader::new(payload);
        match r.u8()? {
            ACL_RECORD_V1 => {}
            v => return Err(format!("unknown ACL record version {v}")),
        }
        let tag = r.u8()?;
        let resource_type = ResourceType::from_code(r.i8()?);
        let name = r.string()?;
        let pattern_type = PatternType::from_code(r.i8()?);
        let kind = r.string()?;
        let principal_name = r.string()?;
        let host = r.string()?;
        let operation = AclOperation::from_code(r.i8()?);
        let permission = AclPermission::from_code(r.i8()?);
        if r.remaining() != 0 {
            return Err(format!("{} bytes after the record", r.remaining()));
        }
        let binding = AclBinding {
            resource_type,
            name,
            pattern_type,
            principal: Principal {
                kind,
                name: principal_name,
            },
            host,
            operation,
            permission,
        };
        binding.validate()?;
        match tag {
            ADDED => Ok(AclRecord::Added(binding)),
            REMOVED => Ok(AclRecord::Removed(binding)),
            t => Err(format!("unknown ACL record tag {t}")),
        }
    }

    fn decode_legacy(_payload: &[u8]) -> Result<Self, String> {
        Err("__acls.meta has no legacy format".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn binding() -> impl Strategy<Value = AclBinding> {
        (
            prop_oneof![
                Just(ResourceType::Topic),
                Just(ResourceType::Group),
                Just(ResourceType::TransactionalId)
            ],
            "[a-z*é-]{1,20}",
            any::<bool>(),
            "[A-Za-z]{1,8}",
            "[a-z*]{1,8}",
            prop_oneof![Just("*".to_string()), Just("10.0.0.1".to_string())],
            3i8..=12,
            any::<bool>(),
        )
            .prop_map(
                |(rt, name, prefixed, kind, who, host, op, allow)| AclBinding {
                    resource_type: rt,
                    name,
                    pattern_type: if prefixed {
                        PatternType::Prefixed
                    } else {
                        PatternType::Literal
                    },
                    principal: Principal { kind, name: who },
                    host,
                    operation: AclOperation::from_code(op),
                    permission: if allow {
                        AclPermission::Allow
                    } else {
                        AclPermission::Deny
                    },
                },
            )
    }

    proptest! {
        #[test]
        fn records_round_trip(b in binding(), added in any::<bool>()) {
            let r = if added { AclRecord::Added(b) } else { AclRecord::Removed(b) };
            let bytes = r.encode().unwrap();
            prop_assert_eq!(AclRecord::decode(&bytes).unwrap(), r);
            // Every strict prefix is refused, never misread.
            for cut in 0..bytes.len() {
                prop_assert!(AclRecord::decode(&bytes[..cut]).is_err());
            }
            // And so is a byte more.
            let mut padded = bytes.clone();
            padded.push(0);
            prop_assert!(AclRecord::decode(&padded).is_err());
        }
    }

    #[test]
    fn layout_is_as_documented() {
        let b = AclBinding {
            resource_type: ResourceType::Topic,
            name: "t".into(),
            pattern_type: PatternType::Prefixed,
            principal: Principal::user("a"),
            host: "*".into(),
            operation: AclOperation::Read,
            permission: AclPermission::Allow,
        };
        let bytes = AclRecord::Added(b).encode().unwrap();
        assert_eq!(
            bytes,
            [
                1, 1, 2, 0, 1, b't', 4, 0, 4, b'U', b's', b'e', b'r', 0, 1, b'a', 0, 1, b'*', 3, 3
            ]
        );
        let mut bad = bytes.clone();
        bad[19] = 1; // operation ANY is never stored
        assert!(AclRecord::decode(&bad).is_err());
        let mut bad = bytes;
        bad[0] = 2;
        assert!(AclRecord::decode(&bad).is_err());
    }
}
