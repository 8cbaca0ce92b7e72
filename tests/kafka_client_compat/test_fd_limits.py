"""Out of file descriptors: the broker raises its soft limit to the hard one at startup, and
when the hard limit is reached it keeps serving the connections it has and accepts the ones
waiting in the kernel's backlog as soon as a descriptor frees (the listener is
edge-triggered: without a retry they would wait for the next new connection to arrive).

Each test runs its own broker process, started with a chosen RLIMIT_NOFILE.
"""
import resource
import socket
import struct
import subprocess
import time

import pytest

from conftest import HOST, port_accepts, tail_file


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def api_versions_request(correlation):
    # ApiVersions v0, request header v1 with a null client id.
    body = struct.pack(">hhih", 18, 0, correlation, -1)
    return struct.pack(">i", len(body)) + body


def read_response(sock, timeout):
    """The correlation id of one response frame, or None if none arrives in `timeout`."""
    sock.settimeout(timeout)
    buf = b""
    try:
        while len(buf) < 8:
            chunk = sock.recv(4096)
            if not chunk:
                return None
            buf += chunk
    except (socket.timeout, OSError):
        return None
    return struct.unpack(">i", buf[4:8])[0]


class LimitedBroker:
    def __init__(self, binary, tmp_path, soft, hard):
        self.port = free_port()
        self.log = tmp_path / "broker.log"
        addr = f"{HOST}:{self.port}"
        limits = (soft, hard)

        def set_limit():
            resource.setrlimit(resource.RLIMIT_NOFILE, limits)

        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [str(binary), "--listen", addr, "--advertised-addr", addr,
                 "--data-dir", str(tmp_path / "data")],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env={"RUST_LOG": "info", "PATH": "/usr/bin:/bin"}, preexec_fn=set_limit)
        deadline = time.monotonic() + 30
        while not port_accepts(HOST, self.port):
            assert self.proc.poll() is None, f"broker exited:\n{self.log_text()}"
            assert time.monotonic() < deadline, f"broker not listening:\n{self.log_text()}"
            time.sleep(0.05)

    def log_text(self):
        return tail_file(self.log, 400)

    def connect(self, correlation):
        s = socket.create_connection((HOST, self.port), timeout=5)
        s.sendall(api_versions_request(correlation))
        return s

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture
def limited(broker_binary, tmp_path):
    started = []

    def start(soft, hard):
        b = LimitedBroker(broker_binary, tmp_path, soft, hard)
        started.append(b)
        return b

    yield start
    for b in started:
        b.stop()


def test_soft_open_file_limit_is_raised_to_the_hard_limit(limited):
    broker = limited(64, 4096)
    # Far more connections than the soft limit the process was started with.
    socks = [broker.connect(i) for i in range(300)]
    try:
        for i, s in enumerate(socks):
            assert read_response(s, 10) == i, f"connection {i} not served:\n{broker.log_text()}"
    finally:
        for s in socks:
            s.close()
    assert "open files limit: raised from 64 to 4096" in broker.log_text()


def test_out_of_descriptors_keeps_serving_and_accepts_the_backlog_once_one_frees(limited):
    broker = limited(64, 64)
    served, waiting = [], []
    # Fill the descriptor table: connections past the limit wait in the kernel's backlog
    # (their connect succeeds, their request gets no answer).
    for i in range(100):
        s = broker.connect(i)
        if read_response(s, 1.0 if not waiting else 0.3) == i:
            served.append(s)
        else:
            waiting.append((i, s))
        if len(waiting) >= 5:
            break
    assert len(waiting) >= 5, f"the limit was never reached ({len(served)} served)"
    assert len(served) > 20, f"only {len(served)} connections before the limit"
    assert "accept failed" in broker.log_text()
    # The connections already open are still served while the table is full.
    served[0].sendall(api_versions_request(1000))
    assert read_response(served[0], 5) == 1000
    # Free some descriptors; no new connection arrives, yet the waiting ones must be taken up.
    for s in served[-10:]:
        s.close()
    del served[-10:]
    for i, s in waiting:
        assert read_response(s, 10) == i, f"backlogged connection {i} never served:\n{broker.log_text()}"
        s.close()
    assert "accepting connections again" in broker.log_text()
    assert broker.proc.poll() is None, "broker died"
    for s in served:
        s.close()
    assert broker.stop() == 0, broker.log_text()
