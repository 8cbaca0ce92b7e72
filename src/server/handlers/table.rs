//! The one table of the APIs the server implements: for each, the versions it accepts and the
//! handler that answers it. Everything about "which APIs, which versions" reads this table:
//! ApiVersions is generated from it (`api_versions`), the request decoder checks a request's
//! version against it before decoding (`decode_request` below hands `supported_range` to
//! `protocol::request`, which takes the lookup as a parameter so the protocol layer does not
//! depend on server types), and `dispatch` runs the entry's handler.
//!
//! Invariants, and why they cannot break silently:
//! - An API is advertised if and only if it has a handler: range and handler are fields of the
//!   same entry, so there is no second list to forget.
//! - An entry's handler receives its own API's request: `api!` names the API once, and that one
//!   identifier is both the entry's `ApiKey` and the `RequestKind` variant the handler unwraps.
//!   (The decoder builds the request from the same key, so the mismatch arm is unreachable;
//!   it closes the connection rather than panic.)
//! - No API is listed twice and every range is non-empty: checked at compile time below.
//! - Every range is within what the codec can decode and encode: a unit test (the codec's
//!   `valid_versions` is not a const fn).

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind};

use super::Ctx;
use super::{
    Outcome, acls, admin, api_versions, configs, describe_log_dirs, describe_producers, fetch,
    groups, init_producer_id, list_offsets, metadata, offsets, produce, sasl, scram_users, txn,
};
use crate::protocol::request::{self, DecodeError, DecodedRequest};
use crate::server::session::Caller;

/// Runs one decoded request.
pub type Handler = fn(&Ctx, &RequestHeader, RequestKind, &Caller) -> Outcome;

/// One implemented API.
pub struct Api {
    pub key: ApiKey,
    pub min_version: i16,
    pub max_version: i16,
    pub handler: Handler,
}

/// `api!(Name, min..=max, |ctx, header, request, caller| body)`: an entry for `ApiKey::Name`
/// whose handler unwraps `RequestKind::Name` into `request` and evaluates `body`.
macro_rules! api {
    ($key:ident, $min:literal ..= $max:literal,
     |$ctx:pat_param, $header:pat_param, $request:pat_param, $caller:pat_param| $body:expr) => {
        Api {
            key: ApiKey::$key,
            min_version: $min,
            max_version: $max,
            handler: |$ctx, $header, request, $caller| match request {
                RequestKind::$key($request) => $body,
                _ => Outcome::Close(
                    concat!(
                        "a request of another API reached the ",
                        stringify!($key),
                        " handler"
                    )
                    .to_string(),
                ),
            },
        }
    };
}

/// Every API the server implements, with its supported versions and handler (`v` is the
/// request's version). Not formatted by rustfmt, to stay one line per API.
#[rustfmt::skip]
pub const APIS: &[Api] = &[
    api!(Produce,          3..=9,  |ctx, h, r, c| produce::handle(ctx, v(h), r, c)),
    api!(Fetch,            4..=12, |ctx, h, r, c| fetch::handle(ctx, v(h), Box::new(r), c)),
    api!(ListOffsets,      1..=10, |ctx, h, r, c| list_offsets::handle(ctx, v(h), r, c)),
    api!(Metadata,         0..=12, |ctx, h, r, c| metadata::handle(ctx, v(h), r, c)),
    api!(OffsetCommit,     2..=8,  |ctx, _, r, c| offsets::offset_commit(ctx, r, c)),
    api!(OffsetFetch,      1..=7,  |ctx, h, r, c| offsets::offset_fetch(ctx, v(h), r, c)),
    api!(TxnOffsetCommit,  0..=4,  |ctx, _, r, c| offsets::txn_offset_commit(ctx, r, c)),
    api!(FindCoordinator,  0..=4,  |ctx, h, r, c| offsets::find_coordinator(ctx, v(h), r, c)),
    api!(ApiVersions,      0..=4,  |_, _, _, _| api_versions::handle(supported_apis())),
    api!(CreateTopics,     2..=7,  |ctx, h, r, c| admin::create_topics(ctx, v(h), r, c)),
    api!(DeleteTopics,     1..=6,  |ctx, h, r, c| admin::delete_topics(ctx, v(h), r, c)),
    api!(DeleteRecords,    0..=2,  |ctx, _, r, c| admin::delete_records(ctx, r, c)),
    api!(DescribeConfigs,  1..=4,  |ctx, h, r, c| configs::describe_configs(ctx, v(h), r, c)),
    api!(AlterConfigs,     0..=2,  |ctx, _, r, c| configs::alter_configs(ctx, r, c)),
    api!(IncrementalAlterConfigs, 0..=1, |ctx, _, r, c| configs::incremental_alter_configs(ctx, r, c)),
    api!(CreatePartitions, 0..=3,  |ctx, _, r, c| admin::create_partitions(ctx, r, c)),
    api!(DescribeCluster,  0..=1,  |ctx, _, r, c| admin::describe_cluster(ctx, r, c)),
    api!(JoinGroup,        0..=9,  |ctx, h, r, c| groups::join_group(ctx, h, r, c)),
    api!(SyncGroup,        0..=5,  |ctx, h, r, c| groups::sync_group(ctx, v(h), r, c)),
    api!(Heartbeat,        0..=4,  |ctx, _, r, c| groups::heartbeat(ctx, r, c)),
    api!(LeaveGroup,       0..=5,  |ctx, h, r, c| groups::leave_group(ctx, v(h), r, c)),
    api!(DescribeGroups,   0..=6,  |ctx, h, r, c| groups::describe_groups(ctx, v(h), r, c)),
    api!(ListGroups,       0..=5,  |ctx, _, r, c| groups::list_groups(ctx, r, c)),
    api!(DeleteGroups,     0..=2,  |ctx, _, r, c| groups::delete_groups(ctx, r, c)),
    api!(OffsetDelete,     0..=0,  |ctx, _, r, c| groups::offset_delete(ctx, r, c)),
    api!(InitProducerId,   0..=5,  |ctx, h, r, c| init_producer_id::handle(ctx, v(h), r, c)),
    api!(AddPartitionsToTxn, 0..=3, |ctx, h, r, c| txn::add_partitions_to_txn(ctx, v(h), r, c)),
    api!(AddOffsetsToTxn,  0..=4,  |ctx, h, r, c| txn::add_offsets_to_txn(ctx, v(h), r, c)),
    api!(EndTxn,           0..=4,  |ctx, h, r, c| txn::end_txn(ctx, v(h), r, c)),
    api!(DescribeTransactions, 0..=0, |ctx, _, r, c| txn::describe_transactions(ctx, r, c)),
    api!(ListTransactions, 0..=1,  |ctx, _, r, c| txn::list_transactions(ctx, r, c)),
    api!(DescribeLogDirs,  0..=4,  |ctx, _, r, c| describe_log_dirs::handle(ctx, r, c)),
    api!(DescribeProducers, 0..=0, |ctx, _, r, c| describe_producers::handle(ctx, r, c)),
    api!(CreateAcls,       1..=3,  |ctx, _, r, c| acls::create_acls(ctx, r, c)),
    api!(DescribeAcls,     1..=3,  |ctx, _, r, c| acls::describe_acls(ctx, r, c)),
    api!(DeleteAcls,       1..=3,  |ctx, _, r, c| acls::delete_acls(ctx, r, c)),
    api!(SaslHandshake,    0..=1,  |_, _, _, _| sasl::not_through_the_table()),
    api!(SaslAuthenticate, 0..=2,  |_, _, _, _| sasl::not_through_the_table()),
    api!(DescribeUserScramCredentials, 0..=0, |ctx, _, r, c| scram_users::describe(ctx, r, c)),
    api!(AlterUserScramCredentials, 0..=0, |ctx, _, r, c| scram_users::alter(ctx, r, c)),
];

fn v(header: &RequestHeader) -> i16 {
    header.request_api_version
}

// No API listed twice (the first entry would shadow the second), no empty range.
const _: () = {
    let mut i = 0;
    while i < APIS.len() {
        assert!(APIS[i].min_version <= APIS[i].max_version);
        let mut j = i + 1;
        while j < APIS.len() {
            assert!(APIS[i].key as i16 != APIS[j].key as i16);
            j += 1;
        }
        i += 1;
    }
};

/// The entry of `api`, if the server implements it.
pub fn entry(api: ApiKey) -> Option<&'static Api> {
    APIS.iter().find(|a| a.key == api)
}

/// The supported version range of `api`, if it is implemented at all.
pub fn supported_range(api: ApiKey) -> Option<(i16, i16)> {
    entry(api).map(|a| (a.min_version, a.max_version))
}

/// `(api, min_version, max_version)` of every implemented API, in table order.
pub fn supported_apis() -> impl Iterator<Item = (ApiKey, i16, i16)> {
    APIS.iter().map(|a| (a.key, a.min_version, a.max_version))
}

/// Decodes one request frame as the worker does: `protocol::request` checked against this
/// table's ranges (also what the fuzz target runs, via `crate::internals`).
pub fn decode_request(frame: Bytes) -> Result<DecodedRequest, DecodeError> {
    request::decode_request(frame, supported_range)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_within_what_the_codec_can_encode() {
        for (api, min, max) in supported_apis() {
            let codec = api.valid_versions();
            assert!(
                min >= codec.min && max <= codec.max,
                "{api:?} {min}..{max} vs {codec}"
            );
        }
    }

    #[test]
    fn unlisted_apis_have_no_range() {
        assert_eq!(supported_range(ApiKey::Fetch), Some((4, 12)));
        assert_eq!(supported_range(ApiKey::ElectLeaders), None);
        assert_eq!(supported_apis().count(), APIS.len());
    }
}
