"""A history of client operations on a cache cluster, and the checker that
says what the faults cost: acknowledged writes lost, reads of values never
written, replicas that did not converge.

Every operation is recorded with its start, its end and its outcome:
  ok       the server acknowledged it (STORED; a read's value, or a miss)
  failed   it certainly had no effect (the connection was refused before a
           byte was sent; NOT_STORED)
  unknown  a timeout, a closed connection, SERVER_ERROR: it may or may not
           have been applied, now or later (a write that missed its quorum
           stays where it reached, and spreads from there)

Two kinds of keys, each written by values that are unique per key:
  register  `set key value`: the last write wins
  append    `append key |token`, on a key first set to the empty value: every
            acknowledged token must be in the final value (the read-modify-
            write Jepsen's Riak test used: under last-writer-wins, concurrent
            versions lose each other's tokens)

    hist = History()
    op = hist.begin("c1", "write", "k", b"k=1")
    hist.finish(op, "ok")
    hist.fault("isolate n2", start, end)        # a partition's window, for the report
    report = check(hist, final={"n0": {"k": b"k=1"}}, replicas={"k": {"n0": fnv1a(b"k=1")}})
    report.lost_writes, report.lww_discarded, report.never_written, report.unconverged

What counts as lost (register): the key's value after heal and settle (read
through every node) is not from its last acknowledged write w, nor from a
write that could have taken effect after w began (one that had not ended
before w started; an unknown one may take effect any time after its start).
Append: an acknowledged token missing from the final value. A loss whose
operation ran while a partition was in place is reported apart, as
discarded by the conflict rule (cache_record's last-writer-wins), with the
partition that explains it; the others are losses with no such excuse.
"""

import threading
import time

OUTCOMES = ("ok", "failed", "unknown")
INFINITY = float("inf")


def fnv1a(data):
    """64-bit FNV-1a as 16 hex digits: what `stats replica` reports for a value."""
    h = 0xCBF29CE484222325
    for byte in data:
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def tokens(value):
    """The tokens of an append key's value (b"|a|b" -> [b"a", b"b"])."""
    return [t for t in value.split(b"|") if t] if value else []


class Op:
    __slots__ = ("id", "process", "kind", "key", "value", "node", "start", "end", "outcome", "result")

    def __init__(self, id, process, kind, key, value, node, start):
        self.id, self.process, self.kind, self.key, self.value = id, process, kind, key, value
        self.node, self.start, self.end, self.outcome, self.result = node, start, None, None, None

    def effective_end(self):
        """When its effect is certainly in place: its end if acknowledged, never if unknown."""
        return self.end if self.outcome == "ok" else INFINITY

    def __repr__(self):
        value = self.value if self.kind != "read" else self.result
        return (f"#{self.id} {self.process} {self.kind} {self.key} {value!r} via {self.node} "
                f"{self.start:.3f}-{(self.end if self.end is not None else -1):.3f} {self.outcome}")


class History:
    """Operations and fault windows, recorded from many threads."""

    def __init__(self, clock=None):
        if clock is None:
            t0 = time.monotonic()
            clock = lambda: time.monotonic() - t0  # noqa: E731 -- seconds since the history began
        self.clock = clock
        self.ops = []
        self.faults = []  # (what, start, end, partition?)
        self._lock = threading.Lock()

    def begin(self, process, kind, key, value=None, node=None):
        if kind not in ("write", "append", "read"):
            raise ValueError(kind)
        with self._lock:
            op = Op(len(self.ops), process, kind, key, value, node, self.clock())
            self.ops.append(op)
        return op

    def finish(self, op, outcome, result=None):
        if outcome not in OUTCOMES:
            raise ValueError(outcome)
        op.end, op.outcome, op.result = self.clock(), outcome, result

    def fault(self, what, start, end, partition=True):
        """A fault from start to end (its heal). partition: nodes ran cut off from each other
        (both sides may accept writes), as opposed to a node down."""
        with self._lock:
            self.faults.append((what, start, end, partition))

    def counts(self):
        out = {}
        for op in self.ops:
            k = f"{op.kind}_{op.outcome}"
            out[k] = out.get(k, 0) + 1
        return out


class Report:
    def __init__(self):
        self.lost_writes = []     # (key, op, why): acknowledged, gone, no partition to explain it
        self.lww_discarded = []   # (key, op, why): acknowledged, gone while a partition was in place
        self.never_written = []   # (key, who, value): a read of a value no write of the key had
        self.unconverged = []     # (key, {node: hash}, final hash)
        self.final_disagree = []  # (key, {node: value}): nodes answered different final values
        self.acked = 0
        self.checked_keys = 0
        self.acked_in_partition = 0  # acknowledged writes and appends that ran while a partition was in place
        self.acked_in_partition_by_kind = {}  # the same by kind ("write", "append")

    def ok(self):
        return not (self.lost_writes or self.never_written or self.unconverged or self.final_disagree)

    def lines(self, limit=10):
        out = [f"checked {self.checked_keys} keys, {self.acked} acknowledged writes: "
               f"lost {len(self.lost_writes)}, discarded by last-writer-wins under a partition "
               f"{len(self.lww_discarded)}, reads of never-written values {len(self.never_written)}, "
               f"keys whose replicas differ {len(self.unconverged)}, keys read differently through nodes "
               f"{len(self.final_disagree)}"]
        if self.acked_in_partition:
            kinds = {}
            for _, op, _ in self.lww_discarded:
                kinds[op.kind] = kinds.get(op.kind, 0) + 1
            out.append(f"under partitions: {self.acked_in_partition} acknowledged, {len(self.lww_discarded)} "
                       f"({100.0 * len(self.lww_discarded) / self.acked_in_partition:.1f} %) discarded by "
                       f"last-writer-wins {kinds}, of acknowledged {self.acked_in_partition_by_kind}")
        for name, rows in (("LOST", self.lost_writes), ("LWW", self.lww_discarded)):
            for key, op, why in rows[:limit]:
                out.append(f"  {name} {key}: {op!r}: {why}")
        for key, who, value in self.never_written[:limit]:
            out.append(f"  NEVER WRITTEN {key}: {who} read {value[:60]!r}")
        for key, hashes, final in self.unconverged[:limit]:
            out.append(f"  UNCONVERGED {key}: final {final}, replicas {hashes}")
        for key, values in self.final_disagree[:limit]:
            out.append(f"  FINAL READS DIFFER {key}: {values}")
        return out


def _partition_during(faults, op):
    for what, start, end, partition in faults:
        if partition and op.start <= end and op.end >= start:
            return what
    return None


def check(history, final, replicas=None):
    """final: {node: {key: value or None}}, each key read through each node after heal and
    settle. replicas: {key: {node: fnv1a hex or None}} of the key's holders (`stats replica`),
    or None to skip the convergence check."""
    r = Report()
    by_key = {}
    for op in history.ops:
        by_key.setdefault(op.key, []).append(op)
    faults = list(history.faults)

    # The final value of each key: every node must answer the same.
    final_of = {}
    for key in by_key:
        seen = {node: values[key] for node, values in final.items() if key in values}
        if not seen:
            continue
        if len(set(seen.values())) > 1:
            r.final_disagree.append((key, seen))
        final_of[key] = next(iter(seen.values()))

    for key, ops in by_key.items():
        writes = [op for op in ops if op.kind in ("write", "append") and op.outcome != "failed"]
        appends = [op for op in ops if op.kind == "append"]
        for op in ops:
            if op.kind in ("write", "append") and op.outcome == "ok":
                r.acked += 1
                if _partition_during(faults, op):
                    r.acked_in_partition += 1
                    by_kind = r.acked_in_partition_by_kind
                    by_kind[op.kind] = by_kind.get(op.kind, 0) + 1
        # Every value a read of this key could return.
        if appends:
            written_tokens = {t for op in appends for t in tokens(op.value)}

            def is_written(value):
                return all(t in written_tokens for t in tokens(value)) and \
                    (value == b"" or value.startswith(b"|"))
        else:
            written_values = {op.value for op in writes}

            def is_written(value):
                return value in written_values
        for op in ops:
            if op.kind == "read" and op.outcome == "ok" and op.result is not None and not is_written(op.result):
                r.never_written.append((key, repr(op), op.result))
        if key not in final_of:
            continue
        r.checked_keys += 1
        value = final_of[key]
        if value is not None and not is_written(value):
            r.never_written.append((key, "final read", value))
            continue

        def lose(op, why):
            during = _partition_during(faults, op)
            if during:
                r.lww_discarded.append((key, op, f"{why}; written during {during}: a concurrent version "
                                                 f"won by last-writer-wins"))
            else:
                r.lost_writes.append((key, op, why))

        if appends:
            present = set(tokens(value)) if value is not None else set()
            for op in appends:
                if op.outcome == "ok" and not set(tokens(op.value)) <= present:
                    lose(op, "acknowledged token missing from the final value")
        else:
            acked = [op for op in writes if op.outcome == "ok"]
            if not acked:
                continue
            # Unique values: the final value names the one write it came from.
            source = next((op for op in writes if op.value == value), None)
            for op in acked:
                if source is op:
                    continue
                if source is None or source.effective_end() < op.start:
                    why = ("final value is a miss" if source is None else
                           f"final value is from #{source.id}, acknowledged before this write began")
                    lose(op, why)

    if replicas is not None:
        for key, hashes in replicas.items():
            want = fnv1a(final_of[key]) if final_of.get(key) is not None else None
            if any(h != want for h in hashes.values()):
                r.unconverged.append((key, hashes, want))
    return r
