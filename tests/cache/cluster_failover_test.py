#!/usr/bin/python3
"""A dhtkit-cache cluster under load while a node fails, leaves or joins.

Processes, not threads: N=3 R=1 W=2 nodes on loopback (cluster_harness.py),
client threads with pymemcache spread over the nodes, each writing its own
keys with increasing values and reading each back. Scenarios (one a run):

  kill   3 nodes; kill -9 one mid-load; restart it (same name) mid-load
  leave  3 nodes; one leaves gracefully (SIGTERM, exit 0) mid-load
  join   3 nodes; a fourth joins mid-load

Then load stops, membership and handoff settle (bounded), and every key is
read through every node. Checked: zero acknowledged writes lost (each key
reads its last acknowledged value or a later written one), no read ever
returned a value that was never written (every value sent is recorded,
acknowledged or not), failed requests only around the event and no more than
the offered rate allows in that window, no request that hung.

  /usr/bin/python3 tests/cache/cluster_failover_test.py --server .../dhtkit-cache --scenario kill

--long runs the same with longer phases and more keys (minutes; not in CI).
"""

import argparse
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cache_harness as h  # noqa: E402
import cluster_harness as ch  # noqa: E402

Client, errors = ch.pymemcache_or_skip()

THREADS = 4
# Paced, not closed-loop: each client thread offers at most RATE set+get
# pairs a second, so the offered request rate is known and bounds how many
# requests can fail in a window of given length.
RATE = 40
OFFERED = THREADS * RATE * 2  # requests a second
# The local profile detects a dead node in about 1-2 s and a request that
# cannot reach its quorum answers within about 1 s. A failure is expected
# only while the cluster has not yet noticed an event: from the event to
# detection (2 s) plus one request timeout (1 s) in flight, plus 2 s of slack
# for a Debug build on a shared 2-core machine. Outside these windows no
# request may fail; inside, at most the offered rate times the window.
WINDOW_S = 5.0
# A request that has not answered after this long hung (the cluster answers
# SERVER_ERROR within its request timeout instead).
CLIENT_TIMEOUT_S = 5.0
VALUE_PAD = 100


class Worker(threading.Thread):
    """One client: its own keys, written with increasing values and read back, moving to the
    next node when its node's connection fails."""

    def __init__(self, index, cluster, keys, clock):
        super().__init__(daemon=True)
        self.index = index
        self.cluster = cluster
        self.keys = [f"w{index}:k{j}" for j in range(keys)]
        self.clock = clock
        self.stop = threading.Event()
        self.written = {k: {} for k in self.keys}  # key -> {value: seq}, every value sent
        self.acked = {}  # key -> seq of the last acknowledged write
        self.ops = 0
        self.acked_writes = 0
        self.failures = []  # (seconds since start, kind, node, op, error)
        self.bad_reads = []  # (key, value)
        # Reads of an older value than this client's last acknowledged write of the key
        # (or of none): (seconds, node, key, seq read or None, seq acknowledged, moved before).
        self.stale_reads = []
        self.moves = 0
        self.node_at = index
        self.client = None
        self.node_name = None

    def connect(self, move):
        if self.client is not None:
            self.client.close()
            self.client = None
        live = self.cluster.live()
        if not live:
            return False
        if move:
            self.node_at += 1
            self.moves += 1
        node = live[self.node_at % len(live)]
        port = node.port  # None when the node stopped since live() was read
        if port is None:
            return False
        self.node_name = node.name
        self.client = Client((ch.HOST, port), connect_timeout=2, timeout=CLIENT_TIMEOUT_S,
                             default_noreply=False)
        return True

    def fail(self, kind, op, e):
        self.failures.append((self.clock(), kind, self.node_name, op, repr(e)[:160]))

    def request(self, op, fn):
        """fn()'s result, or raises _Failed after recording the failure (and moving on a
        connection error)."""
        self.ops += 1
        try:
            return fn()
        except socket.timeout as e:
            self.fail("timeout", op, e)
            self.connect(move=False)
        except errors.MemcacheUnexpectedCloseError as e:
            self.fail("closed", op, e)
            self.connect(move=True)
        except errors.MemcacheServerError as e:
            self.fail("server_error", op, e)
        except OSError as e:
            self.fail("connection", op, e)
            self.connect(move=True)
        except Exception as e:  # noqa: BLE001 -- a client error must not end the thread unseen
            self.fail("other", op, e)
            self.connect(move=True)
        raise _Failed()

    def run(self):
        self.connect(move=False)
        seq = 0
        next_at = time.monotonic()
        while not self.stop.is_set():
            now = time.monotonic()
            if now < next_at:
                self.stop.wait(next_at - now)
                continue
            # No bursts after a slow request: the offered rate stays at most RATE.
            next_at = max(next_at + 1.0 / RATE, now)
            key = self.keys[seq % len(self.keys)]
            seq += 1
            value = f"{key}={seq};".encode().ljust(VALUE_PAD, b".")
            self.written[key][value] = seq
            try:
                if self.client is None and not self.connect(move=True):
                    continue
                if self.request("set", lambda: self.client.set(key, value)) is True:
                    self.acked[key] = seq
                    self.acked_writes += 1
                got = self.request("get", lambda: self.client.get(key))
            except _Failed:
                continue
            if got is not None and got not in self.written[key]:
                self.bad_reads.append((key, got))
            elif key in self.acked and (got is None or self.written[key][got] < self.acked[key]):
                self.stale_reads.append((self.clock(), self.node_name, key,
                                         None if got is None else self.written[key][got], self.acked[key],
                                         self.moves > 0))
        if self.client is not None:
            self.client.close()


class _Failed(Exception):
    pass


def final_check(cluster, workers):
    """Reads every key through every running node: (lost writes, bad reads, read errors, reports)."""
    lost, bad, errors, reports = 0, 0, 0, []
    keys = [k for w in workers for k in w.keys]
    written = {k: v for w in workers for k, v in w.written.items()}
    acked = {k: v for w in workers for k, v in w.acked.items()}
    for node in cluster.live():
        client = Client(node.address(), connect_timeout=2, timeout=CLIENT_TIMEOUT_S)
        try:
            for i in range(0, len(keys), 20):
                chunk = keys[i:i + 20]
                try:
                    got = client.get_many(chunk)  # a multiget fans out over the key's owners
                except Exception as e:  # noqa: BLE001 -- every failure is a failed read here
                    errors += len(chunk)
                    reports.append(f"{node.name}: get_many {chunk[0]}..: {e!r}")
                    continue
                for key in chunk:
                    value = got.get(key)
                    if value is not None and value not in written[key]:
                        bad += 1
                        reports.append(f"{node.name}: {key} read {value[:40]!r}, never written")
                    elif key in acked and (value is None or written[key][value] < acked[key]):
                        lost += 1
                        reports.append(f"{node.name}: {key} read "
                                       f"{'nothing' if value is None else 'seq %d' % written[key][value]}"
                                       f", last acknowledged seq {acked[key]}")
        finally:
            client.close()
    return lost, bad, errors, reports


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server", required=True, help="the dhtkit-cache binary")
    ap.add_argument("--scenario", required=True, choices=("kill", "leave", "join"))
    ap.add_argument("--long", action="store_true", help="longer phases and more keys (not in CI)")
    args = ap.parse_args()
    scale = 10 if args.long else 1
    warm_s, during_s, after_s = 3.0 * scale, 4.0 * scale, 3.0 * scale
    keys = 40 * scale

    c = h.Checks()
    t0 = time.monotonic()

    def clock():
        return time.monotonic() - t0

    events = []  # (from, to, what) in seconds: failures may occur from `from` to `to` + WINDOW_S
    with ch.Cluster(args.server, 3, replicas=3, read_quorum=1, write_quorum=2) as cluster:
        took = cluster.wait_members(3)
        print(f"3 nodes up, membership spread in {took:.2f} s", flush=True)
        workers = [Worker(i, cluster, keys, clock) for i in range(THREADS)]
        load_start = clock()
        for w in workers:
            w.start()
        time.sleep(warm_s)  # load only: the baseline, where nothing may fail

        if args.scenario == "kill":
            at = clock()
            cluster.kill9(1)
            events.append((at, clock(), "kill -9 n1"))
            time.sleep(during_s)
            at = clock()
            cluster.restart(1)
            events.append((at, clock(), "restart of n1 until it printed its listening line"))
        elif args.scenario == "leave":
            at = clock()
            status = cluster.terminate(1, timeout=20.0)
            events.append((at, clock(), "SIGTERM to n1 until it exited"))
            leave_s = events[-1][1] - at
            print(f"n1 left in {leave_s:.2f} s, exit status {status}", flush=True)
            c.equal(status, 0, "exit status of the leaving node after SIGTERM (within 20 s)")
            if status != 0:
                print(cluster.nodes[1].stderr_text()[-2000:])
            time.sleep(during_s)
        else:
            at = clock()
            cluster.add()
            events.append((at, clock(), "start of n3 until it printed its listening line"))
            time.sleep(during_s)
        time.sleep(after_s)
        for w in workers:
            w.stop.set()
        for w in workers:
            w.join(CLIENT_TIMEOUT_S * 3)
            c.check(not w.is_alive(), f"client {w.index} stopped")
        load_end = clock()
        load_s = load_end - load_start

        expect = 4 if args.scenario == "join" else (2 if args.scenario == "leave" else 3)
        try:
            took = cluster.wait_settled(expect, timeout=30.0)
            print(f"settled ({expect} alive, no handoff in progress) {took:.2f} s after the load stopped",
                  flush=True)
        except RuntimeError as e:
            c.check(False, f"membership and handoff settle: {e}")
        lost, bad_final, read_errors, reports = final_check(cluster, workers)
        for line in reports[:20]:
            print("  " + line)
        if len(reports) > 20:
            print(f"  ... and {len(reports) - 20} more")
        stats = cluster.snapshot()

    failures = sorted(f for w in workers for f in w.failures)
    ops = sum(w.ops for w in workers)
    acked = sum(w.acked_writes for w in workers)
    bad_load = [b for w in workers for b in w.bad_reads]
    stale = sorted(s for w in workers for s in w.stale_reads)
    moves = sum(w.moves for w in workers)

    def in_window(t):
        return any(start <= t <= end + WINDOW_S for start, end, _ in events)

    outside = [f for f in failures if not in_window(f[0])]
    timeouts = [f for f in failures if f[1] == "timeout"]
    # The bound: the offered rate over the union of the windows (within the load).
    windows, covered = 0.0, 0.0
    for start, end, _ in sorted(events):
        start, end = max(start, covered), min(end + WINDOW_S, load_end)
        if end > start:
            windows += end - start
            covered = end
    bound = int(OFFERED * windows)
    kinds = {}
    for f in failures:
        kinds[f[1]] = kinds.get(f[1], 0) + 1
    print("events: " + ", ".join(f"{what} {start:.2f}-{end:.2f} s" for start, end, what in events))
    for f in failures[:10]:
        print(f"  failed at {f[0]:.2f} s: {f[1]} on {f[2]} ({f[3]}): {f[4]}")
    if len(failures) > 10:
        print(f"  ... and {len(failures) - 10} more failed requests (last at {failures[-1][0]:.2f} s)")
    for name, s in stats.items():
        print(f"  {name}: " + " ".join(f"{k}={v}" for k, v in s.items()
                                       if k in ("cluster_conflicts_resolved", "cluster_requests_forwarded",
                                                "cluster_requests_failed", "cluster_hints_held")))
    print(f"{args.scenario}: ops {ops} acked writes {acked} failed requests {len(failures)} {kinds} "
          f"(bound {bound}: {OFFERED}/s offered x {windows:.1f} s of windows) lost writes {lost} "
          f"bad reads {len(bad_load) + bad_final} stale reads during load {len(stale)} client moves {moves} "
          f"in {load_s:.1f} s of load", flush=True)

    c.check(ops > OFFERED * load_s / 4, f"the clients ran: {ops} requests in {load_s:.1f} s (offered {OFFERED}/s)")
    c.check(acked > 0, "some writes were acknowledged")
    c.equal(lost, 0, "acknowledged writes lost (read through every node)")
    c.equal(read_errors, 0, "final reads that failed")
    c.equal(len(bad_load) + bad_final, 0, "reads that returned a value never written")
    for key, value in bad_load[:5]:
        print(f"  bad read during load: {key} -> {value[:40]!r}")
    for t, node, key, got, acked_seq, moved in stale[:10]:
        print(f"  stale read at {t:.2f} s on {node}: {key} read {'nothing' if got is None else 'seq %d' % got}"
              f" after seq {acked_seq} was acknowledged{' (client had moved)' if moved else ''}")
    c.equal(len(timeouts), 0, f"requests with no answer within {CLIENT_TIMEOUT_S} s")
    # One client talking to one node reads its own writes (issue 14), whichever nodes hold
    # the key: a client that never moved must not read back an older value than the one it
    # just had acknowledged. Not while a killed node's keys fail over, though: with R=1 the
    # next replica becomes coordinator, and W=2 may have been met by the dead node and the
    # third one. From the killed node's restart on (it rejoins empty), the rule holds again.
    since = events[-1][0] if args.scenario == "kill" else 0.0
    c.equal(len([s for s in stale if not s[5] and s[0] >= since]), 0,
            f"stale reads by clients that never moved, from {since:.2f} s on")
    # A reply the client could not parse is a protocol error, not a failover.
    c.equal(kinds.get("other", 0), 0, "requests that failed with a client-side error")
    c.equal(len(outside), 0, f"failed requests outside the {WINDOW_S} s after each event")
    c.check(len(failures) <= bound, f"failed requests {len(failures)} within the bound {bound}")
    return c.finish(f"cluster failover ({args.scenario})")


if __name__ == "__main__":
    sys.exit(main())
