//! SASL over the wire on a SASL_PLAINTEXT listener: SCRAM-SHA-256/512 and PLAIN logins with a
//! client written in the test (`sasl_client`), the pre-authentication gate, failed logins (the
//! delay, the close), KIP-368 re-authentication, credentials managed online
//! (AlterUserScramCredentials) and offline (`thorstream users`), and their persistence.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod sasl_client;

use kafka_protocol::messages::*;
use sasl_client::{Client, Hash};
use thorstream::internals::security::{ScramCredential, ScramHash, UserChange, new_salt};
use thorstream::server::{SecurityProtocol, ServerConfig};
use thorstream::{Broker, TopicConfig};

use common::requests::{batch, fetch_request, produce_request};
use common::server::{Fixture, start};

fn sasl_listener(sc: &mut ServerConfig) {
    sc.listeners[0].protocol = SecurityProtocol::SaslPlaintext;
}

/// Adds `user` with `password` for both SCRAM mechanisms, as `thorstream users add` does.
fn add_user(broker: &Broker, user: &str, password: &str) {
    let changes: Vec<UserChange> = [ScramHash::Sha256, ScramHash::Sha512]
        .into_iter()
        .map(|hash| UserChange::Upsert {
            name: user.to_string(),
            hash,
            credential: ScramCredential::from_password(
                hash,
                password.as_bytes(),
                new_salt().unwrap(),
                4096,
            ),
        })
        .collect();
    broker.users().apply(&changes).unwrap();
}

fn sasl_server(tune: impl FnOnce(&mut ServerConfig)) -> Fixture {
    let f = start(
        |_| {},
        [("t", TopicConfig::with_partitions(1))],
        |sc| {
            sasl_listener(sc);
            tune(sc);
        },
    );
    add_user(&f.broker, "alice", "alice-secret");
    f
}

/// Produces one record and fetches it back on an authenticated connection.
fn produce_and_fetch(c: &mut Client, value: &[u8]) {
    let req = produce_request("t", 0, Some(batch(&[value]).into()), -1);
    let r: ProduceResponse = c.call(ApiKey::Produce, 9, &req).expect("produce answered");
    let p = &r.responses[0].partition_responses[0];
    assert_eq!(p.error_code, 0);
    let offset = p.base_offset;
    let f: FetchResponse = c
        .call(
            ApiKey::Fetch,
            12,
            &fetch_request("t", 0, offset, 1, 500, 1 << 20),
        )
        .expect("fetch answered");
    let part = &f.responses[0].partitions[0];
    assert_eq!(part.error_code, 0);
    let records = part.records.as_ref().expect("records");
    assert!(
        records.windows(value.len()).any(|w| w == value),
        "the produced value is fetched back"
    );
}

#[test]
fn scram_sha256_sha512_and_plain_logins_then_produce_and_fetch() {
    let f = sasl_server(|_| {});
    for hash in [Hash::Sha256, Hash::Sha512] {
        let mut c = Client::connect(f.addr);
        assert_eq!(c.scram(hash, "alice", "alice-secret"), Ok(0));
        produce_and_fetch(&mut c, format!("via {}", hash.mechanism()).as_bytes());
    }
    let mut c = Client::connect(f.addr);
    c.auth_version = 0;
    assert_eq!(c.plain("alice", "alice-secret"), Ok(0));
    produce_and_fetch(&mut c, b"via PLAIN");
}
