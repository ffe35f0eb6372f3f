#!/usr/bin/python3
"""The history checker (history.py) on hand-made histories: each case is one
the checker must flag, or one it must let pass, so a checker that reports
nothing (or everything) fails here.

    /usr/bin/python3 tests/faults/history_test.py
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "cache"))
import cache_harness as h  # noqa: E402
import history  # noqa: E402


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def run(hist, clock, process, kind, key, value, outcome, at, took=0.1, result=None):
    clock.t = at
    op = hist.begin(process, kind, key, value, node="n0")
    clock.t = at + took
    hist.finish(op, outcome, result)
    return op


def main():
    c = h.Checks()

    # A lost write: v2 acknowledged, the final read gives v1 (acknowledged before v2 began).
    clock = FakeClock()
    hist = history.History(clock)
    run(hist, clock, "c", "write", "k", b"v1", "ok", 1.0)
    run(hist, clock, "c", "write", "k", b"v2", "ok", 2.0)
    r = history.check(hist, {"n0": {"k": b"v1"}, "n1": {"k": b"v1"}})
    c.equal(len(r.lost_writes), 1, "an acknowledged write overwritten by an older one is lost")
    c.check(not r.ok(), "a lost write fails the report")

    # A lost write by a miss.
    r = history.check(hist, {"n0": {"k": None}})
    c.equal(len(r.lost_writes), 2, "a final miss loses every acknowledged write")

    # The final value from an unknown write that started after the last acknowledged one: not lost.
    clock = FakeClock()
    hist = history.History(clock)
    run(hist, clock, "c", "write", "k", b"v1", "ok", 1.0)
    run(hist, clock, "c", "write", "k", b"v2", "unknown", 2.0)
    r = history.check(hist, {"n0": {"k": b"v2"}})
    c.check(r.ok() and not r.lost_writes, f"an unknown write may win: {r.lines()}")
    # ... nor is it lost when it did not take effect.
    r = history.check(hist, {"n0": {"k": b"v1"}})
    c.check(r.ok(), f"an unknown write may be missing: {r.lines()}")

    # An unknown write that ended before the acknowledged one began still may explain the
    # final value (it may take effect later: its outcome is unknown).
    clock = FakeClock()
    hist = history.History(clock)
    run(hist, clock, "c", "write", "k", b"v1", "unknown", 1.0)
    run(hist, clock, "c", "write", "k", b"v2", "ok", 2.0)
    r = history.check(hist, {"n0": {"k": b"v1"}})
    c.check(r.ok(), f"an unknown write applied late explains the value: {r.lines()}")

    # A failed write (certainly not applied) explains nothing: its value is never written.
    clock = FakeClock()
    hist = history.History(clock)
    run(hist, clock, "c", "write", "k", b"v1", "ok", 1.0)
    run(hist, clock, "c", "write", "k", b"v2", "failed", 2.0)
    r = history.check(hist, {"n0": {"k": b"v2"}})
    c.equal(len(r.never_written), 1, "the value of a failed write read back is never written")

    # Concurrent acknowledged writes: either may win.
    clock = FakeClock()
    hist = history.History(clock)
    run(hist, clock, "a", "write", "k", b"va", "ok", 1.0, took=1.0)
    run(hist, clock, "b", "write", "k", b"vb", "ok", 1.5, took=1.0)
    c.check(history.check(hist, {"n0": {"k": b"va"}}).ok(), "overlapping writes: the first may win")
    c.check(history.check(hist, {"n0": {"k": b"vb"}}).ok(), "overlapping writes: the second may win")

    # A read of a value never written, during the run.
    clock = FakeClock()
    hist = history.History(clock)
    run(hist, clock, "c", "write", "k", b"v1", "ok", 1.0)
    run(hist, clock, "c", "read", "k", None, "ok", 2.0, result=b"garbage")
    run(hist, clock, "c", "read", "k", None, "ok", 3.0, result=b"v1")
    run(hist, clock, "c", "read", "k", None, "ok", 4.0, result=None)
    r = history.check(hist, {"n0": {"k": b"v1"}})
    c.equal(len(r.never_written), 1, "one read of a never-written value (a miss and v1 are fine)")

    # Final reads through two nodes that differ.
    r = history.check(hist, {"n0": {"k": b"v1"}, "n1": {"k": None}})
    c.equal(len(r.final_disagree), 1, "nodes answering different final values are reported")

    # Appends: an acknowledged token missing is lost; an unknown one may be missing.
    clock = FakeClock()
    hist = history.History(clock)
    run(hist, clock, "c", "write", "a", b"", "ok", 0.5)
    run(hist, clock, "c", "append", "a", b"|1", "ok", 1.0)
    run(hist, clock, "c", "append", "a", b"|2", "unknown", 2.0)
    run(hist, clock, "c", "append", "a", b"|3", "ok", 3.0)
    c.check(history.check(hist, {"n0": {"a": b"|1|3"}}).ok(), "appends: an unknown token may be missing")
    c.check(history.check(hist, {"n0": {"a": b"|1|2|3"}}).ok(), "appends: an unknown token may be present")
    r = history.check(hist, {"n0": {"a": b"|1|2"}})
    c.equal(len(r.lost_writes), 1, "appends: an acknowledged token missing is lost")
    r = history.check(hist, {"n0": {"a": b"|1|9"}})
    c.equal(len(r.never_written), 1, "appends: a token never appended is reported")

    # The same loss during a partition is reported apart, as last-writer-wins' doing.
    hist.fault("split n0,n1|n2,n3", 2.5, 3.5)
    r = history.check(hist, {"n0": {"a": b"|1|2"}})
    c.equal((len(r.lost_writes), len(r.lww_discarded)), (0, 1),
            "a loss during a partition is counted as discarded by the conflict rule, not as lost")
    c.check(r.ok(), "discarded-by-LWW alone does not fail the report")
    hist.faults.clear()
    hist.fault("kill -9 n2", 2.5, 3.5, partition=False)
    r = history.check(hist, {"n0": {"a": b"|1|2"}})
    c.equal(len(r.lost_writes), 1, "a node down explains no loss")

    # Replicas: a holder with another value has not converged.
    clock = FakeClock()
    hist = history.History(clock)
    run(hist, clock, "c", "write", "k", b"v1", "ok", 1.0)
    final = {"n0": {"k": b"v1"}}
    good = {"k": {"n0": history.fnv1a(b"v1"), "n1": history.fnv1a(b"v1")}}
    c.check(history.check(hist, final, good).ok(), "replicas holding the final value converged")
    bad = {"k": {"n0": history.fnv1a(b"v1"), "n1": None}}
    c.equal(len(history.check(hist, final, bad).unconverged), 1, "a holder missing the key has not converged")
    # The hash is the one dhtkit-cache's `stats replica` computes (FNV-1a, 64 bits).
    c.equal(history.fnv1a(b"hello"), "a430d84680aabd0b", "fnv1a of b'hello'")
    return c.finish("history checker")


if __name__ == "__main__":
    sys.exit(main())
