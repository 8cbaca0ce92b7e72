"""Shared fixtures for the Kafka client-compatibility tests.

The session-scoped ``broker`` fixture builds (if needed) and starts the real
``thorstream`` binary on 127.0.0.1:19093 with a fresh temporary data dir, and
stops it with SIGTERM at the end of the session. On any test failure the tail
of the broker log is attached to the pytest report ("broker log tail" section).

Environment knobs:
  THORSTREAM_BIN        path to a prebuilt broker binary (default: target/{release,debug}/thorstream,
                        building with `cargo build --release --bin thorstream` if neither exists)
  THORSTREAM_TEST_PORT  port to listen on (default 19093)
  RUST_LOG              passed through to the broker (default "info")
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
PORT = int(os.environ.get("THORSTREAM_TEST_PORT", "19093"))
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
BUILD_TIMEOUT_S = 1800.0
LOG_TAIL_LINES = 80

# The live broker (set by the `broker` fixture) so the report hook can attach its log.
_BROKER = None


def _target_dir():
    return Path(os.environ.get("CARGO_TARGET_DIR", REPO_ROOT / "target"))


def find_broker_binary():
    """THORSTREAM_BIN, else target/release/thorstream, else target/debug/thorstream, else build."""
    env_bin = os.environ.get("THORSTREAM_BIN")
    if env_bin:
        path = Path(env_bin)
        if not (path.is_file() and os.access(path, os.X_OK)):
            pytest.fail(f"THORSTREAM_BIN={env_bin!r} is not an executable file", pytrace=False)
        return path
    target = _target_dir()
    for profile in ("release", "debug"):
        candidate = target / profile / "thorstream"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    cargo = shutil.which("cargo")
    if cargo is None:
        pytest.fail("no thorstream binary found and `cargo` is not on PATH", pytrace=False)
    print(f"\n[conftest] building broker: cargo build --release --bin thorstream (in {REPO_ROOT})",
          file=sys.stderr, flush=True)
    proc = subprocess.run([cargo, "build", "--release", "--bin", "thorstream"], cwd=REPO_ROOT,
                          timeout=BUILD_TIMEOUT_S)
    if proc.returncode != 0:
        pytest.fail(f"`cargo build --release --bin thorstream` failed (exit {proc.returncode})",
                    pytrace=False)
    candidate = target / "release" / "thorstream"
    if not candidate.is_file():
        pytest.fail(f"cargo build succeeded but {candidate} does not exist", pytrace=False)
    return candidate


def wait_until(predicate, timeout=15.0, interval=0.1, what="condition"):
    """Polls `predicate` every `interval` s until it returns something truthy (returned) or
    `timeout` s pass (the test fails, naming `what` and the last value)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what} (last value: {last!r})")


def port_accepts(host, port, timeout=0.5):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def tail_file(path, lines=LOG_TAIL_LINES):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 256 * 1024))
            data = f.read().decode("utf-8", errors="replace")
    except OSError as e:
        return f"<cannot read {path}: {e}>"
    return "\n".join(data.splitlines()[-lines:])


class Broker:
    """A running thorstream broker process (one per test session)."""

    def __init__(self, binary, data_dir, log_path, host=HOST, port=PORT):
        self.binary = Path(binary)
        self.data_dir = Path(data_dir)
        self.log_path = Path(log_path)
        self.host = host
        self.port = port
        self.bootstrap = f"{host}:{port}"
        self.proc = None
        self.starts = 0

    # -- lifecycle -------------------------------------------------------
    def command(self):
        return [str(self.binary),
                "--listen", self.bootstrap,
                "--advertised-addr", self.bootstrap,
                "--data-dir", str(self.data_dir)]

    def start(self):
        assert self.proc is None or self.proc.poll() is not None, "broker already running"
        if port_accepts(self.host, self.port):
            pytest.fail(f"{self.bootstrap} already accepts connections before the broker was "
                        f"started: a stale broker or another process holds the port", pytrace=False)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env["THORSTREAM_ADDR"] = self.bootstrap
        env.setdefault("RUST_LOG", "info")
        env.setdefault("RUST_BACKTRACE", "1")
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== [conftest] start #{self.starts}: {' '.join(self.command())} =====\n"
                      .encode())
            log.flush()
            self.proc = subprocess.Popen(self.command(), cwd=REPO_ROOT, env=env,
                                         stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        self.wait_ready()

    def wait_ready(self, timeout=START_TIMEOUT_S):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._fail(f"broker exited with code {self.proc.returncode} during startup")
            if port_accepts(self.host, self.port):
                return
            time.sleep(0.1)
        self._fail(f"broker did not accept TCP connections on {self.bootstrap} within {timeout:.0f}s")

    def stop(self, expect_clean=True):
        """SIGTERM, wait up to 10 s, then SIGKILL. Returns the exit code."""
        if self.proc is None:
            return None
        proc = self.proc
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=STOP_TIMEOUT_S)
                self._log_marker(f"broker did not exit {STOP_TIMEOUT_S:.0f}s after SIGTERM: killed")
                if expect_clean:
                    self._fail(f"broker did not exit within {STOP_TIMEOUT_S:.0f}s of SIGTERM (killed)")
                return proc.returncode
        code = proc.returncode
        self._log_marker(f"broker exited with code {code}")
        if expect_clean and code != 0:
            self._fail(f"broker exited with code {code} after SIGTERM (expected 0)")
        return code

    def restart(self):
        """Graceful restart on the same data dir: SIGTERM, expect exit 0, start, wait for the port."""
        self.stop(expect_clean=True)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while port_accepts(self.host, self.port) and time.monotonic() < deadline:
            time.sleep(0.1)
        self.start()

    def is_running(self):
        return self.proc is not None and self.proc.poll() is None

    # -- diagnostics -----------------------------------------------------
    def log_tail(self, lines=LOG_TAIL_LINES):
        return tail_file(self.log_path, lines)

    def _log_marker(self, text):
        try:
            with open(self.log_path, "ab") as log:
                log.write(f"===== [conftest] {text} =====\n".encode())
        except OSError:
            pass

    def _fail(self, msg):
        pytest.fail(f"{msg}\n--- broker log ({self.log_path}) ---\n{self.log_tail(200)}",
                    pytrace=False)

    def __repr__(self):
        return f"Broker({self.bootstrap}, data_dir={self.data_dir})"


_BINARY = None  # (path, None) or (None, error message); resolved once per session


def _resolve_binary():
    global _BINARY
    if _BINARY is None:
        try:
            _BINARY = (find_broker_binary(), None)
        except pytest.fail.Exception as e:
            _BINARY = (None, str(e))
    return _BINARY


def pytest_collection_modifyitems(session, config, items):
    # Locate (and if necessary build) the broker before the first test runs, so a long
    # `cargo build` is not counted against the per-test timeout (pytest-timeout).
    if config.option.collectonly:
        return
    if any("broker" in getattr(item, "fixturenames", ()) for item in items):
        _resolve_binary()


@pytest.fixture(scope="session")
def broker_binary():
    path, error = _resolve_binary()
    if error:
        pytest.fail(error, pytrace=False)
    return path


@pytest.fixture(scope="session")
def broker(broker_binary, tmp_path_factory):
    global _BROKER
    tmp = tmp_path_factory.mktemp("thorstream")
    b = Broker(broker_binary, data_dir=tmp / "data", log_path=tmp / "broker.log")
    b.start()
    _BROKER = b
    try:
        yield b
    finally:
        _BROKER = None
        code = b.stop(expect_clean=False)
        if code not in (0, None):
            print(f"\n[conftest] WARNING: broker exit code at session end was {code}; "
                  f"log: {b.log_path}", file=sys.stderr)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed and _BROKER is not None:
        running = "running" if _BROKER.is_running() else "NOT running"
        report.sections.append(
            (f"broker log tail ({_BROKER.log_path}, broker {running})", _BROKER.log_tail()))


# -- unique names ---------------------------------------------------------

_INVALID_NAME_CHARS = re.compile(r"[^a-zA-Z0-9._-]+")


def unique_name(prefix, test_name):
    base = _INVALID_NAME_CHARS.sub("_", test_name).strip("_")[:80]
    return f"{prefix}-{base}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def make_topic_name(request):
    """Factory for unique topic names: ``make_topic_name()`` / ``make_topic_name("suffix")``."""
    def make(suffix=""):
        name = unique_name("t", request.node.name)
        if suffix:
            name += "-" + _INVALID_NAME_CHARS.sub("_", suffix)
        return name
    return make


@pytest.fixture
def topic_name(make_topic_name):
    """A unique topic name (only [a-zA-Z0-9._-]) for this test; the topic is not created."""
    return make_topic_name()


@pytest.fixture
def group_id(request):
    """A unique consumer group id for this test."""
    return unique_name("g", request.node.name)


@pytest.fixture(scope="session")
def kcat_bin():
    path = shutil.which("kcat") or shutil.which("kafkacat")
    if path is None:
        pytest.skip("kcat not installed (setup_venv.sh installs it with apt-get when run as root)")
    return path


# -- client factories ---------------------------------------------------------
#
# Every client gets short timeouts so that a broken broker makes a test fail
# in seconds instead of hanging. All clients created through the `clients`
# fixture are closed at the end of the test (also on failure).

KP_COMMON = dict(
    # api_version deliberately NOT set: kafka-python probes it with ApiVersions.
    api_version_auto_timeout_ms=5000,
    reconnect_backoff_ms=50,
    reconnect_backoff_max_ms=1000,
    retry_backoff_ms=100,
)

CK_COMMON = {
    "socket.timeout.ms": 10000,
    "broker.address.family": "v4",
    "reconnect.backoff.ms": 50,
    "reconnect.backoff.max.ms": 1000,
    "retry.backoff.ms": 100,
}


class Clients:
    """Factory for kafka-python ("kp") and confluent-kafka ("ck") clients bound to the broker."""

    def __init__(self, bootstrap, name):
        self.bootstrap = bootstrap
        self.name = name
        self._closers = []

    # kafka-python
    def kp_admin(self, **cfg):
        from kafka import KafkaAdminClient
        conf = dict(KP_COMMON, bootstrap_servers=self.bootstrap, client_id="compat-kp-admin",
                    request_timeout_ms=10000)
        conf.update(cfg)
        admin = KafkaAdminClient(**conf)
        self._closers.append(admin.close)
        return admin

    def kp_producer(self, **cfg):
        from kafka import KafkaProducer
        conf = dict(KP_COMMON, bootstrap_servers=self.bootstrap, client_id="compat-kp-producer",
                    request_timeout_ms=10000, max_block_ms=10000, delivery_timeout_ms=20000)
        conf.update(cfg)
        producer = KafkaProducer(**conf)
        self._closers.append(lambda: producer.close(timeout=5))
        return producer

    def kp_consumer(self, **cfg):
        from kafka import KafkaConsumer
        conf = dict(KP_COMMON, bootstrap_servers=self.bootstrap, client_id="compat-kp-consumer",
                    enable_auto_commit=False, auto_offset_reset="earliest",
                    request_timeout_ms=15000, fetch_max_wait_ms=100)
        conf.update(cfg)
        consumer = KafkaConsumer(**conf)
        self._closers.append(lambda: consumer.close(autocommit=False))
        return consumer

    # confluent-kafka
    def ck_admin(self, conf=None):
        from confluent_kafka.admin import AdminClient
        c = dict(CK_COMMON, **{"bootstrap.servers": self.bootstrap, "client.id": "compat-ck-admin",
                               # metadata lookups of the admin client must not create topics
                               "allow.auto.create.topics": False})
        c.update(conf or {})
        return AdminClient(c)

    def ck_producer(self, conf=None):
        from confluent_kafka import Producer
        c = dict(CK_COMMON, **{
            "bootstrap.servers": self.bootstrap,
            "client.id": "compat-ck-producer",
            "message.timeout.ms": 15000,
            # Java-compatible partitioning for keyed records (librdkafka default is consistent_random).
            "partitioner": "murmur2_random",
        })
        c.update(conf or {})
        producer = Producer(c)
        self._closers.append(lambda: producer.flush(5))
        return producer

    def ck_consumer(self, conf=None):
        from confluent_kafka import Consumer
        c = dict(CK_COMMON, **{
            "bootstrap.servers": self.bootstrap,
            "client.id": "compat-ck-consumer",
            # confluent-kafka requires a group.id even for assign()-only consumers.
            "group.id": unique_name("g-ck", self.name),
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 100,
            "session.timeout.ms": 10000,
        })
        c.update(conf or {})
        consumer = Consumer(c)
        def close():
            try:
                consumer.close()
            except RuntimeError:  # already closed by the test
                pass
        self._closers.append(close)
        return consumer

    def close_all(self):
        while self._closers:
            close = self._closers.pop()
            try:
                close()
            except Exception as e:  # closing must never mask the test's own result
                print(f"[conftest] error while closing client: {e!r}", file=sys.stderr)


@pytest.fixture
def clients(broker, request):
    c = Clients(broker.bootstrap, request.node.name)
    try:
        yield c
    finally:
        c.close_all()
