//! SASL over the wire on a SASL_PLAINTEXT listener: SCRAM-SHA-256/512 and PLAIN logins with a
//! client written in the test (`sasl_client`), the pre-authentication gate, failed logins (the
//! delay, the close), KIP-368 re-authentication, credentials managed online
//! (AlterUserScramCredentials) and offline (`thorstream users`), and their persistence.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod sasl_client;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use sasl_client::{Client, Hash, LoginError};
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

/// SaslHandshake v0, then raw tokens (size-prefixed, no request header), as librdkafka before
/// 2.11 (Debian's kcat) may send them: SCRAM and PLAIN logins succeed and the connection then
/// serves Kafka requests; a wrong password gets no answer, and the connection is closed.
#[test]
fn handshake_v0_then_raw_tokens_logs_in_and_a_wrong_password_is_closed() {
    let f = sasl_server(|_| {});
    for hash in [Hash::Sha256, Hash::Sha512] {
        let mut c = Client::connect(f.addr);
        c.raw_tokens = true;
        assert_eq!(c.scram(hash, "alice", "alice-secret"), Ok(0));
        produce_and_fetch(&mut c, format!("raw {}", hash.mechanism()).as_bytes());
    }
    let mut c = Client::connect(f.addr);
    c.raw_tokens = true;
    assert_eq!(c.plain("alice", "alice-secret"), Ok(0));
    produce_and_fetch(&mut c, b"raw PLAIN");
    let mut c = Client::connect(f.addr);
    c.raw_tokens = true;
    assert_eq!(c.plain("alice", "wrong"), Err(LoginError::Closed));
    let mut c = Client::connect(f.addr);
    c.raw_tokens = true;
    assert_eq!(
        c.scram(Hash::Sha512, "alice", "wrong"),
        Err(LoginError::Closed)
    );
}

/// Kafka's message for a failed SCRAM login (the same for a wrong password and an unknown
/// user, so it does not tell which users exist).
fn scram_failure(hash: Hash) -> LoginError {
    LoginError::Refused(
        58,
        Some(format!(
            "Authentication failed during authentication due to invalid credentials with SASL mechanism {}",
            hash.mechanism()
        )),
    )
}

#[test]
fn wrong_password_and_unknown_user_are_refused_after_the_delay_then_closed() {
    let f = sasl_server(|sc| sc.failed_authentication_delay_ms = 300);
    for (user, password) in [("alice", "wrong"), ("mallory", "alice-secret")] {
        for hash in [Hash::Sha256, Hash::Sha512] {
            let mut c = Client::connect(f.addr);
            let started = Instant::now();
            assert_eq!(c.scram(hash, user, password), Err(scram_failure(hash)));
            assert!(
                started.elapsed() >= Duration::from_millis(300),
                "answered after {:?}, before the delay",
                started.elapsed()
            );
            assert!(c.is_closed(), "closed after a failed login");
        }
        let mut c = Client::connect(f.addr);
        let started = Instant::now();
        assert_eq!(
            c.plain(user, password),
            Err(LoginError::Refused(
                58,
                Some("Authentication failed: Invalid username or password".into())
            ))
        );
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert!(c.is_closed());
    }
}

#[test]
fn requests_before_authentication_are_refused() {
    let f = sasl_server(|_| {});
    // ApiVersions is served, Metadata closes the connection.
    let mut c = Client::connect(f.addr);
    let v: Option<ApiVersionsResponse> =
        c.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    let v = v.expect("ApiVersions before authentication");
    assert!(
        v.api_keys
            .iter()
            .any(|k| k.api_key == ApiKey::SaslHandshake as i16)
    );
    let m: Option<MetadataResponse> = c.call(ApiKey::Metadata, 12, &MetadataRequest::default());
    assert!(
        m.is_none(),
        "Metadata before authentication closes the connection"
    );
    // After the handshake, still nothing else.
    let mut c = Client::connect(f.addr);
    assert_eq!(c.handshake("SCRAM-SHA-256").unwrap().error_code, 0);
    let p: Option<ProduceResponse> = c.call(
        ApiKey::Produce,
        9,
        &produce_request("t", 0, Some(batch(&[b"x"]).into()), 1),
    );
    assert!(p.is_none());
    assert!(f.broker.read_records("t", 0, 0, 1024).unwrap().0.is_empty());
    // SaslAuthenticate before SaslHandshake: ILLEGAL_SASL_STATE.
    let mut c = Client::connect(f.addr);
    assert_eq!(
        c.authenticate(b"\0alice\0alice-secret").unwrap().error_code,
        34
    );
    assert!(c.is_closed());
    // A mechanism the listener does not offer: UNSUPPORTED_SASL_MECHANISM and the list.
    let g =
        sasl_server(|sc| sc.sasl_mechanisms = vec![thorstream::server::SaslMechanism::ScramSha512]);
    let mut c = Client::connect(g.addr);
    let h = c.handshake("PLAIN").unwrap();
    assert_eq!(h.error_code, 33);
    assert_eq!(
        h.mechanisms,
        vec![StrBytes::from_static_str("SCRAM-SHA-512")]
    );
    assert!(c.is_closed());
    // A frame over the pre-authentication limit closes the connection.
    let g = sasl_server(|sc| sc.unauthenticated_request_bytes_max = 1024);
    let mut c = Client::connect(g.addr);
    let big = vec![b'x'; 4096];
    assert_eq!(c.authenticate(&big), None);
    // A connection that never authenticates is closed at its deadline.
    let g = sasl_server(|sc| sc.authentication_timeout_ms = 200);
    let mut c = Client::connect(g.addr);
    assert!(c.is_closed(), "closed at the authentication deadline");
}

#[test]
fn reauthentication_within_the_lifetime_keeps_the_connection_and_expiry_closes_it() {
    let f = sasl_server(|sc| sc.connections_max_reauth_ms = 1500);
    let mut c = Client::connect(f.addr);
    assert_eq!(c.scram(Hash::Sha512, "alice", "alice-secret"), Ok(1500));
    produce_and_fetch(&mut c, b"first session");
    // Re-authenticate on the same connection: a new lifetime; requests keep working.
    assert_eq!(c.scram(Hash::Sha512, "alice", "alice-secret"), Ok(1500));
    produce_and_fetch(&mut c, b"second session");
    // Another principal on re-authentication is refused.
    add_user(&f.broker, "bob", "bob-secret");
    assert!(matches!(
        c.scram(Hash::Sha512, "bob", "bob-secret"),
        Err(LoginError::Refused(58, Some(m))) if m.starts_with("Cannot change principals")
    ));
    // A session left to expire: its next request closes the connection.
    let mut c = Client::connect(f.addr);
    assert_eq!(c.scram(Hash::Sha256, "alice", "alice-secret"), Ok(1500));
    let until = Instant::now() + Duration::from_millis(1600);
    common::wait_until(Duration::from_secs(5), || Instant::now() >= until);
    let m: Option<MetadataResponse> = c.call(ApiKey::Metadata, 12, &MetadataRequest::default());
    assert!(
        m.is_none(),
        "an expired session's request closes the connection"
    );
}

fn alter(
    c: &mut Client,
    upsertions: Vec<alter_user_scram_credentials_request::ScramCredentialUpsertion>,
    deletions: Vec<alter_user_scram_credentials_request::ScramCredentialDeletion>,
) -> Vec<(String, i16, Option<String>)> {
    let req = AlterUserScramCredentialsRequest::default()
        .with_upsertions(upsertions)
        .with_deletions(deletions);
    let r: AlterUserScramCredentialsResponse =
        c.call(ApiKey::AlterUserScramCredentials, 0, &req).unwrap();
    let mut out: Vec<_> = r
        .results
        .into_iter()
        .map(|r| {
            (
                r.user.to_string(),
                r.error_code,
                r.error_message.map(|m| m.to_string()),
            )
        })
        .collect();
    out.sort();
    out
}

/// An upsertion as the Java admin client builds it: salted on the client side.
fn upsertion(
    user: &str,
    hash: Hash,
    password: &str,
    iterations: i32,
) -> alter_user_scram_credentials_request::ScramCredentialUpsertion {
    let salt = b"client-chosen-salt".to_vec();
    let salted = hash.salted_password(password, &salt, iterations.max(1) as u32);
    alter_user_scram_credentials_request::ScramCredentialUpsertion::default()
        .with_name(StrBytes::from_string(user.to_string()))
        .with_mechanism(hash.wire_type())
        .with_iterations(iterations)
        .with_salt(salt.into())
        .with_salted_password(salted.into())
}

#[test]
fn alter_user_scram_credentials_then_login_and_kafkas_errors() {
    let f = sasl_server(|_| {});
    let mut admin = Client::connect(f.addr);
    admin.scram(Hash::Sha512, "alice", "alice-secret").unwrap();
    let results = alter(
        &mut admin,
        vec![
            upsertion("carol", Hash::Sha512, "carol-secret", 8192),
            upsertion("few", Hash::Sha256, "x", 4095),
            upsertion("many", Hash::Sha256, "x", 16385),
        ],
        vec![
            alter_user_scram_credentials_request::ScramCredentialDeletion::default()
                .with_name(StrBytes::from_static_str("nobody"))
                .with_mechanism(1),
        ],
    );
    assert_eq!(
        results,
        vec![
            ("carol".into(), 0, None),
            ("few".into(), 93, Some("Too few iterations".into())),
            ("many".into(), 93, Some("Too many iterations".into())),
            (
                "nobody".into(),
                91,
                Some("Attempt to delete a user credential that does not exist".into())
            ),
        ]
    );
    let mut c = Client::connect(f.addr);
    assert_eq!(c.scram(Hash::Sha512, "carol", "carol-secret"), Ok(0));
    let mut c = Client::connect(f.addr);
    assert_eq!(c.plain("carol", "carol-secret"), Ok(0));
    // Describe: mechanisms and iterations, never keys; unknown users named.
    let req = DescribeUserScramCredentialsRequest::default().with_users(Some(vec![
        describe_user_scram_credentials_request::UserName::default()
            .with_name(StrBytes::from_static_str("carol")),
        describe_user_scram_credentials_request::UserName::default()
            .with_name(StrBytes::from_static_str("nobody")),
    ]));
    let d: DescribeUserScramCredentialsResponse = admin
        .call(ApiKey::DescribeUserScramCredentials, 0, &req)
        .unwrap();
    let carol = d
        .results
        .iter()
        .find(|r| r.user.as_str() == "carol")
        .unwrap();
    assert_eq!(carol.error_code, 0);
    assert_eq!(
        carol
            .credential_infos
            .iter()
            .map(|i| (i.mechanism, i.iterations))
            .collect::<Vec<_>>(),
        vec![(2, 8192)]
    );
    let nobody = d
        .results
        .iter()
        .find(|r| r.user.as_str() == "nobody")
        .unwrap();
    assert_eq!(nobody.error_code, 91);
    // Deleting it: carol can no longer log in.
    let results = alter(
        &mut admin,
        vec![],
        vec![
            alter_user_scram_credentials_request::ScramCredentialDeletion::default()
                .with_name(StrBytes::from_static_str("carol"))
                .with_mechanism(2),
        ],
    );
    assert_eq!(results, vec![("carol".into(), 0, None)]);
    let mut c = Client::connect(f.addr);
    assert_eq!(
        c.scram(Hash::Sha512, "carol", "carol-secret"),
        Err(scram_failure(Hash::Sha512))
    );
}

#[test]
fn credentials_survive_a_restart_and_the_file_never_holds_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let password = "a-very-recognisable-password";
    {
        let broker = Broker::new(thorstream::BrokerConfig::with_data_dir(dir.path())).unwrap();
        add_user(&broker, "dave", password);
    }
    let bytes = std::fs::read(dir.path().join("__users.meta")).unwrap();
    assert!(
        !bytes
            .windows(password.len())
            .any(|w| w == password.as_bytes())
    );
    let broker = std::sync::Arc::new(
        Broker::new(thorstream::BrokerConfig::with_data_dir(dir.path())).unwrap(),
    );
    let mut sc = ServerConfig::new("127.0.0.1:0".parse().unwrap());
    sasl_listener(&mut sc);
    let server = thorstream::server::start(broker, sc).unwrap();
    let mut c = Client::connect(server.local_addr);
    assert_eq!(c.scram(Hash::Sha256, "dave", password), Ok(0));
    server.shutdown();
}

#[test]
fn thorstream_users_offline_then_login_online() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_thorstream");
    let data = dir.path().to_str().unwrap();
    for mechanism in ["SCRAM-SHA-256", "SCRAM-SHA-512"] {
        let mut child = Command::new(bin)
            .args([
                "users",
                "add",
                "admin",
                "--mechanism",
                mechanism,
                "--password-stdin",
                "--data-dir",
                data,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"admin-secret\n")
            .unwrap();
        assert!(child.wait().unwrap().success());
    }
    let out = Command::new(bin)
        .args(["users", "list", "--data-dir", data])
        .output()
        .unwrap();
    let listed = String::from_utf8(out.stdout).unwrap();
    assert!(
        listed.contains("admin\tSCRAM-SHA-256(iterations=4096),SCRAM-SHA-512(iterations=4096)"),
        "{listed}"
    );
    let refused = Command::new(bin)
        .args([
            "users",
            "add",
            "x",
            "--mechanism",
            "PLAIN",
            "--password-stdin",
            "--data-dir",
            data,
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let broker = std::sync::Arc::new(
        Broker::new(thorstream::BrokerConfig::with_data_dir(dir.path())).unwrap(),
    );
    let mut sc = ServerConfig::new("127.0.0.1:0".parse().unwrap());
    sasl_listener(&mut sc);
    let server = thorstream::server::start(std::sync::Arc::clone(&broker), sc).unwrap();
    for hash in [Hash::Sha256, Hash::Sha512] {
        let mut c = Client::connect(server.local_addr);
        assert_eq!(c.scram(hash, "admin", "admin-secret"), Ok(0));
    }
    server.shutdown();
    broker.close().unwrap();
    drop(broker);
    let removed = Command::new(bin)
        .args([
            "users",
            "remove",
            "admin",
            "--mechanism",
            "SCRAM-SHA-256",
            "--data-dir",
            data,
        ])
        .output()
        .unwrap();
    assert!(removed.status.success());
    let out = Command::new(bin)
        .args(["users", "list", "--data-dir", data])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "admin\tSCRAM-SHA-512(iterations=4096)\n"
    );
}

/// The resident set size of this process (broker and clients), from /proc/self/status.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// 10,000 failed logins, 32 at a time: each is answered and closed, and the broker keeps
/// serving. The RSS figures are printed for RELIABILITY.md (not asserted: allocator noise).
#[test]
fn ten_thousand_failed_logins() {
    let f = sasl_server(|sc| sc.failed_authentication_delay_ms = 1);
    let addr: SocketAddr = f.addr;
    let attempt = move |i: usize| {
        let mut c = Client::connect(addr);
        let hash = if i.is_multiple_of(2) {
            Hash::Sha256
        } else {
            Hash::Sha512
        };
        let user = if i.is_multiple_of(3) {
            "alice"
        } else {
            "nobody"
        };
        assert_eq!(c.scram_garbage_proof(hash, user), Err(scram_failure(hash)));
        assert!(c.is_closed());
    };
    for i in 0..500 {
        attempt(i);
    }
    let before = rss_kib();
    let started = Instant::now();
    let threads: Vec<_> = (0..32)
        .map(|t| {
            std::thread::spawn(move || (0..10_000 / 32 + 1).for_each(|i| attempt(t * 1000 + i)))
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let after = rss_kib();
    eprintln!(
        "10,000 failed SCRAM logins (32 clients at once) in {:?}: RSS {before} KiB before, {after} KiB after ({:+} KiB)",
        started.elapsed(),
        after as i64 - before as i64
    );
    let mut c = Client::connect(f.addr);
    assert_eq!(c.scram(Hash::Sha256, "alice", "alice-secret"), Ok(0));
}
