"""Certificates (with the `openssl` CLI) and a broker started with security flags, for
test_security.py.

Certificates (`make_certs`): a CA; a server certificate signed by it with SAN IP:127.0.0.1 and
DNS:localhost (clients verify the host name); client certificates signed by the CA for mTLS
(subject CN = the principal's name); and a client certificate of the same name signed by
another CA (must be refused). Keys are EC P-256 in PKCS#8 PEM, which rustls, OpenSSL (librdkafka,
Python's ssl, Node) and the Java clients' PEM support all read.

`SecureBroker` runs the broker binary with `--listeners NAME://127.0.0.1:PORT,...` and extra
flags, a data dir in a temp dir, the users created with `thorstream users add` on the stopped
data dir before the first start (the first admin), and readiness as a state: every listener
accepts TCP, then a caller-given probe (an authenticated Metadata request) succeeds.

The binary is the suite's (conftest's `THORSTREAM_BIN` / target dir). Pointing THORSTREAM_BIN at
a wrapper that translates this CLI into an Apache Kafka configuration runs the same tests
against Kafka (how the tests were validated; not part of CI).

Ports: `THORSTREAM_SECURITY_PORT_BASE` (consecutive ports from it) or, unset, free ports the OS
picks.
"""
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import REPO_ROOT, port_accepts, tail_file

START_TIMEOUT_S = 60.0  # a cold JVM (Kafka reference runs) needs more than the 30 s of conftest
STOP_TIMEOUT_S = 15.0

_next_port = [int(os.environ["THORSTREAM_SECURITY_PORT_BASE"])] \
    if os.environ.get("THORSTREAM_SECURITY_PORT_BASE") else None


def allocate_port():
    """The next port of THORSTREAM_SECURITY_PORT_BASE, else a loopback port nobody listens on."""
    if _next_port is not None:
        port = _next_port[0]
        _next_port[0] += 1
        return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# =============================================================================
# certificates
# =============================================================================

@dataclass
class Certs:
    dir: Path
    ca: Path             # the CA the server and the good clients chain to (PEM)
    server_cert: Path
    server_key: Path
    other_ca: Path       # an unrelated CA

    def client(self, cn):
        """(cert, key) of a client certificate for `cn` signed by the CA (made on first use)."""
        return _client_cert(self, cn, self.dir / "ca.key", self.ca, f"client-{cn}")

    def rogue_client(self, cn):
        """(cert, key) for `cn` signed by the other CA: an mTLS listener must refuse it."""
        return _client_cert(self, cn, self.dir / "other-ca.key", self.other_ca, f"rogue-{cn}")


def _openssl(*args, cwd):
    proc = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        pytest.fail(f"openssl {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}",
                    pytrace=False)


def _ec_key_args(key_path):
    return ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", str(key_path)]


def _make_ca(d, stem, cn):
    _openssl("req", "-x509", *_ec_key_args(d / f"{stem}.key"), "-out", f"{stem}.pem",
             "-days", "3650", "-subj", f"/CN={cn}",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    return d / f"{stem}.pem"


def _sign(d, stem, subject, ca_pem, ca_key, extensions):
    _openssl("req", "-new", *_ec_key_args(d / f"{stem}.key"), "-out", f"{stem}.csr",
             "-subj", subject, cwd=d)
    (d / f"{stem}.ext").write_text(extensions)
    _openssl("x509", "-req", "-in", f"{stem}.csr", "-CA", str(ca_pem), "-CAkey", str(ca_key),
             "-CAcreateserial", "-out", f"{stem}.pem", "-days", "825", "-sha256",
             "-extfile", f"{stem}.ext", cwd=d)
    return d / f"{stem}.pem", d / f"{stem}.key"


def _client_cert(certs, cn, ca_key, ca_pem, stem):
    cert, key = certs.dir / f"{stem}.pem", certs.dir / f"{stem}.key"
    if not cert.is_file():
        _sign(certs.dir, stem, f"/CN={cn}/O=Thorstream tests", ca_pem, ca_key,
              "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
              "extendedKeyUsage=clientAuth\n")
    return cert, key


def make_certs(d):
    """A CA, a server certificate for 127.0.0.1/localhost, and another CA, in directory `d`."""
    d = Path(d)
    d.mkdir(parents=True, exist_ok=True)
    if shutil.which("openssl") is None:
        pytest.skip("the openssl CLI is not on PATH (it makes the test certificates)")
    ca = _make_ca(d, "ca", "Thorstream test CA")
    other = _make_ca(d, "other-ca", "Some other CA")
    cert, key = _sign(d, "server", "/CN=localhost", ca, d / "ca.key",
                      "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                      "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n")
    return Certs(dir=d, ca=ca, server_cert=cert, server_key=key, other_ca=other)


def _die_with_parent():
    """In the child before exec: SIGTERM it when the test process dies (even by a crash), so a
    broker never outlives its test run (PR_SET_PDEATHSIG; Linux, a no-op elsewhere)."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


# =============================================================================
# the broker
# =============================================================================

class SecureBroker:
    """The broker binary with `--listeners` (name -> port, all on 127.0.0.1) and `flags`."""

    def __init__(self, binary, tmp, listeners, flags, users=()):
        self.binary = Path(binary)
        self.data_dir = Path(tmp) / "data"
        self.log_path = Path(tmp) / "broker.log"
        self.ports = {name: allocate_port() for name in listeners}
        self.flags = list(flags)
        self.users = list(users)  # (name, mechanism, password), created before the first start
        self.proc = None
        self.starts = 0

    def bootstrap(self, listener):
        return f"127.0.0.1:{self.ports[listener]}"

    def listeners_flag(self):
        return ",".join(f"{name}://127.0.0.1:{port}" for name, port in self.ports.items())

    def command(self):
        return [str(self.binary), "--listeners", self.listeners_flag(),
                "--data-dir", str(self.data_dir), *self.flags]

    def add_users_offline(self):
        """`thorstream users add NAME --mechanism M --password-stdin --data-dir D` per user."""
        for name, mechanism, password in self.users:
            cmd = [str(self.binary), "users", "add", name, "--mechanism", mechanism,
                   "--password-stdin", "--data-dir", str(self.data_dir)]
            proc = subprocess.run(cmd, input=password + "\n", capture_output=True, text=True,
                                  timeout=60, cwd=REPO_ROOT)
            if proc.returncode != 0:
                pytest.fail(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}"
                            f"{proc.stderr}", pytrace=False)

    def start(self, ready_probe):
        """Starts and returns once every listener accepts TCP and `ready_probe()` is true."""
        for name, port in self.ports.items():
            if port_accepts("127.0.0.1", port):
                pytest.fail(f"port {port} ({name}) already accepts connections before the broker "
                            f"started", pytrace=False)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.starts == 0:
            self.add_users_offline()
        env = dict(os.environ)
        env.pop("THORSTREAM_ADDR", None)
        env.setdefault("RUST_LOG", "info")
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== start #{self.starts}: {' '.join(self.command())} =====\n".encode())
            log.flush()
            self.proc = subprocess.Popen(self.command(), cwd=REPO_ROOT, env=env,
                                         stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True,
                                         preexec_fn=_die_with_parent)
        deadline = time.monotonic() + START_TIMEOUT_S
        pending = dict(self.ports)
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.fail(f"broker exited with code {self.proc.returncode} during startup")
            pending = {n: p for n, p in pending.items() if not port_accepts("127.0.0.1", p)}
            if not pending:
                try:
                    if ready_probe():
                        return self
                except Exception as e:  # not ready yet: the probe's client saw an error
                    last = e
            time.sleep(0.2)
        self.fail(f"broker not ready within {START_TIMEOUT_S:.0f}s (listeners not accepting: "
                  f"{pending}; last probe error: {last!r})")

    def is_running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        # The process group: a wrapper script (Kafka reference runs) and its JVM.
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            return self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            return self.proc.wait(timeout=STOP_TIMEOUT_S)

    def log_tail(self, lines=60):
        return tail_file(self.log_path, lines)

    def fail(self, msg):
        pytest.fail(f"{msg}\n--- broker log ({self.log_path}) ---\n{self.log_tail(120)}",
                    pytrace=False)
