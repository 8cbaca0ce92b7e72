"""Crash safety of transactions, short form: the broker is SIGKILLed at random moments while a
confluent-kafka transactional producer commits and aborts transactions over 2 partitions, and
restarted on the same data dir (tests/crash/txn_crash_harness.py has the checks and the long
form). After every restart, read_committed shows every committed transaction whole and nothing
of an aborted or unfinished one; a read_committed consumer running throughout never returned
anything else.

The broker listens on THORSTREAM_TXN_CRASH_TEST_PORT (default THORSTREAM_TEST_PORT + 3).
THORSTREAM_CRASH_SEED fixes the kill schedule's seed; by default it is random and printed.
"""
import json
import os
import random
import sys
from pathlib import Path

import pytest

from conftest import PORT

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "crash"))
from txn_crash_harness import run_txn_harness  # noqa: E402

TXN_CRASH_PORT = int(os.environ.get("THORSTREAM_TXN_CRASH_TEST_PORT", str(PORT + 3)))


def seed():
    env = os.environ.get("THORSTREAM_CRASH_SEED")
    return int(env) if env else random.randrange(2**31)


@pytest.mark.timeout(180)
def test_sigkill_during_transactions_keeps_committed_whole_and_aborted_invisible(
        broker_binary, tmp_path):
    summary = run_txn_harness(broker_binary, tmp_path, cycles=20, fsync="always", seed=seed(),
                              port=TXN_CRASH_PORT)
    print(json.dumps(summary, indent=2))
    assert summary["ok"], (f"seed {summary['seed']}: {summary['failures'][:10]} "
                           f"reader={summary['reader_errors']} log={summary['broker_log']}")
    assert summary["kills"] >= 20
    outcomes = summary["transactions_by_outcome"]
    assert outcomes.get("committed", 0) > 20 and outcomes.get("aborted", 0) > 0, outcomes
    assert summary["reader_values_checked"] > 0
    assert summary["kill_hit_phase"]["open_txn"] >= 6, "every third cycle kills an open transaction"
