"""Load for the fault tests and the soak: client threads that write, append
and read through random nodes of a cluster, every operation recorded in a
history.History; then the end of a run: settle, wait for the replicas to
converge, read every key through every node, check.

Each thread owns its keys (registers t<i>r<j>, append keys t<i>a<j>) and
sends each operation to a node drawn from its own seeded generator, so a
client follows no node: during a split it writes on both sides, which is what
makes last-writer-wins discard something (Jepsen's Riak clients did the
same). Paced, not closed-loop: each thread offers at most `rate` operations
a second.

    hist = history.History()
    load = Workload(cluster, hist, seed=7)
    load.start()          # sets every append key to "" first (acknowledged)
    ...faults...
    load.stop()
    result = finish(cluster, hist, load)   # {"report": history.Report, "converge_s": ...}
"""

import os
import random
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "cache"))
import cache_harness as h  # noqa: E402
import history  # noqa: E402

try:
    from pymemcache.client.base import Client
    from pymemcache.exceptions import MemcacheServerError
except ImportError:
    h.skip("pymemcache not installed (Debian: python3-pymemcache)")

# A request the cluster has not answered in this long is given up on (unknown
# outcome). The cluster answers SERVER_ERROR within about two request
# timeouts (1 s each); this leaves room for a loaded Debug build.
CLIENT_TIMEOUT_S = 4.0


class Worker(threading.Thread):
    def __init__(self, index, cluster, hist, seed, rate, registers, appends):
        super().__init__(daemon=True)
        self.index = index
        self.cluster = cluster
        self.hist = hist
        self.rng = random.Random(seed * 1009 + index)
        self.rate = rate
        self.registers = [f"t{index}r{j}" for j in range(registers)]
        self.appends = [f"t{index}a{j}" for j in range(appends)]
        self.stop = threading.Event()
        self.paused = threading.Event()  # set: issue nothing new (Workload.pause)
        self.idle = threading.Event()    # set while no operation is in flight
        self.clients = {}  # (name, port) -> Client
        self.seq = 0
        self.ops = 0
        self.not_stored = []  # appends answered NOT_STORED: the key was missing at its coordinator
        self.client_errors = []

    def keys(self):
        return self.registers + self.appends

    def client(self, node):
        port = node.port
        if port is None:
            return None, None
        key = (node.name, port)
        c = self.clients.get(key)
        if c is None:
            c = Client((node.ip, port), connect_timeout=2, timeout=CLIENT_TIMEOUT_S, default_noreply=False)
            self.clients[key] = c
        return key, c

    def drop(self, key):
        c = self.clients.pop(key, None)
        if c is not None:
            c.close()

    def op(self, node, kind, key, value=None):
        """Runs one operation through `node` and records it; the outcome."""
        ck, c = self.client(node)
        if c is None:
            return None
        op = self.hist.begin(f"t{self.index}", kind, key, value, node.name)
        self.ops += 1
        try:
            if kind == "write":
                outcome, result = ("ok" if c.set(key, value) else "failed"), None
            elif kind == "append":
                stored = c.append(key, value, noreply=False)
                if not stored:
                    self.not_stored.append((self.hist.clock(), node.name, key))
                outcome, result = ("ok" if stored else "failed"), None
            else:
                outcome, result = "ok", c.get(key)
        except ConnectionRefusedError:
            outcome, result = "failed", None  # nothing was sent
            self.drop(ck)
        except MemcacheServerError:
            outcome, result = "unknown", None
        except OSError:  # a timeout (socket.timeout is one), a reset, a close mid-request
            outcome, result = "unknown", None
            self.drop(ck)
        except Exception as e:  # noqa: BLE001 -- a client-side error: unknown, and reported
            outcome, result = "unknown", None
            self.client_errors.append(repr(e)[:160])
            self.drop(ck)
        self.hist.finish(op, outcome, result)
        return outcome

    def init_appends(self, deadline):
        for key in self.appends:
            while self.op(self.rng.choice(self.cluster.live()), "write", key, b"") != "ok":
                if time.monotonic() > deadline:
                    raise RuntimeError(f"could not set {key} before the load")
                time.sleep(0.1)

    def run(self):
        next_at = time.monotonic()
        while not self.stop.is_set():
            if self.paused.is_set():
                self.idle.set()
                self.stop.wait(0.05)
                next_at = time.monotonic()
                continue
            self.idle.clear()
            now = time.monotonic()
            if now < next_at:
                self.stop.wait(next_at - now)
                continue
            next_at = max(next_at + 1.0 / self.rate, now)
            live = [n for n in self.cluster.nodes if n.server is not None]
            if not live:
                continue
            node = self.rng.choice(live)
            self.seq += 1
            r = self.rng.random()
            if r < 0.4:
                key = self.rng.choice(self.registers)
                self.op(node, "write", key, f"{key}={self.seq}".encode())
            elif r < 0.65 and self.appends:
                self.op(node, "append", self.rng.choice(self.appends), f"|{self.seq}".encode())
            else:
                self.op(node, "read", self.rng.choice(self.keys()))
        for c in self.clients.values():
            c.close()
        self.idle.set()


class Workload:
    def __init__(self, cluster, hist, seed, threads=4, rate=40, registers=10, appends=3):
        self.workers = [Worker(i, cluster, hist, seed, rate, registers, appends) for i in range(threads)]

    def start(self, init_timeout=20.0):
        deadline = time.monotonic() + init_timeout
        for w in self.workers:
            w.init_appends(deadline)
        for w in self.workers:
            w.start()

    def pause(self, timeout=CLIENT_TIMEOUT_S * 3):
        """Stops issuing operations and waits for those in flight; False if one is still running."""
        for w in self.workers:
            w.idle.clear()
            w.paused.set()
        return all(w.idle.wait(timeout) for w in self.workers)

    def resume(self):
        for w in self.workers:
            w.paused.clear()

    def stop(self):
        for w in self.workers:
            w.stop.set()
        for w in self.workers:
            w.join(CLIENT_TIMEOUT_S * 3)
        return all(not w.is_alive() for w in self.workers)

    def keys(self):
        return [k for w in self.workers for k in w.keys()]

    def ops(self):
        return sum(w.ops for w in self.workers)


def replica_states(node, keys, timeout=5.0):
    """{key: (holder, fnv1a hex or None)} from node's `stats replica` of each key (pipelined)."""
    out = {}
    with socket.create_connection(node.address(), timeout=timeout) as s:
        for i in range(0, len(keys), 50):
            chunk = keys[i:i + 50]
            s.sendall(b"".join(b"stats replica " + k.encode() + b"\r\n" for k in chunk))
            got = b""
            s.settimeout(timeout)
            while got.count(b"END\r\n") < len(chunk):
                data = s.recv(65536)
                if not data:
                    raise ConnectionError("closed")
                got += data
            for key, reply in zip(chunk, got.split(b"END\r\n")):
                st = h.parse_stats(reply)
                value = st.get("replica_value_fnv1a")
                out[key] = (st.get("replica_holder") == "1", None if value in (None, "none") else value)
    return out


def replicas_of(cluster, keys):
    """{key: {node: hash}} over the holders of each key among the running nodes."""
    out = {k: {} for k in keys}
    for node in cluster.live():
        for key, (holder, value) in replica_states(node, keys).items():
            if holder:
                out[key][node.name] = value
    return out


def wait_converged(cluster, keys, timeout, replicas):
    """Polls until every key's holders (`replicas` of them) agree; (seconds, last states, ok)."""
    start = time.monotonic()
    while True:
        try:
            states = replicas_of(cluster, keys)
            ok = all(len(v) == replicas and len(set(v.values())) == 1 for v in states.values())
        except OSError:
            states, ok = None, False
        took = time.monotonic() - start
        if ok or took > timeout:
            return took, states, ok
        time.sleep(0.25)


def final_reads(cluster, keys):
    """{node: {key: value or None}}: every key read through every running node."""
    out = {}
    for node in cluster.live():
        c = Client(node.address(), connect_timeout=2, timeout=CLIENT_TIMEOUT_S)
        try:
            values = {}
            for i in range(0, len(keys), 20):
                got = c.get_many(keys[i:i + 20])
                for k in keys[i:i + 20]:
                    values[k] = got.get(k)
            out[node.name] = values
        finally:
            c.close()
    return out


def finish(cluster, hist, load, n, replicas=3, settle_timeout=40.0, converge_timeout=40.0):
    """After the last heal (and restart): membership settles, replicas converge, every key is
    read through every node, the history is checked. Raises when membership does not settle."""
    t0 = time.monotonic()
    settle_s = cluster.wait_settled(n, timeout=settle_timeout)
    keys = load.keys()
    converge_s, states, converged = wait_converged(cluster, keys, converge_timeout, replicas)
    final = final_reads(cluster, keys)
    report = history.check(hist, final, states)
    return {"report": report, "settle_s": settle_s, "converge_s": time.monotonic() - t0,
            "converged": converged, "converge_poll_s": converge_s, "final": final}
