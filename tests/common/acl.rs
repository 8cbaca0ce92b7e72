//! ACL test fixtures: a broker with two servers in front of it (on the "admin" one
//! `User:ANONYMOUS`, what every PLAINTEXT connection is, is a super user; on the "user" one
//! it is an ordinary principal), a blocking Kafka client over raw frames, and Kafka's codes.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use thorstream::server::{self, AuthorizerConfig, Principal, ServerConfig, ServerHandle};
use thorstream::{Broker, BrokerConfig};

use super::wire::{request, response};

// Kafka's codes.
pub const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
pub const GROUP_AUTHORIZATION_FAILED: i16 = 30;
pub const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
pub const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;
pub const SECURITY_DISABLED: i16 = 54;
pub const INVALID_REQUEST: i16 = 42;
pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;

// Kafka's enum codes.
pub const TOPIC: i8 = 2;
pub const GROUP: i8 = 3;
pub const CLUSTER: i8 = 4;
pub const TRANSACTIONAL_ID: i8 = 5;
pub const ANY: i8 = 1;
pub const MATCH: i8 = 2;
pub const LITERAL: i8 = 3;
pub const PREFIXED: i8 = 4;
pub const ALL: i8 = 2;
pub const READ: i8 = 3;
pub const WRITE: i8 = 4;
pub const CREATE: i8 = 5;
pub const DELETE: i8 = 6;
pub const ALTER: i8 = 7;
pub const DESCRIBE: i8 = 8;
pub const DESCRIBE_CONFIGS: i8 = 10;
pub const ALTER_CONFIGS: i8 = 11;
pub const IDEMPOTENT_WRITE: i8 = 12;
pub const DENY: i8 = 2;
pub const ALLOW: i8 = 3;

pub const ANONYMOUS: &str = "User:ANONYMOUS";

pub struct Client {
    s: TcpStream,
    correlation: i32,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        Client { s, correlation: 0 }
    }

    pub fn call<Req: Encodable + HeaderVersion, Resp: Decodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        req: &Req,
    ) -> Resp {
        self.correlation += 1;
        self.s
            .write_all(&request(api, version, self.correlation, req))
            .unwrap();
        let (corr, resp) = response(&mut self.s, api.response_header_version(version), version);
        assert_eq!(corr, self.correlation);
        resp
    }
}

/// A broker on `dir` with two servers: admin (ANONYMOUS is a super user) and user.
pub struct Cluster {
    pub broker: Arc<Broker>,
    admin: Option<ServerHandle>,
    user: Option<ServerHandle>,
}

impl Cluster {
    pub fn open(dir: &Path, tune_user: impl FnOnce(&mut AuthorizerConfig)) -> Cluster {
        let broker = Arc::new(Broker::new(BrokerConfig::with_data_dir(dir)).unwrap());
        let serve = |config: AuthorizerConfig| {
            let mut sc = ServerConfig::new("127.0.0.1:0".parse().unwrap());
            sc.authorizer = Some(config);
            server::start(Arc::clone(&broker), sc).unwrap()
        };
        let admin = serve(AuthorizerConfig {
            super_users: vec![ANONYMOUS.parse::<Principal>().unwrap()],
            allow_everyone_if_no_acl_found: false,
        });
        let mut user_config = AuthorizerConfig::default();
        tune_user(&mut user_config);
        let user = serve(user_config);
        Cluster {
            broker,
            admin: Some(admin),
            user: Some(user),
        }
    }

    pub fn admin(&self) -> Client {
        Client::connect(self.admin.as_ref().unwrap().local_addr)
    }

    pub fn user(&self) -> Client {
        Client::connect(self.user.as_ref().unwrap().local_addr)
    }

    pub fn close(mut self) {
        for s in [self.admin.take(), self.user.take()].into_iter().flatten() {
            s.shutdown();
        }
        self.broker.close().unwrap();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for s in [self.admin.take(), self.user.take()].into_iter().flatten() {
            s.shutdown();
        }
    }
}

pub fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

pub fn acl(rt: i8, name: &str, pt: i8, principal: &str, op: i8, perm: i8) -> AclCreation {
    AclCreation::default()
        .with_resource_type(rt)
        .with_resource_name(s(name))
        .with_resource_pattern_type(pt)
        .with_principal(s(principal))
        .with_host(s("*"))
        .with_operation(op)
        .with_permission_type(perm)
}

pub fn create(c: &mut Client, acls: Vec<AclCreation>) -> Vec<i16> {
    let r: CreateAclsResponse = c.call(
        ApiKey::CreateAcls,
        3,
        &CreateAclsRequest::default().with_creations(acls),
    );
    for e in r.results.iter().filter(|r| r.error_code != 0) {
        eprintln!("CreateAcls: {} {:?}", e.error_code, e.error_message);
    }
    r.results.iter().map(|r| r.error_code).collect()
}

pub fn allow(c: &mut Client, rt: i8, name: &str, pt: i8, op: i8) {
    assert_eq!(
        create(c, vec![acl(rt, name, pt, ANONYMOUS, op, ALLOW)]),
        [0]
    );
}

/// A DENY of `op` for everyone (`User:*`) on the resource.
pub fn deny_everyone(c: &mut Client, rt: i8, name: &str, pt: i8, op: i8) {
    assert_eq!(create(c, vec![acl(rt, name, pt, "User:*", op, DENY)]), [0]);
}
