"""Security (issue #15) with real clients on every listener type: TLS, SASL and ACLs.

Two brokers per module, each started with security flags on ports of their own (secure_broker.py):
  - "sasl": SASL_SSL and SASL_PLAINTEXT listeners offering SCRAM-SHA-256, SCRAM-SHA-512 and
    PLAIN; `--authorizer acl`; super users User:admin and User:alice, both created with
    `thorstream users add` on the data dir before the first start;
  - "mtls": an SSL listener requiring a client certificate signed by the test CA
    (`--ssl-client-ca`), principal User:<subject CN>; `--authorizer acl`, super user
    User:mtls-admin.

Clients: confluent-kafka (librdkafka), kafka-python, aiokafka, kcat and kafkajs
(node/kafkajs_security.js) produce, consume in a consumer group and commit, with each mechanism
on each SASL listener, and with a client certificate over SSL. A wrong password (or a certificate
of another CA) is refused with the client's authentication error and the broker keeps serving.
The ACL matrix: confluent-kafka's AdminClient, as the super user, creates users
(AlterUserScramCredentials) and ACLs (CreateAcls / DescribeAcls / DeleteAcls) over the wire; a
fresh user per test then gets Kafka's answers API by API (TOPIC_ / GROUP_ / CLUSTER_ /
TRANSACTIONAL_ID_AUTHORIZATION_FAILED), and Metadata lists only the topics it may describe.

The expectations were taken from Apache Kafka 4.4 (KRaft, StandardAuthorizer) configured the same
way: THORSTREAM_BIN pointing at a wrapper translating this CLI into a Kafka configuration runs the
file against Kafka. Notably Kafka 4.x checks the SCRAM nonce strictly (CVE-2024-56128), so
librdkafka before 2.6.1 (Debian's kcat) cannot log in with SCRAM.

State changes are waited for as states (an ACL is in force once DescribeAcls lists it; a user
exists once DescribeUserScramCredentials lists it), never by sleeping.
"""
import asyncio
import json
import logging
import re
import shutil
import subprocess
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

import pytest
from confluent_kafka import (Consumer, KafkaError, KafkaException, Producer, TopicPartition)
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType,
                                   AdminClient, ConfigResource, NewTopic, ResourcePatternType,
                                   ResourceType, ScramCredentialInfo, ScramMechanism,
                                   UserScramCredentialDeletion, UserScramCredentialUpsertion)

from conftest import CK_COMMON, wait_until
from secure_broker import SecureBroker, make_certs

OP_TIMEOUT_S = 30.0
NODE_DIR = Path(__file__).resolve().parent / "node"
KJS_SECURITY = NODE_DIR / "kafkajs_security.js"

ADMIN = ("admin", "admin-secret")
ALICE = ("alice", "alice-secret")
MTLS_ADMIN = "mtls-admin"
SCRAM = ("SCRAM-SHA-256", "SCRAM-SHA-512")
MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN")
SASL_LISTENERS = ("SASL_SSL", "SASL_PLAINTEXT")
CLIENTS = ("ck", "kp", "aio", "kcat", "kjs")


# =============================================================================
# endpoints: one client configuration, rendered for each client library
# =============================================================================

@dataclass(frozen=True)
class Endpoint:
    protocol: str                    # SASL_SSL | SASL_PLAINTEXT | SSL
    bootstrap: str
    ca: Optional[Path] = None        # the CA to verify the server with (TLS listeners)
    mechanism: Optional[str] = None  # SASL listeners
    user: Optional[str] = None
    password: Optional[str] = None
    cert: Optional[Path] = None      # client certificate (mTLS)
    key: Optional[Path] = None

    @property
    def tls(self):
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def sasl(self):
        return self.protocol.startswith("SASL_")

    def as_user(self, user, password, mechanism=None):
        return replace(self, user=user, password=password, mechanism=mechanism or self.mechanism)

    def ck(self, **extra):
        c = dict(CK_COMMON, **{"bootstrap.servers": self.bootstrap,
                               "security.protocol": self.protocol})
        if self.tls:
            c["ssl.ca.location"] = str(self.ca)
            if self.cert:
                c["ssl.certificate.location"] = str(self.cert)
                c["ssl.key.location"] = str(self.key)
        if self.sasl:
            c.update({"sasl.mechanism": self.mechanism, "sasl.username": self.user,
                      "sasl.password": self.password})
        c.update(extra)
        return c

    def kp(self, **extra):
        c = dict(bootstrap_servers=self.bootstrap, security_protocol=self.protocol,
                 api_version_auto_timeout_ms=10000, reconnect_backoff_ms=50,
                 reconnect_backoff_max_ms=1000, retry_backoff_ms=100, request_timeout_ms=15000)
        if self.tls:
            c.update(ssl_cafile=str(self.ca), ssl_check_hostname=True)
            if self.cert:
                c.update(ssl_certfile=str(self.cert), ssl_keyfile=str(self.key))
        if self.sasl:
            c.update(sasl_mechanism=self.mechanism, sasl_plain_username=self.user,
                     sasl_plain_password=self.password)
        c.update(extra)
        return c

    def aio(self, **extra):
        from aiokafka.helpers import create_ssl_context
        c = dict(bootstrap_servers=self.bootstrap, security_protocol=self.protocol,
                 request_timeout_ms=15000, retry_backoff_ms=100)
        if self.tls:
            c["ssl_context"] = create_ssl_context(
                cafile=str(self.ca), certfile=str(self.cert) if self.cert else None,
                keyfile=str(self.key) if self.key else None)
        if self.sasl:
            c.update(sasl_mechanism=self.mechanism, sasl_plain_username=self.user,
                     sasl_plain_password=self.password)
        c.update(extra)
        return c

    def kcat(self):
        args = ["-b", self.bootstrap, "-X", f"security.protocol={self.protocol}",
                "-X", "broker.address.family=v4"]
        if self.tls:
            args += ["-X", f"ssl.ca.location={self.ca}"]
            if self.cert:
                args += ["-X", f"ssl.certificate.location={self.cert}",
                         "-X", f"ssl.key.location={self.key}"]
        if self.sasl:
            args += ["-X", f"sasl.mechanisms={self.mechanism}", "-X", f"sasl.username={self.user}",
                     "-X", f"sasl.password={self.password}"]
        return args

    def kjs(self, **extra):
        o = dict(brokers=[self.bootstrap])
        if self.tls:
            o["ssl"] = {"ca": str(self.ca)}
            if self.cert:
                o["ssl"].update(cert=str(self.cert), key=str(self.key))
        if self.sasl:
            o["sasl"] = {"mechanism": self.mechanism.lower(), "username": self.user,
                         "password": self.password}
        o.update(extra)
        return o


# =============================================================================
# brokers
# =============================================================================

def ck_ready(ep):
    def probe():
        AdminClient(ep.ck()).list_topics(timeout=5)
        return True
    return probe


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def sasl_broker(broker_binary, certs, tmp_path_factory):
    users = [(name, m, pw) for name, pw in (ADMIN, ALICE) for m in SCRAM]
    b = SecureBroker(broker_binary, tmp_path_factory.mktemp("sasl-broker"), SASL_LISTENERS,
                     ["--ssl-cert", str(certs.server_cert), "--ssl-key", str(certs.server_key),
                      "--sasl-mechanisms", ",".join(MECHANISMS),
                      "--authorizer", "acl", "--super-users", "User:admin;User:alice"],
                     users=users)
    b.certs = certs
    b.start(ck_ready(Endpoint("SASL_SSL", b.bootstrap("SASL_SSL"), certs.ca, "SCRAM-SHA-512",
                              *ADMIN)))
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture(scope="module")
def mtls_broker(broker_binary, certs, tmp_path_factory):
    b = SecureBroker(broker_binary, tmp_path_factory.mktemp("mtls-broker"), ["SSL"],
                     ["--ssl-cert", str(certs.server_cert), "--ssl-key", str(certs.server_key),
                      "--ssl-client-ca", str(certs.ca),
                      "--authorizer", "acl", "--super-users", f"User:{MTLS_ADMIN}"])
    b.certs = certs
    b.start(ck_ready(mtls_endpoint(b, MTLS_ADMIN)))
    try:
        yield b
    finally:
        b.stop()


def sasl_endpoint(broker, listener="SASL_SSL", mechanism="SCRAM-SHA-512", creds=ADMIN):
    return Endpoint(listener, broker.bootstrap(listener), broker.certs.ca, mechanism, *creds)


def mtls_endpoint(broker, cn, rogue=False):
    cert, key = (broker.certs.rogue_client(cn) if rogue else broker.certs.client(cn))
    return Endpoint("SSL", broker.bootstrap("SSL"), broker.certs.ca, cert=cert, key=key)


# =============================================================================
# helpers
# =============================================================================

def uniq(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def create_topic(ep, topic, partitions=1):
    admin = AdminClient(ep.ck())
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(OP_TIMEOUT_S)
    wait_until(lambda: topic in admin.list_topics(timeout=5).topics, what=f"topic {topic} listed")


def ck_admin_alive(ep):
    """The broker still answers an authenticated Metadata request."""
    md = AdminClient(ep.ck()).list_topics(timeout=10)
    assert md.brokers, "no broker in the Metadata answer"


def values(tag, n=3):
    return [f"{tag}-{i}" for i in range(n)]


def ck_error_code(exc):
    err = exc.args[0] if exc.args else None
    return err.code() if isinstance(err, KafkaError) else None


# ---- per-client produce, consume in a group, commit -------------------------

def rt_ck(ep, topic, group, vals):
    p = Producer(ep.ck(**{"message.timeout.ms": 20000}))
    errs = []
    for v in vals:
        p.produce(topic, v.encode(), partition=0, on_delivery=lambda e, m: errs.append(e))
    assert p.flush(OP_TIMEOUT_S) == 0
    assert errs == [None] * len(vals), errs
    c = Consumer(ep.ck(**{"group.id": group, "auto.offset.reset": "earliest",
                          "enable.auto.commit": False, "session.timeout.ms": 10000}))
    try:
        c.subscribe([topic])
        got = []
        def poll():
            m = c.poll(0.2)
            if m is not None:
                assert not m.error(), m.error()
                got.append(m.value().decode())
            return len(got) >= len(vals)
        wait_until(poll, timeout=OP_TIMEOUT_S, interval=0, what="records consumed (ck)")
        c.commit(asynchronous=False)
        committed = c.committed([TopicPartition(topic, 0)], timeout=10)[0].offset
    finally:
        c.close()
    return got, committed


def rt_kp(ep, topic, group, vals):
    from kafka import KafkaConsumer, KafkaProducer
    from kafka import TopicPartition as KpTP
    p = KafkaProducer(**ep.kp(max_block_ms=15000))
    try:
        for v in vals:
            p.send(topic, v.encode(), partition=0).get(timeout=OP_TIMEOUT_S)
    finally:
        p.close(timeout=5)
    c = KafkaConsumer(topic, **ep.kp(group_id=group, auto_offset_reset="earliest",
                                     enable_auto_commit=False, fetch_max_wait_ms=100))
    try:
        got = []
        def poll():
            for recs in c.poll(timeout_ms=200).values():
                got.extend(r.value.decode() for r in recs)
            return len(got) >= len(vals)
        wait_until(poll, timeout=OP_TIMEOUT_S, interval=0, what="records consumed (kp)")
        c.commit()
        committed = c.committed(KpTP(topic, 0))
    finally:
        c.close(autocommit=False)
    return got, committed


def rt_aio(ep, topic, group, vals):
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.structs import TopicPartition as AioTP

    async def run():
        p = AIOKafkaProducer(**ep.aio())
        await p.start()
        try:
            for v in vals:
                await p.send_and_wait(topic, v.encode(), partition=0)
        finally:
            await p.stop()
        c = AIOKafkaConsumer(topic, **ep.aio(group_id=group, auto_offset_reset="earliest",
                                            enable_auto_commit=False, fetch_max_wait_ms=100))
        await c.start()
        try:
            got = []
            while len(got) < len(vals):
                for recs in (await c.getmany(timeout_ms=200)).values():
                    got.extend(r.value.decode() for r in recs)
            await c.commit()
            return got, await c.committed(AioTP(topic, 0))
        finally:
            await c.stop()

    return asyncio.run(asyncio.wait_for(run(), OP_TIMEOUT_S))


def kcat_bin_or_skip():
    path = shutil.which("kcat") or shutil.which("kafkacat")
    if path is None:
        pytest.skip("kcat not installed (setup_venv.sh installs it with apt-get when run as root)")
    return path


def kcat_librdkafka_version():
    out = subprocess.run([kcat_bin_or_skip(), "-V"], capture_output=True, text=True).stdout
    m = re.search(r"librdkafka (\d+)\.(\d+)\.(\d+)", out)
    return tuple(int(x) for x in m.groups()) if m else None


# librdkafka before 2.6.1 appends its nonce twice in the SCRAM client-final-message; Kafka 4.x
# compares the nonce strictly (RFC 5802) and refuses the login (confluentinc/librdkafka#4895).
SCRAM_NONCE_FIXED = (2, 6, 1)


def kcat(ep, *args, input=None, timeout=OP_TIMEOUT_S):
    return subprocess.run([kcat_bin_or_skip(), *ep.kcat(), *args], input=input,
                          capture_output=True, text=True, timeout=timeout)


def rt_kcat(ep, topic, group, vals):
    if ep.mechanism in SCRAM and (kcat_librdkafka_version() or (0,)) < SCRAM_NONCE_FIXED:
        pytest.skip(f"kcat's librdkafka {kcat_librdkafka_version()} < 2.6.1 cannot log in with "
                    "SCRAM to Kafka 4.x (see test_kcat_old_librdkafka_scram_refused)")
    proc = kcat(ep, "-P", "-t", topic, "-p", "0", input="\n".join(vals) + "\n")
    assert proc.returncode == 0, proc.stderr
    # A balanced (group) consumer: -G; it commits (auto commit) what it consumed.
    proc = kcat(ep, "-G", group, "-o", "beginning", "-c", str(len(vals)), "-e",
                "-X", "enable.auto.commit=true", "-X", "auto.commit.interval.ms=100", topic)
    assert proc.returncode == 0, proc.stderr
    got = proc.stdout.splitlines()
    admin = AdminClient(ep.ck())
    committed = group_offset(admin, group, topic)
    return got, committed


def group_offset(admin, group, topic):
    from confluent_kafka import ConsumerGroupTopicPartitions
    res = admin.list_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0)])])
    return res[group].result(OP_TIMEOUT_S).topic_partitions[0].offset


def node_bin_or_skip():
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not on PATH (kafkajs tests need Node.js)")
    if not (NODE_DIR / "node_modules" / "kafkajs" / "package.json").is_file():
        pytest.skip(f"kafkajs is not installed in {NODE_DIR} (run setup_node.sh; it needs npm)")
    return node


def kjs(command, opts, timeout=OP_TIMEOUT_S + 15):
    proc = subprocess.run([node_bin_or_skip(), str(KJS_SECURITY), command], cwd=NODE_DIR,
                          input=json.dumps(opts), capture_output=True, text=True, timeout=timeout)
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert lines, f"kafkajs {command}: no output (exit {proc.returncode})\n{proc.stderr[-2000:]}"
    return json.loads(lines[-1])


def rt_kjs(ep, topic, group, vals):
    res = kjs("roundtrip", ep.kjs(topic=topic, groupId=group, values=vals))
    assert res["ok"], res
    return res["records"], res["committed"]


ROUNDTRIP = {"ck": rt_ck, "kp": rt_kp, "aio": rt_aio, "kcat": rt_kcat, "kjs": rt_kjs}


def check_roundtrip(client, ep, admin_ep):
    topic, group = uniq(f"t-{client}"), uniq(f"g-{client}")
    create_topic(admin_ep, topic)
    vals = values(f"{client}-{ep.protocol}-{ep.mechanism}")
    got, committed = ROUNDTRIP[client](ep, topic, group, vals)
    assert sorted(got) == sorted(vals)
    assert committed == len(vals), "the group's committed offset is the end of what it read"
    if client != "kcat":  # kcat prints values only; the others read in order from partition 0
        assert got == vals


# =============================================================================
# SASL: every client x mechanism x listener
# =============================================================================

@pytest.mark.parametrize("mechanism", MECHANISMS)
@pytest.mark.parametrize("listener", SASL_LISTENERS)
@pytest.mark.parametrize("client", CLIENTS)
def test_sasl_produce_consume_group(sasl_broker, client, listener, mechanism):
    ep = sasl_endpoint(sasl_broker, listener, mechanism, ALICE)
    check_roundtrip(client, ep, sasl_endpoint(sasl_broker))


def test_kcat_old_librdkafka_scram_refused(sasl_broker):
    """kcat linked with librdkafka < 2.6.1 sends a SCRAM final message whose nonce repeats the
    client's part; Kafka 4.x refuses it as invalid credentials (and so must we: a strict nonce
    check), while PLAIN with the same kcat logs in."""
    version = kcat_librdkafka_version()
    if version is None or version >= SCRAM_NONCE_FIXED:
        pytest.skip(f"kcat's librdkafka is {version}, not an old one")
    ep = sasl_endpoint(sasl_broker, "SASL_SSL", "SCRAM-SHA-256", ALICE)
    proc = kcat(ep, "-L", "-m", "5")
    assert proc.returncode != 0
    assert "Authentication failed during authentication due to invalid credentials" \
        in proc.stderr, proc.stderr
    proc = kcat(replace(ep, mechanism="PLAIN"), "-L", "-m", "10")
    assert proc.returncode == 0, proc.stderr


# ---- wrong password ----------------------------------------------------------

def refused_ck(ep):
    errors = []
    a = AdminClient(ep.ck(error_cb=errors.append))
    with pytest.raises(KafkaException):
        a.list_topics(timeout=3)
    wait_until(lambda: a.poll(0.1) >= 0 and
               any(e.code() == KafkaError._AUTHENTICATION for e in errors),
               timeout=OP_TIMEOUT_S, interval=0, what="an authentication error from librdkafka")
    auth = [e for e in errors if e.code() == KafkaError._AUTHENTICATION][0]
    return auth.str()


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def refused_kp(ep):
    """kafka-python logs the SaslAuthenticate error (SaslAuthenticationFailedError, 58), closes
    the connection, and its bootstrap then fails (it raises a version-probe error)."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError as KpError
    log = logging.getLogger("kafka.conn")
    records = _Records()
    log.addHandler(records)
    try:
        with pytest.raises(KpError) as info:
            KafkaAdminClient(**ep.kp()).close()
    finally:
        log.removeHandler(records)
    return f"{type(info.value).__name__}: {info.value}\n" + "\n".join(records.lines)


def refused_aio(ep):
    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import KafkaError as AioError

    async def run():
        p = AIOKafkaProducer(**ep.aio())
        try:
            await p.start()
        finally:
            await p.stop()

    with pytest.raises(AioError) as info:
        asyncio.run(asyncio.wait_for(run(), OP_TIMEOUT_S))
    return f"{type(info.value).__name__}: {info.value}"


def refused_kcat(ep):
    proc = kcat(ep, "-L", "-m", "5")
    assert proc.returncode != 0
    return proc.stderr


def refused_kjs(ep):
    res = kjs("topics", ep.kjs(retries=0))
    assert not res["ok"], res
    return f"{res['name']}: {res['error']}"


REFUSED = {"ck": refused_ck, "kp": refused_kp, "aio": refused_aio, "kcat": refused_kcat,
           "kjs": refused_kjs}

# What each client reports when Kafka refuses the login (SaslAuthenticate error 58,
# SASL_AUTHENTICATION_FAILED, message "Authentication failed during authentication due to
# invalid credentials with SASL mechanism M").
REFUSED_TEXT = {
    "ck": "SASL authentication error",
    "kp": "SaslAuthenticationFailedError",
    "aio": "",
    "kcat": "SASL authentication error",
    "kjs": "KafkaJSSASLAuthenticationError",
}


@pytest.mark.parametrize("mechanism", MECHANISMS)
@pytest.mark.parametrize("client", CLIENTS)
def test_wrong_password_refused_and_broker_keeps_serving(sasl_broker, client, mechanism):
    ep = sasl_endpoint(sasl_broker, "SASL_SSL", mechanism, (ALICE[0], "not-" + ALICE[1]))
    report = REFUSED[client](ep)
    assert REFUSED_TEXT[client] in report, report
    ck_admin_alive(sasl_endpoint(sasl_broker))


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_unknown_user_refused(sasl_broker, mechanism):
    ep = sasl_endpoint(sasl_broker, "SASL_PLAINTEXT", mechanism, ("nobody", "whatever"))
    assert "SASL authentication error" in refused_ck(ep)
    ck_admin_alive(sasl_endpoint(sasl_broker, "SASL_PLAINTEXT"))


def test_mechanism_not_enabled_refused(sasl_broker):
    """A mechanism the listener does not offer: SaslHandshake answers UNSUPPORTED_SASL_MECHANISM
    (33) with the enabled list; librdkafka reports it as an authentication error."""
    ep = sasl_endpoint(sasl_broker, "SASL_SSL", "OAUTHBEARER", ALICE)
    ep_conf = ep.ck(**{"enable.sasl.oauthbearer.unsecure.jwt": True,
                       "sasl.oauthbearer.config": "principal=alice"})
    errors = []
    a = AdminClient(dict(ep_conf, error_cb=errors.append))
    with pytest.raises(KafkaException):
        a.list_topics(timeout=3)
    wait_until(lambda: a.poll(0.1) >= 0 and any(e.code() == KafkaError._AUTHENTICATION for e in errors),
               timeout=OP_TIMEOUT_S, what="an authentication error")
    text = " ".join(e.str() for e in errors)
    assert "Unsupported SASL mechanism" in text or "not supported" in text.lower() \
        or "UNSUPPORTED_SASL_MECHANISM" in text, text
    ck_admin_alive(sasl_endpoint(sasl_broker))


# =============================================================================
# mTLS over SSL
# =============================================================================

@pytest.mark.parametrize("client", CLIENTS)
def test_mtls_produce_consume_group(mtls_broker, client):
    ep = mtls_endpoint(mtls_broker, MTLS_ADMIN)
    check_roundtrip(client, ep, ep)


@pytest.mark.parametrize("rogue", ["other-ca", "no-cert"])
def test_mtls_refuses_bad_client_certificate(mtls_broker, rogue):
    good = mtls_endpoint(mtls_broker, MTLS_ADMIN)
    ep = mtls_endpoint(mtls_broker, MTLS_ADMIN, rogue=True) if rogue == "other-ca" \
        else replace(good, cert=None, key=None)
    errors = []
    a = AdminClient(ep.ck(error_cb=errors.append))
    with pytest.raises(KafkaException):
        a.list_topics(timeout=3)
    wait_until(lambda: a.poll(0.1) >= 0 and any(e.code() in (KafkaError._SSL, KafkaError._TRANSPORT,
                                        KafkaError._ALL_BROKERS_DOWN) for e in errors),
               timeout=OP_TIMEOUT_S, what="a TLS/transport error from librdkafka")
    proc = kcat(ep, "-L", "-m", "5")
    assert proc.returncode != 0
    assert "SSL" in proc.stderr or "ssl" in proc.stderr, proc.stderr
    ck_admin_alive(good)


def test_mtls_principal_is_certificate_cn(mtls_broker):
    """A certificate of the CA with CN=<name> is User:<name>: without an ACL it sees no topic
    and may not write; an ACL for User:<name> (created by the super user, itself a CN) lets it."""
    admin_ep = mtls_endpoint(mtls_broker, MTLS_ADMIN)
    cn = uniq("reader")
    ep = mtls_endpoint(mtls_broker, cn)
    topic = uniq("t-mtls")
    create_topic(admin_ep, topic)
    assert topic not in AdminClient(ep.ck()).list_topics(timeout=10).topics
    assert ck_produce_error(ep, topic) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    admin = AdminClient(admin_ep.ck())
    grant(admin, acl(f"User:{cn}", ResourceType.TOPIC, topic, AclOperation.WRITE))
    assert topic in AdminClient(ep.ck()).list_topics(timeout=10).topics, "Write implies Describe"
    assert ck_produce_error(ep, topic) is None


# =============================================================================
# ACLs and users managed over the wire; the allow/deny matrix per API
# =============================================================================

def acl(principal, rtype, name, op, permission=AclPermissionType.ALLOW,
        pattern=ResourcePatternType.LITERAL, host="*"):
    return AclBinding(rtype, name, pattern, principal, host, op, permission)


def acl_filter(binding):
    return AclBindingFilter(binding.restype, binding.name, binding.resource_pattern_type,
                            binding.principal, binding.host, binding.operation,
                            binding.permission_type)


def grant(admin, *bindings):
    """CreateAcls, then waits until DescribeAcls lists every binding (the ACL is in force)."""
    for b, f in admin.create_acls(list(bindings)).items():
        f.result(OP_TIMEOUT_S)
    for b in bindings:
        wait_until(lambda: b in admin.describe_acls(acl_filter(b)).result(OP_TIMEOUT_S),
                   what=f"ACL {b} listed")


def make_user(admin, mechanism="SCRAM-SHA-512"):
    """A fresh user created over the wire (AlterUserScramCredentials), waited for as listed."""
    name, password = uniq("u"), uniq("pw")
    mech = ScramMechanism[mechanism.replace("-", "_")]
    res = admin.alter_user_scram_credentials(
        [UserScramCredentialUpsertion(name, ScramCredentialInfo(mech, 8192), password.encode())])
    res[name].result(OP_TIMEOUT_S)
    wait_until(lambda: name in scram_users(admin), what=f"user {name} listed")
    return name, password


def scram_users(admin):
    return admin.describe_user_scram_credentials().result(OP_TIMEOUT_S)


@pytest.fixture
def sec(sasl_broker):
    """The super user's endpoint and AdminClient, and a fresh non-super user's endpoint."""
    admin_ep = sasl_endpoint(sasl_broker)
    admin = AdminClient(admin_ep.ck())
    name, password = make_user(admin)
    user_ep = sasl_endpoint(sasl_broker, "SASL_SSL", "SCRAM-SHA-512", (name, password))

    class Sec:
        pass
    s = Sec()
    s.admin_ep, s.admin, s.user, s.ep, s.principal = admin_ep, admin, name, user_ep, f"User:{name}"
    s.password, s.broker = password, sasl_broker
    return s


def ck_produce_error(ep, topic):
    """Produces one record; returns the delivery error code (None = delivered)."""
    p = Producer(ep.ck(**{"message.timeout.ms": 15000}))
    errs = []
    p.produce(topic, b"x", partition=0, on_delivery=lambda e, m: errs.append(e))
    p.flush(OP_TIMEOUT_S)
    assert len(errs) == 1, "no delivery report"
    return None if errs[0] is None else errs[0].code()


def ck_consume_error(ep, topic, group=None, subscribe=False):
    """Consumes partition 0 from the start (assign, or subscribe in `group`); returns the first
    error code, or None once a record arrived."""
    c = Consumer(ep.ck(**{"group.id": group or uniq("g"), "auto.offset.reset": "earliest",
                          "enable.auto.commit": False, "session.timeout.ms": 10000}))
    try:
        if subscribe:
            c.subscribe([topic])
        else:
            c.assign([TopicPartition(topic, 0, 0)])
        result = []

        def poll():
            m = c.poll(0.2)
            if m is not None:
                result.append(m.error().code() if m.error() else None)
            return result
        wait_until(poll, timeout=OP_TIMEOUT_S, interval=0, what="a record or an error")
        return result[0]
    finally:
        c.close()


def produce_as_admin(s, topic, n=1):
    assert ck_produce_error(s.admin_ep, topic) is None


def test_admin_manages_scram_users_over_the_wire(sasl_broker):
    """AlterUserScramCredentials upserts and deletes per mechanism; DescribeUserScramCredentials
    lists mechanism and iterations, never a secret; the new user logs in with each mechanism it
    has and is refused with the one deleted."""
    admin_ep = sasl_endpoint(sasl_broker)
    admin = AdminClient(admin_ep.ck())
    name, password = make_user(admin, "SCRAM-SHA-256")
    res = admin.alter_user_scram_credentials([UserScramCredentialUpsertion(
        name, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096), password.encode())])
    res[name].result(OP_TIMEOUT_S)
    wait_until(lambda: len(scram_users(admin)[name].scram_credential_infos) == 2,
               what="two mechanisms listed")
    infos = {(i.mechanism, i.iterations) for i in scram_users(admin)[name].scram_credential_infos}
    assert infos == {(ScramMechanism.SCRAM_SHA_256, 8192), (ScramMechanism.SCRAM_SHA_512, 4096)}
    for listener in SASL_LISTENERS:
        for mech in SCRAM:
            ck_admin_alive(sasl_endpoint(sasl_broker, listener, mech, (name, password)))

    res = admin.alter_user_scram_credentials(
        [UserScramCredentialDeletion(name, ScramMechanism.SCRAM_SHA_256)])
    res[name].result(OP_TIMEOUT_S)
    wait_until(lambda: len(scram_users(admin)[name].scram_credential_infos) == 1,
               what="one mechanism left")
    assert "SASL authentication error" in refused_ck(
        sasl_endpoint(sasl_broker, "SASL_SSL", "SCRAM-SHA-256", (name, password)))
    ck_admin_alive(sasl_endpoint(sasl_broker, "SASL_SSL", "SCRAM-SHA-512", (name, password)))

    # Describing a user that does not exist: RESOURCE_NOT_FOUND for that user.
    with pytest.raises(KafkaException) as info:
        ghost = uniq("ghost")
        admin.describe_user_scram_credentials([ghost])[ghost].result(OP_TIMEOUT_S)
    assert ck_error_code(info.value) == KafkaError.RESOURCE_NOT_FOUND


def test_non_super_user_cannot_manage_users_or_acls(sec):
    """AlterUserScramCredentials needs Alter on the cluster; CreateAcls and
    DeleteAcls Alter, DescribeAcls Describe: CLUSTER_AUTHORIZATION_FAILED."""
    a = AdminClient(sec.ep.ck())
    # (DescribeUserScramCredentials refused as a whole makes librdkafka 2.16 abort the process,
    # so only the per-user AlterUserScramCredentials answer is checked here.)
    res = a.alter_user_scram_credentials([UserScramCredentialUpsertion(
        sec.user, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096), b"pw")])
    with pytest.raises(KafkaException) as info:
        res[sec.user].result(OP_TIMEOUT_S)
    assert ck_error_code(info.value) == KafkaError.CLUSTER_AUTHORIZATION_FAILED
    b = acl(sec.principal, ResourceType.TOPIC, "anything", AclOperation.READ)
    with pytest.raises(KafkaException) as info:
        a.create_acls([b])[b].result(OP_TIMEOUT_S)
    assert ck_error_code(info.value) == KafkaError.CLUSTER_AUTHORIZATION_FAILED
    # DescribeAcls: through kafka-python (confluent-kafka 2.16 answers [] when the whole
    # DescribeAcls response carries an error).
    from kafka import KafkaAdminClient
    from kafka.admin import (ACLFilter, ACLOperation, ACLPermissionType, ACLResourcePatternType,
                             ResourcePatternFilter)
    from kafka.admin import ResourceType as KpResourceType
    from kafka.errors import ClusterAuthorizationFailedError
    kp = KafkaAdminClient(**sec.ep.kp())
    try:
        with pytest.raises(ClusterAuthorizationFailedError):
            kp.describe_acls(ACLFilter(
                principal=None, host="*", operation=ACLOperation.ANY,
                permission_type=ACLPermissionType.ANY,
                resource_pattern=ResourcePatternFilter(KpResourceType.TOPIC, "anything",
                                                       ACLResourcePatternType.LITERAL)))
    finally:
        kp.close()
    f = acl_filter(b)
    with pytest.raises(KafkaException) as info:
        a.delete_acls([f])[f].result(OP_TIMEOUT_S)
    assert ck_error_code(info.value) == KafkaError.CLUSTER_AUTHORIZATION_FAILED
    # The cluster Alter ACL lets it create ACLs.
    grant(sec.admin, acl(sec.principal, ResourceType.BROKER, "kafka-cluster", AclOperation.ALTER))
    a.create_acls([b])[b].result(OP_TIMEOUT_S)


def test_acls_create_describe_delete(sec):
    """DescribeAcls with exact, ANY and MATCH filters; DeleteAcls returns what it deleted."""
    topic = uniq("t-acl")
    lit = acl(sec.principal, ResourceType.TOPIC, topic, AclOperation.READ)
    pre = acl(sec.principal, ResourceType.TOPIC, topic[:8], AclOperation.WRITE,
              pattern=ResourcePatternType.PREFIXED)
    deny = acl(sec.principal, ResourceType.GROUP, "grp", AclOperation.READ,
               permission=AclPermissionType.DENY, host="10.1.2.3")
    grant(sec.admin, lit, pre, deny)
    mine = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, sec.principal, None,
                            AclOperation.ANY, AclPermissionType.ANY)
    assert set(sec.admin.describe_acls(mine).result(OP_TIMEOUT_S)) == {lit, pre, deny}
    match = AclBindingFilter(ResourceType.TOPIC, topic, ResourcePatternType.MATCH, None, None,
                             AclOperation.ANY, AclPermissionType.ANY)
    got = set(sec.admin.describe_acls(match).result(OP_TIMEOUT_S))
    assert {lit, pre} <= got, "MATCH: the literal and the prefix that cover the name"
    assert deny not in got
    f = AclBindingFilter(ResourceType.TOPIC, None, ResourcePatternType.ANY, sec.principal, None,
                         AclOperation.ANY, AclPermissionType.ALLOW)
    deleted = sec.admin.delete_acls([f])[f].result(OP_TIMEOUT_S)
    assert set(deleted) == {lit, pre}
    assert set(sec.admin.describe_acls(mine).result(OP_TIMEOUT_S)) == {deny}


def test_metadata_lists_only_describable_topics(sec):
    """Metadata (all topics) lists the topics the principal may Describe, directly or implied by
    Read/Write, by literal or prefixed ACL; a topic asked for by name without Describe answers
    TOPIC_AUTHORIZATION_FAILED (librdkafka drops it)."""
    base = uniq("t-md")
    names = {k: f"{base}-{k}" for k in ("describe", "read", "write", "prefixed-a", "hidden")}
    for t in names.values():
        create_topic(sec.admin_ep, t)
    grant(sec.admin,
          acl(sec.principal, ResourceType.TOPIC, names["describe"], AclOperation.DESCRIBE),
          acl(sec.principal, ResourceType.TOPIC, names["read"], AclOperation.READ),
          acl(sec.principal, ResourceType.TOPIC, names["write"], AclOperation.WRITE),
          acl(sec.principal, ResourceType.TOPIC, f"{base}-prefixed", AclOperation.DESCRIBE,
              pattern=ResourcePatternType.PREFIXED))
    for listener in SASL_LISTENERS:
        ep = sasl_endpoint(sec.broker, listener, "SCRAM-SHA-512", (sec.user, sec.password))
        listed = {t for t in AdminClient(ep.ck()).list_topics(timeout=10).topics
                  if t.startswith(base)}
        assert listed == {names[k] for k in ("describe", "read", "write", "prefixed-a")}, listener
    from kafka import KafkaAdminClient
    kp = KafkaAdminClient(**sec.ep.kp())
    try:
        assert {t for t in kp.list_topics() if t.startswith(base)} == \
            {names[k] for k in ("describe", "read", "write", "prefixed-a")}
    finally:
        kp.close()
    md = AdminClient(sec.ep.ck()).list_topics(names["hidden"], timeout=10)
    assert md.topics[names["hidden"]].error is not None
    assert md.topics[names["hidden"]].error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_produce_needs_topic_write(sec):
    topic = uniq("t-w")
    create_topic(sec.admin_ep, topic)
    assert ck_produce_error(sec.ep, topic) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    grant(sec.admin, acl(sec.principal, ResourceType.TOPIC, topic, AclOperation.READ))
    assert ck_produce_error(sec.ep, topic) == KafkaError.TOPIC_AUTHORIZATION_FAILED, \
        "Read does not imply Write"
    grant(sec.admin, acl(sec.principal, ResourceType.TOPIC, topic, AclOperation.WRITE))
    assert ck_produce_error(sec.ep, topic) is None


def test_fetch_needs_topic_read(sec):
    topic, group = uniq("t-r"), uniq("g-r")
    create_topic(sec.admin_ep, topic)
    produce_as_admin(sec, topic)
    # librdkafka looks up the coordinator of its group.id even for an assign()-only consumer:
    # the group is allowed, so that only Fetch's own check is under test.
    grant(sec.admin, acl(sec.principal, ResourceType.TOPIC, topic, AclOperation.DESCRIBE),
          acl(sec.principal, ResourceType.GROUP, group, AclOperation.READ))
    assert ck_consume_error(sec.ep, topic, group) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    grant(sec.admin, acl(sec.principal, ResourceType.TOPIC, topic, AclOperation.READ))
    assert ck_consume_error(sec.ep, topic, group) is None


def test_group_needs_group_read_and_commit_needs_topic_read(sec):
    """JoinGroup/SyncGroup/OffsetCommit/OffsetFetch need Read on the group
    (GROUP_AUTHORIZATION_FAILED); committing a partition needs Read on its topic
    (TOPIC_AUTHORIZATION_FAILED for that partition)."""
    topic, group = uniq("t-g"), uniq("g-g")
    create_topic(sec.admin_ep, topic)
    produce_as_admin(sec, topic)
    grant(sec.admin, acl(sec.principal, ResourceType.TOPIC, topic, AclOperation.READ))
    assert ck_consume_error(sec.ep, topic, group, subscribe=True) == \
        KafkaError.GROUP_AUTHORIZATION_FAILED
    grant(sec.admin, acl(sec.principal, ResourceType.GROUP, group, AclOperation.READ))
    assert ck_consume_error(sec.ep, topic, group, subscribe=True) is None

    other = uniq("t-g2")
    create_topic(sec.admin_ep, other)
    c = Consumer(sec.ep.ck(**{"group.id": group, "enable.auto.commit": False}))
    try:
        with pytest.raises(KafkaException) as info:
            c.commit(offsets=[TopicPartition(other, 0, 1)], asynchronous=False)
        # librdkafka raises the per-partition error of the OffsetCommit answer.
        code = ck_error_code(info.value)
        assert code == KafkaError.TOPIC_AUTHORIZATION_FAILED, info.value
    finally:
        c.close()


def test_create_and_delete_topics_need_create_and_delete(sec):
    topic = uniq("t-cd")
    a = AdminClient(sec.ep.ck())
    with pytest.raises(KafkaException) as info:
        a.create_topics([NewTopic(topic, 1, 1)])[topic].result(OP_TIMEOUT_S)
    assert ck_error_code(info.value) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    grant(sec.admin, acl(sec.principal, ResourceType.TOPIC, topic[:6], AclOperation.CREATE,
                         pattern=ResourcePatternType.PREFIXED))
    a.create_topics([NewTopic(topic, 1, 1)])[topic].result(OP_TIMEOUT_S)
    wait_until(lambda: topic in AdminClient(sec.admin_ep.ck()).list_topics(timeout=5).topics,
               what="topic created by the user")
    with pytest.raises(KafkaException) as info:
        a.delete_topics([topic])[topic].result(OP_TIMEOUT_S)
    assert ck_error_code(info.value) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    grant(sec.admin, acl(sec.principal, ResourceType.TOPIC, topic, AclOperation.DELETE))
    a.delete_topics([topic])[topic].result(OP_TIMEOUT_S)


def test_cluster_create_allows_any_topic(sec):
    topic = uniq("t-cc")
    grant(sec.admin, acl(sec.principal, ResourceType.BROKER, "kafka-cluster", AclOperation.CREATE))
    a = AdminClient(sec.ep.ck())
    a.create_topics([NewTopic(topic, 1, 1)])[topic].result(OP_TIMEOUT_S)


def test_configs_need_describe_configs_and_alter_configs(sec):
    topic = uniq("t-cfg")
    create_topic(sec.admin_ep, topic)
    a = AdminClient(sec.ep.ck())
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    with pytest.raises(KafkaException) as info:
        a.describe_configs([res])[res].result(OP_TIMEOUT_S)
    assert ck_error_code(info.value) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    grant(sec.admin, acl(sec.principal, ResourceType.TOPIC, topic, AclOperation.ALTER_CONFIGS))
    cfg = a.describe_configs([res])[res].result(OP_TIMEOUT_S)  # AlterConfigs implies Describe-
    assert "retention.ms" in cfg
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry
    a.incremental_alter_configs([ConfigResource(
        ConfigResource.Type.TOPIC, topic, incremental_configs=[
            ConfigEntry("retention.ms", "3600000",
                        incremental_operation=AlterConfigOpType.SET)])])[res].result(OP_TIMEOUT_S)


def test_consumer_group_admin_needs_group_describe_and_delete(sec):
    topic, group = uniq("t-ga"), uniq("g-ga")
    create_topic(sec.admin_ep, topic)
    produce_as_admin(sec, topic)
    # The super user makes a group with committed offsets.
    c = Consumer(sec.admin_ep.ck(**{"group.id": group, "enable.auto.commit": False}))
    c.commit(offsets=[TopicPartition(topic, 0, 1)], asynchronous=False)
    c.close()
    a = AdminClient(sec.ep.ck())
    with pytest.raises(KafkaException) as info:
        a.describe_consumer_groups([group])[group].result(OP_TIMEOUT_S)
    assert ck_error_code(info.value) == KafkaError.GROUP_AUTHORIZATION_FAILED
    listed = {g.group_id for g in a.list_consumer_groups().result(OP_TIMEOUT_S).valid}
    assert group not in listed, "ListGroups lists only the groups the principal may Describe"
    with pytest.raises(KafkaException) as info:
        a.delete_consumer_groups([group])[group].result(OP_TIMEOUT_S)
    assert ck_error_code(info.value) == KafkaError.GROUP_AUTHORIZATION_FAILED
    grant(sec.admin, acl(sec.principal, ResourceType.GROUP, group, AclOperation.DESCRIBE))
    wait_until(lambda: group in {g.group_id for g in
                                 a.list_consumer_groups().result(OP_TIMEOUT_S).valid},
               what="group listed for the user")
    assert a.describe_consumer_groups([group])[group].result(OP_TIMEOUT_S).group_id == group
    grant(sec.admin, acl(sec.principal, ResourceType.GROUP, group, AclOperation.DELETE))
    a.delete_consumer_groups([group])[group].result(OP_TIMEOUT_S)


def test_transactional_id_needs_write(sec):
    topic, txn = uniq("t-tx"), uniq("tx")
    create_topic(sec.admin_ep, topic)
    grant(sec.admin, acl(sec.principal, ResourceType.TOPIC, topic, AclOperation.WRITE))
    p = Producer(sec.ep.ck(**{"transactional.id": txn, "message.timeout.ms": 15000}))
    with pytest.raises(KafkaException) as info:
        p.init_transactions(OP_TIMEOUT_S)
    assert ck_error_code(info.value) == KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    grant(sec.admin, acl(sec.principal, ResourceType.TRANSACTIONAL_ID, txn, AclOperation.WRITE))
    p = Producer(sec.ep.ck(**{"transactional.id": txn, "message.timeout.ms": 15000}))
    p.init_transactions(OP_TIMEOUT_S)
    p.begin_transaction()
    p.produce(topic, b"in-txn", partition=0)
    p.commit_transaction(OP_TIMEOUT_S)


def test_deny_wins_over_allow(sec):
    base = uniq("t-deny")
    allowed, denied = f"{base}-ok", f"{base}-no"
    for t in (allowed, denied):
        create_topic(sec.admin_ep, t)
    grant(sec.admin,
          acl(sec.principal, ResourceType.TOPIC, base, AclOperation.ALL,
              pattern=ResourcePatternType.PREFIXED),
          acl(sec.principal, ResourceType.TOPIC, denied, AclOperation.WRITE,
              permission=AclPermissionType.DENY))
    assert ck_produce_error(sec.ep, allowed) is None
    assert ck_produce_error(sec.ep, denied) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    listed = AdminClient(sec.ep.ck()).list_topics(timeout=10).topics
    assert denied in listed, "Deny Write does not deny Describe"


def test_wildcard_principal_and_host_matching(sec):
    """`User:*` matches every user; an ACL for another host does not match 127.0.0.1."""
    topic, topic2 = uniq("t-star"), uniq("t-host")
    for t in (topic, topic2):
        create_topic(sec.admin_ep, t)
    grant(sec.admin, acl("User:*", ResourceType.TOPIC, topic, AclOperation.WRITE),
          acl(sec.principal, ResourceType.TOPIC, topic2, AclOperation.WRITE, host="10.9.8.7"))
    assert ck_produce_error(sec.ep, topic) is None
    assert ck_produce_error(sec.ep, topic2) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    grant(sec.admin, acl(sec.principal, ResourceType.TOPIC, topic2, AclOperation.WRITE,
                         host="127.0.0.1"))
    assert ck_produce_error(sec.ep, topic2) is None


def test_other_clients_see_authorization_errors(sec):
    """kafka-python, aiokafka and kafkajs report TOPIC_AUTHORIZATION_FAILED (29) for a denied
    produce as Kafka answers it."""
    topic = uniq("t-oc")
    create_topic(sec.admin_ep, topic)
    grant(sec.admin, acl(sec.principal, ResourceType.TOPIC, topic, AclOperation.DESCRIBE))
    from kafka import KafkaProducer
    from kafka.errors import TopicAuthorizationFailedError
    p = KafkaProducer(**sec.ep.kp(max_block_ms=15000, retries=0))
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            p.send(topic, b"x", partition=0).get(timeout=OP_TIMEOUT_S)
    finally:
        p.close(timeout=5)

    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import TopicAuthorizationFailedError as AioDenied

    async def aio_send():
        ap = AIOKafkaProducer(**sec.ep.aio())
        await ap.start()
        try:
            await ap.send_and_wait(topic, b"x", partition=0)
        finally:
            await ap.stop()
    with pytest.raises(AioDenied):
        asyncio.run(asyncio.wait_for(aio_send(), OP_TIMEOUT_S))

    res = kjs("produce", sec.ep.kjs(topic=topic, values=["x"], retries=0))
    assert not res["ok"] and res["type"] == "TOPIC_AUTHORIZATION_FAILED", res
