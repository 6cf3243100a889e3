"""atomic.exclusive_lock: exclusive between processes, fail-fast or queued, the lock file removed after."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from vae_anomaly.atomic import exclusive_lock
from vae_anomaly.errors import DataError

# A process that takes the lock (queued) N times and, holding it, adds one to a counter file with a pause
# between the read and the write: a lost update shows any moment two processes held it together.
_COUNTER = """
import sys, time
from pathlib import Path
from vae_anomaly.atomic import exclusive_lock
lock, counter, n = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
for _ in range(n):
    with exclusive_lock(lock, what="the counter", wait=True):
        value = int(counter.read_text())
        time.sleep(0.002)
        counter.write_text(str(value + 1))
"""


def test_a_second_holder_is_refused_at_once_naming_the_output(tmp_path):
    lock = tmp_path / ".out.parquet.lock"
    with exclusive_lock(lock, what="out.parquet"):
        t0 = time.perf_counter()
        with pytest.raises(DataError, match=r"another job is already writing out\.parquet") as e:
            with exclusive_lock(lock, what="out.parquet"):
                pass
        assert time.perf_counter() - t0 < 1 and e.value.file == str(lock)
    assert list(tmp_path.iterdir()) == []  # the lock file is removed after
    with exclusive_lock(lock, what="out.parquet"):  # and the lock can be taken again
        assert lock.exists()


def test_a_queued_holder_waits_for_the_release(tmp_path):
    lock, log = tmp_path / "l.lock", tmp_path / "log"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from vae_anomaly.atomic import exclusive_lock\n"
        "with exclusive_lock(Path(sys.argv[1]), what='x'):\n"
        "    Path(sys.argv[2]).write_text('held\\n'); time.sleep(1.0)\n"
        "    Path(sys.argv[2]).write_text('held\\nreleased\\n')\n"), str(lock), str(log)])
    try:
        deadline = time.monotonic() + 30
        while not log.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        with exclusive_lock(lock, what="x", wait=True):
            assert log.read_text() == "held\nreleased\n"
    finally:
        assert holder.wait(timeout=30) == 0


def test_queued_processes_never_hold_the_lock_together(tmp_path):
    lock, counter = tmp_path / "c.lock", tmp_path / "counter"
    counter.write_text("0")
    procs = [subprocess.Popen([sys.executable, "-c", _COUNTER, str(lock), str(counter), "25"]) for _ in range(4)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    assert counter.read_text() == "100"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["counter"]


def test_an_unwritable_lock_folder_is_one_data_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(DataError, match="a parent of the path is a file") as e:
        with exclusive_lock(blocker / "x.lock", what="x"):
            pass
    assert e.value.file == str(blocker / "x.lock")


_HOLD_BRIEFLY = """
import sys, time
from pathlib import Path
from vae_anomaly.atomic import exclusive_lock
with exclusive_lock(Path(sys.argv[1]), what="out", wait=False):
    print("held", flush=True)
    time.sleep(0.05)
"""


def test_a_lock_released_a_moment_later_is_taken_not_refused(tmp_path, monkeypatch):
    # A holder that unlinks and releases while we try is not another job: the old single attempt could meet
    # the unlinked file and refuse with nobody holding the lock. The non-waiting lock tries briefly.
    from vae_anomaly import atomic

    monkeypatch.setattr(atomic, "REFUSE_AFTER_S", 5.0)  # room for a busy machine; the old code tried once
    lock = tmp_path / ".out.lock"
    for _ in range(5):
        holder = subprocess.Popen([sys.executable, "-c", _HOLD_BRIEFLY, str(lock)], stdout=subprocess.PIPE, text=True)
        assert holder.stdout.readline().strip() == "held"
        with exclusive_lock(lock, what="out"):  # the holder lets go within 50 ms
            assert lock.exists()
        assert holder.wait(timeout=30) == 0
