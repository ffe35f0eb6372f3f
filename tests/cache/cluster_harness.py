"""Starts a cluster of dhtkit-cache processes on loopback for one test, and
stops every one of them whatever happens.

Each node is a cache_harness.Server (the same start, stderr drain and stop as
the single-node tests) run with --cluster-port, --name n<i> and
--cluster-profile local; the first node forms the cluster, the others --join
the live ones. A node's client port is -p 0 (the server picks a free one and
prints it, so parallel tests never race for it); its cluster port, UDP and TCP
on one number, is found free here and kept for the node's life, so a node
restarted after kill -9 comes back with the same name and the same cluster
address. (Its client port is picked afresh then: Server always passes -p 0,
and the command line refuses a second -p.)

    with cluster_harness.Cluster(binary, 3) as cluster:
        cluster.wait_members()             # every node sees 3 alive
        cluster.nodes[1].kill9()
        cluster.restart(1)                 # same --name, same cluster port
        cluster.wait_settled()             # 3 alive, no handoff in progress

Nothing sleeps blindly: waits poll `stats cluster` until a condition holds,
each with a deadline, and fail with every node's last stats when it passes.
"""

import atexit
import os
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cache_harness as h  # noqa: E402

HOST = "127.0.0.1"

# Every cluster still running: stopped at exit, and on SIGTERM/SIGINT (CTest's
# timeout and ^C), so no test leaves a node behind when it fails. A harness built
# on this one adds its own clean-up with add_teardown (netns.py: its namespaces),
# run after the clusters stop, so it needs no exit and signal handlers of its own.
_LIVE = set()
_TEARDOWNS = []


def add_teardown(fn):
    """Runs fn() after every live cluster is stopped: at exit and on SIGTERM/SIGINT/SIGHUP."""
    _TEARDOWNS.append(fn)


def _stop_all():
    for cluster in list(_LIVE):
        cluster.close()
    for fn in list(_TEARDOWNS):
        fn()


atexit.register(_stop_all)


def _exit_on_signal(signum, _frame):
    _stop_all()
    os._exit(128 + signum)


for _sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(_sig, _exit_on_signal)


def pymemcache_or_skip():
    """pymemcache's Client class and its exceptions module; when python3-pymemcache is
    missing the test is skipped (exit 77; a failure under CI, see cache_harness.skip)."""
    try:
        from pymemcache import exceptions
        from pymemcache.client.base import Client
    except ImportError:
        h.skip("pymemcache not installed (Debian: python3-pymemcache)")
    return Client, exceptions


def free_cluster_port():
    """A port number free for both TCP and UDP on loopback (the node's gossip and data share it)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
            t.bind((HOST, 0))
            port = t.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                try:
                    u.bind((HOST, port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no port free for both TCP and UDP")


def cluster_stats(port, timeout=3.0, host=HOST):
    """`stats cluster` of the node at client port `port` as {name: value}."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        reply = h.request(s, b"stats cluster\r\n", (b"END\r\n", b"ERROR\r\n"), timeout)
    return h.parse_stats(reply)


class Node:
    """One dhtkit-cache process of a cluster: .name, .cport, .port (client port of the running
    process), .server (cache_harness.Server, None when not running)."""

    def __init__(self, binary, name, cport, options):
        self.binary = binary
        self.name = name
        self.cport = cport
        self.options = list(options)
        self.server = None
        self.exits = []  # exit status of each past process, in order

    # Read by client threads while the test's thread kills and restarts the
    # node: each reads self.server once.
    @property
    def port(self):
        server = self.server
        return server.port if server else None

    @property
    def running(self):
        server = self.server
        return server is not None and server.proc.poll() is None

    def address(self):
        return (HOST, self.port)

    def cluster_address(self):
        return f"{HOST}:{self.cport}"

    def start(self, join, start_timeout):
        args = ["-l", HOST, "--cluster-port", str(self.cport), "--name", self.name,
                "--cluster-profile", "local", *self.options]
        if join:
            args += ["--join", ",".join(join)]
        # Server returns once the client port is open, which the node does only
        # once it has joined: from here on it is a member.
        self.server = h.Server(self.binary, *args, start_timeout=start_timeout)

    def stats(self, timeout=3.0):
        return cluster_stats(self.port, timeout)

    def kill9(self):
        """SIGKILL, and wait for the process to be gone."""
        self.server.proc.kill()
        self.exits.append(self.server.proc.wait(timeout=10))
        self.server = None

    def terminate(self, timeout):
        """SIGTERM (graceful leave); the exit status, or None when the process was still running
        after `timeout` s (it is then killed, and the caller reports the failure)."""
        proc = self.server.proc
        proc.send_signal(signal.SIGTERM)
        try:
            status = proc.wait(timeout=timeout)
        except Exception:  # subprocess.TimeoutExpired
            status = None
            proc.kill()
            proc.wait()
        self.exits.append(status)
        self.stderr_before = self.server.stderr_text()
        self.server = None
        return status

    def stderr_text(self):
        return self.server.stderr_text() if self.server else getattr(self, "stderr_before", "")

    def close(self):
        if self.server is not None:
            self.server.kill()
            self.server = None


class Cluster:
    """n dhtkit-cache processes on loopback; a context manager that stops them all."""

    def __init__(self, binary, n, replicas=3, read_quorum=1, write_quorum=2, extra=(), start_timeout=20.0,
                 node_args=None, threads=2):
        self.binary = binary
        self.options = ["--replicas", str(replicas), "--read-quorum", str(read_quorum),
                        "--write-quorum", str(write_quorum), "-t", str(threads), *extra]
        # name -> arguments for that node only (e.g. its own TLS certificate and key).
        self.node_args = node_args
        self.start_timeout = start_timeout
        self.nodes = []
        _LIVE.add(self)
        try:
            for _ in range(n):
                self.add()
        except BaseException:
            self.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def close(self):
        for node in self.nodes:
            node.close()
        _LIVE.discard(self)

    def live(self):
        return [node for node in self.nodes if node.running]

    def _join_list(self, exclude=None):
        return [node.cluster_address() for node in self.live() if node is not exclude]

    def add(self, name=None):
        """Starts a new node (named `name`, default n<len(nodes)>) joining the live ones (none: it
        forms the cluster)."""
        name = name or f"n{len(self.nodes)}"
        options = self.options + (list(self.node_args(name)) if self.node_args else [])
        last_error = None
        # A free cluster port can be taken by another test between the probe and
        # the node's bind; a node that fails to start is retried on a new port.
        for _ in range(3):
            node = Node(self.binary, name, free_cluster_port(), options)
            try:
                node.start(self._join_list(), self.start_timeout)
            except RuntimeError as e:
                last_error = e
                if "address already in use" in str(e).lower() or "in use" in str(e).lower():
                    continue
                raise
            self.nodes.append(node)
            return node
        raise RuntimeError(f"{name} did not start: {last_error}")

    def kill9(self, index):
        self.nodes[index].kill9()

    def terminate(self, index, timeout=20.0):
        return self.nodes[index].terminate(timeout)

    def restart(self, index):
        """Starts node `index` again: same --name, same cluster port, joining the live nodes."""
        node = self.nodes[index]
        if node.running:
            raise RuntimeError(f"{node.name} is still running")
        node.start(self._join_list(exclude=node), self.start_timeout)
        return node

    def snapshot(self):
        """{name: stats cluster} of every running node ({'error': ...} for one that did not answer)."""
        out = {}
        for node in self.live():
            try:
                out[node.name] = node.stats()
            except (OSError, ConnectionError) as e:
                out[node.name] = {"error": repr(e)}
        return out

    def wait_until(self, condition, what, timeout):
        """Polls every running node's `stats cluster` until condition(stats) holds on all of
        them; the seconds it took. Raises with the last snapshot when `timeout` passes."""
        start = time.monotonic()
        deadline = start + timeout
        while True:
            snap = self.snapshot()
            if snap and all("error" not in s and condition(s) for s in snap.values()):
                return time.monotonic() - start
            if time.monotonic() >= deadline:
                raise RuntimeError(f"not every node shows {what} after {timeout} s: " + describe(snap))
            time.sleep(0.1)

    def wait_members(self, n=None, timeout=20.0):
        n = len(self.live()) if n is None else n
        return self.wait_until(lambda s: s.get("cluster_members_alive") == str(n),
                               f"cluster_members_alive {n}", timeout)

    def wait_settled(self, n=None, timeout=30.0):
        """Membership and handoff settled: n alive, none suspect, no handoff in progress, joined."""
        n = len(self.live()) if n is None else n

        def settled(s):
            return (s.get("cluster_members_alive") == str(n) and s.get("cluster_members_suspect") == "0"
                    and s.get("cluster_handoffs_in_progress") == "0" and s.get("cluster_state") == "joined")
        return self.wait_until(settled, f"{n} alive, 0 suspect, 0 handoffs in progress, joined", timeout)


def describe(snap):
    keys = ("cluster_state", "cluster_members_alive", "cluster_members_suspect", "cluster_members_dead",
            "cluster_handoffs_in_progress", "cluster_hints_held", "cluster_ring_share")
    parts = []
    for name, s in snap.items():
        if "error" in s:
            parts.append(f"{name}: {s['error']}")
        else:
            members = " ".join(f"{k[len('cluster_member_'):]}={v}" for k, v in s.items()
                               if k.startswith("cluster_member_"))
            parts.append(f"{name}: " + " ".join(f"{k[len('cluster_'):]}={s.get(k)}" for k in keys)
                         + f" [{members}]")
    return "; ".join(parts) if parts else "(no node running)"
