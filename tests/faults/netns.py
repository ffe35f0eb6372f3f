"""dhtkit-cache nodes as processes, each in its own network namespace, and the
faults a real network has: a link cut and healed, a node isolated, the
cluster split in two, a process killed with SIGKILL and restarted.

Layout: a Linux bridge in the root namespace (so the test process reaches
every node's client port directly) and, per node, a namespace with one veth
to the bridge. Node i listens on 10.213.S.(10+i), clients on -p 0 as in
tests/cache/cluster_harness.py, the cluster on port 7946 of that address (its
own namespace, so no port is shared). A restarted node gets the same name,
the same namespace and the same address.

A cut between nodes a and b routes each one's packets for the other to a
next hop that does not exist: they are dropped in silence, as a real
partition drops them (no error comes back at once; TCP times out, UDP
vanishes), and the client links from the root namespace stay up. No iptables
or tc is needed; `ip` (iproute2) does it all.

    with netns.NetnsCluster(binary, 3) as cluster:   # cluster_harness.Cluster, in namespaces
        cluster.wait_members()
        cluster.net.isolate(2, cluster.size())       # node 2 cut from every other node
        cluster.net.heal_all()
        cluster.kill9(1); cluster.restart(1)

Names carry the test's pid ("dhtf<pid>"), so parallel runs never meet.
Everything made here (namespaces, links, processes) is removed at exit, on
an exception and on SIGTERM/SIGINT/SIGHUP; leftovers of a run that was killed
with SIGKILL are swept by the next run (those whose pid no longer lives).
Not root, or no network namespaces: skip (exit 77).
"""

import fcntl
import os
import random
import re
import signal
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "cache"))
import cache_harness as h  # noqa: E402
import cluster_harness as ch  # noqa: E402

PREFIX = "dhtf"
CLUSTER_PORT = 7946
LOCK_FILE = "/run/dhtkit-faults.lock"
STALE = re.compile(PREFIX + r"(\d+)")

_NETWORKS = set()


def ip(*args, ns=None, check=True):
    cmd = ["ip", *(["netns", "exec", ns, "ip"] if ns else []), *args]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {r.stderr.strip()}")
    return r.stdout


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _kill_namespace_processes(ns):
    out = subprocess.run(["ip", "netns", "pids", ns], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         text=True).stdout
    for pid in out.split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass


def sweep_stale():
    """Removes namespaces and links named by a run whose process is gone; the names swept."""
    swept = []
    for line in ip("netns", "list", check=False).splitlines():
        name = line.split()[0] if line.split() else ""
        m = STALE.match(name)
        if m and not _pid_alive(int(m.group(1))):
            _kill_namespace_processes(name)
            ip("netns", "del", name, check=False)
            swept.append(name)
    for line in ip("-o", "link", "show", check=False).splitlines():
        parts = line.split(":")
        if len(parts) < 2:
            continue
        name = parts[1].strip().split("@")[0]
        m = STALE.match(name)
        if m and not _pid_alive(int(m.group(1))):
            ip("link", "del", name, check=False)
            swept.append(name)
    return swept


def require_netns():
    """Exits 77 (skip) unless this process can make network namespaces."""
    if os.geteuid() != 0:
        h.skip("network namespaces need root")
    probe = f"{PREFIX}{os.getpid()}-probe"
    r = subprocess.run(["ip", "netns", "add", probe], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        h.skip(f"ip netns add does not work here: {r.stderr.strip()}")
    subprocess.run(["ip", "netns", "del", probe], check=False)


class Network:
    """The bridge, one namespace per node, and the cuts between them."""

    def __init__(self):
        self.prefix = f"{PREFIX}{os.getpid()}"
        self.bridge = f"{self.prefix}b"
        self.namespaces = {}  # index -> namespace name
        self.cuts = set()  # frozenset({a, b})
        self.subnet = None
        _NETWORKS.add(self)
        try:
            sweep_stale()
            # The subnet is picked and taken under a lock, so two runs never pick the same one.
            with open(LOCK_FILE, "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                used = ip("-4", "-o", "addr", "show") + ip("-4", "route", "show", "table", "all")
                for k in range(256):
                    s = (os.getpid() + k) % 250 + 1
                    if f"10.213.{s}." not in used:
                        self.subnet = s
                        break
                if self.subnet is None:
                    raise RuntimeError("no free 10.213.x.0/24 subnet")
                ip("link", "add", "name", self.bridge, "type", "bridge")
                ip("addr", "add", f"10.213.{self.subnet}.1/24", "dev", self.bridge)
                ip("link", "set", self.bridge, "up")
        except BaseException:
            self.close()
            raise

    def address(self, index):
        return f"10.213.{self.subnet}.{10 + index}"

    def namespace(self, index):
        """The namespace of node `index`, made (with its veth on the bridge) on first use."""
        if index in self.namespaces:
            return self.namespaces[index]
        if index > 200:
            raise ValueError("at most 200 nodes")
        ns = f"{self.prefix}-n{index}"
        outer, inner = f"{self.prefix}v{index}", f"{self.prefix}p{index}"
        self.namespaces[index] = ns  # before it exists: close() removes a half-made one too
        ip("netns", "add", ns)
        ip("link", "add", outer, "type", "veth", "peer", "name", inner)
        ip("link", "set", inner, "netns", ns)
        ip("link", "set", outer, "master", self.bridge, "up")
        ip("link", "set", "lo", "up", ns=ns)
        ip("link", "set", inner, "name", "eth0", ns=ns)
        ip("addr", "add", f"{self.address(index)}/24", "dev", "eth0", ns=ns)
        ip("link", "set", "eth0", "up", ns=ns)
        return ns

    def _unroutable(self):
        # An address on the subnet no node has: packets routed to it wait for
        # an ARP reply that never comes, and are dropped.
        return f"10.213.{self.subnet}.254"

    def cut(self, a, b):
        """Drops every packet between nodes a and b, both ways, silently."""
        key = frozenset((a, b))
        if a == b or key in self.cuts:
            return
        for x, y in ((a, b), (b, a)):
            ip("route", "replace", f"{self.address(y)}/32", "via", self._unroutable(), ns=self.namespace(x))
        self.cuts.add(key)

    def heal(self, a, b):
        key = frozenset((a, b))
        if key not in self.cuts:
            return
        for x, y in ((a, b), (b, a)):
            ip("route", "del", f"{self.address(y)}/32", ns=self.namespace(x), check=False)
            # Forget the failed neighbour entry, so the first packet after the heal goes out at once.
            ip("neigh", "flush", "dev", "eth0", ns=self.namespace(x), check=False)
        self.cuts.discard(key)

    def isolate(self, node, n):
        """Cuts `node` from every other of nodes 0..n-1 (its clients still reach it)."""
        for other in range(n):
            if other != node:
                self.cut(node, other)

    def split(self, side_a, side_b):
        """Every node of side_a cut from every node of side_b."""
        for a in side_a:
            for b in side_b:
                self.cut(a, b)

    def heal_all(self):
        for key in list(self.cuts):
            self.heal(*sorted(key))

    def describe_cuts(self):
        return ", ".join(f"n{a}|n{b}" for a, b in sorted(tuple(sorted(k)) for k in self.cuts)) or "none"

    def close(self):
        for index, ns in list(self.namespaces.items()):
            _kill_namespace_processes(ns)
            # The pair goes with either end; deleting ours does not wait for the kernel to
            # tear the namespace down (which a socket can delay).
            ip("link", "del", f"{self.prefix}v{index}", check=False)
            ip("netns", "del", ns, check=False)
        self.namespaces.clear()
        ip("link", "del", self.bridge, check=False)
        _NETWORKS.discard(self)


class NetnsNode(ch.Node):
    """A cluster_harness.Node whose process runs in its own namespace at its own address."""

    def __init__(self, binary, name, index, net, options, profile):
        super().__init__(binary, name, CLUSTER_PORT, options)
        self.index = index
        self.net = net
        self.ip = net.address(index)
        self.profile = profile

    def address(self):
        return (self.ip, self.port)

    def cluster_address(self):
        return f"{self.ip}:{self.cport}"

    def start(self, join, start_timeout):
        args = ["-l", self.ip, "--cluster-port", str(self.cport), "--name", self.name,
                "--cluster-profile", self.profile, *self.options]
        if join:
            args += ["--join", ",".join(join)]
        self.server = h.Server(self.binary, *args, start_timeout=start_timeout,
                               wrapper=["ip", "netns", "exec", self.net.namespace(self.index)], host=self.ip)

    def stats(self, timeout=3.0):
        return ch.cluster_stats(self.port, timeout, host=self.ip)


class NetnsCluster(ch.Cluster):
    """cluster_harness.Cluster with every node in a namespace of its own (.net: the Network)."""

    def __init__(self, binary, n, profile="local", **kwargs):
        self.net = Network()
        self.profile = profile
        try:
            super().__init__(binary, n, **kwargs)
        except BaseException:
            self.net.close()
            raise

    def close(self):
        super().close()
        self.net.close()

    def size(self):
        return len(self.nodes)

    def add(self):
        index = len(self.nodes)
        node = NetnsNode(self.binary, f"n{index}", index, self.net, self.options, self.profile)
        node.start(self._join_list(), self.start_timeout)
        self.nodes.append(node)
        return node


# A schedule of faults, drawn from a seed: the same seed, the same faults in the same order.
class FaultSchedule:
    """Draws faults for an n-node cluster. safe=True keeps to at most one node lost at a time
    (one node isolated, or one killed and restarted, or one link cut); safe=False adds splits
    of the cluster into two sides."""

    def __init__(self, seed, n, safe=True):
        self.rng = random.Random(seed)
        self.n = n
        self.kinds = ["isolate", "kill", "cut", "flap"] + ([] if safe else ["split", "minority"])

    def next(self):
        kind = self.rng.choice(self.kinds)
        node = self.rng.randrange(self.n)
        other = self.rng.choice([i for i in range(self.n) if i != node])
        nodes = list(range(self.n))
        self.rng.shuffle(nodes)
        half = self.n // 2
        return {"kind": kind, "node": node, "other": other,
                "side_a": sorted(nodes[:half]), "side_b": sorted(nodes[half:]),
                "minority": sorted(nodes[:max(1, (self.n - 1) // 2)]),
                "hold_s": round(self.rng.uniform(2.0, 6.0), 2),
                "flaps": self.rng.randrange(3, 7), "flap_s": round(self.rng.uniform(0.3, 1.5), 2)}


def _close_networks():
    for net in list(_NETWORKS):
        net.close()


# cluster_harness stops every cluster at exit and on SIGTERM/SIGINT/SIGHUP, then
# runs this: the namespaces go only once no node is left in them.
ch.add_teardown(_close_networks)
