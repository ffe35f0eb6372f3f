#!/usr/bin/python3
"""A dhtkit-cache cluster whose gossip is sealed with --gossip-keyring.

Three nodes on loopback (cluster_harness.py) share one keyring file. Then:

  stranger   a fourth node with another key, and a fifth with no keyring at
             all, try to join through the three: both fail, the three keep
             seeing three members, and their datagrams are counted
             (cluster_gossip_unauthenticated);
  rotation   while a client writes through every node, the key is rotated
             as README says, each step written to the file and applied with
             SIGHUP to every node, the next step only once every node shows
             the last one in `stats cluster`: add the new key second, make it
             first, remove the old one; then a file that no longer parses is
             refused on SIGHUP and the keys in use stay.

Checked: every acknowledged write reads back its value after the rotation;
at every poll during it each node sees all three members (alive or, for an
instant, suspect; never dead); no datagram failed to open during the
rotation (no node ever sealed with a key another did not hold).

  /usr/bin/python3 tests/cache/cluster_keyring_test.py --server .../dhtkit-cache
"""

import base64
import hashlib
import os
import signal
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cache_harness as h  # noqa: E402
import cluster_harness as ch  # noqa: E402

Client, _ = ch.pymemcache_or_skip()

CLIENT_TIMEOUT_S = 5.0
STEP_TIMEOUT_S = 10.0


def fingerprint(key):
    """What dhtkit::keyring::fingerprint prints: the first 4 bytes of the key's SHA-256, in hex."""
    return hashlib.sha256(key).digest()[:4].hex()


def write_keys(path, keys):
    """Replaces the keyring file at once (a rename), so a SIGHUP never reads half a file."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("# dhtkit-cache gossip keyring: the first key seals, every key opens\n")
        for k in keys:
            f.write(base64.b64encode(k).decode() + "\n")
    os.replace(tmp, path)


def total(snap, stat):
    return sum(int(s.get(stat, 0)) for s in snap.values() if "error" not in s)


class Writer(threading.Thread):
    """Writes r:<i> = v<i> through the nodes in turn, paced; records what was acknowledged."""

    def __init__(self, cluster):
        super().__init__(daemon=True)
        self.cluster = cluster
        self.stop = threading.Event()
        self.acked = {}
        self.failures = []
        self.clients = {}

    def client(self, node):
        if node.name not in self.clients:
            self.clients[node.name] = Client(node.address(), connect_timeout=CLIENT_TIMEOUT_S,
                                             timeout=CLIENT_TIMEOUT_S)
        return self.clients[node.name]

    def run(self):
        i = 0
        while not self.stop.is_set():
            node = self.cluster.nodes[i % 3]
            key, value = f"r:{i}", f"v{i}".encode()
            try:
                if self.client(node).set(key, value, noreply=False):
                    self.acked[key] = value
                else:
                    self.failures.append((key, node.name, "NOT_STORED"))
            except Exception as e:  # noqa: BLE001 - every failure is recorded and reported
                self.failures.append((key, node.name, repr(e)))
                self.clients.pop(node.name, None)
            i += 1
            self.stop.wait(0.01)


class Monitor(threading.Thread):
    """Polls every node's stats until stopped; keeps each poll that did not show three members."""

    def __init__(self, cluster):
        super().__init__(daemon=True)
        self.cluster = cluster
        self.stop = threading.Event()
        self.polls = 0
        self.bad = []
        self.suspects = 0

    def run(self):
        while not self.stop.is_set():
            snap = self.cluster.snapshot()
            self.polls += 1
            for name, s in snap.items():
                if "error" in s:
                    self.bad.append((name, s["error"]))
                    continue
                alive, suspect = int(s["cluster_members_alive"]), int(s["cluster_members_suspect"])
                self.suspects += suspect
                if alive + suspect != 3 or int(s["cluster_members_dead"]) != 0:
                    self.bad.append((name, ch.describe({name: s})))
            self.stop.wait(0.1)


def settled_counts(cluster, stat, c, quiet_s=1.5, timeout=10.0):
    """{node: stat} once no node's value changed for quiet_s (two snapshot refreshes and more)."""
    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        now = {name: int(s[stat]) for name, s in cluster.snapshot().items() if "error" not in s}
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return now
        time.sleep(0.1)
    c.check(False, f"{stat} did not settle in {timeout} s: {last}")
    return last


def try_stranger(binary, cluster, name, keyring_args, c, what):
    """Starts a node with `keyring_args` joining the three; it must fail to join."""
    options = [o for o in cluster.options]
    i = options.index("--gossip-keyring")
    del options[i:i + 2]
    node = ch.Node(binary, name, ch.free_cluster_port(), options + keyring_args)
    started = False
    try:
        node.start(cluster._join_list(), start_timeout=20.0)
        started = True
    except RuntimeError as e:
        c.check("cannot join the cluster" in str(e), f"{what}: exits saying it cannot join: {e}")
    finally:
        node.close()
    c.check(not started, f"{what}: must not join a keyed cluster")


def main():
    args = h.parse_args(__doc__.splitlines()[0])
    c = h.Checks()
    k1, k2, k3 = os.urandom(32), os.urandom(32), os.urandom(32)
    with tempfile.TemporaryDirectory(prefix="dhtkit-keyring-") as tmp:
        ring = os.path.join(tmp, "gossip.keys")
        write_keys(ring, [k1])
        stranger_ring = os.path.join(tmp, "stranger.keys")
        write_keys(stranger_ring, [k3])
        with ch.Cluster(args.server, 3, extra=["--gossip-keyring", ring]) as cluster:
            took = cluster.wait_members(3)
            print(f"3 keyed nodes up, membership spread in {took:.2f} s", flush=True)
            snap = cluster.snapshot()
            c.check(all(s.get("cluster_gossip_primary") == fingerprint(k1) for s in snap.values()),
                    f"every node seals with the file's key {fingerprint(k1)}: {ch.describe(snap)}")

            # ---- strangers ----------------------------------------------------------------
            t = time.monotonic()
            try_stranger(args.server, cluster, "x-wrong-key", ["--gossip-keyring", stranger_ring], c,
                         "a node with another key")
            try_stranger(args.server, cluster, "x-plaintext", [], c, "a node without a keyring")
            print(f"two strangers refused in {time.monotonic() - t:.1f} s", flush=True)
            snap = cluster.snapshot()
            refused = total(snap, "cluster_gossip_unauthenticated")
            c.check(refused > 0, f"the strangers' datagrams are counted: {refused}")
            for name, s in snap.items():
                c.equal(s.get("cluster_members_alive"), "3", f"{name} still sees 3 members")
                c.check(not any(k.startswith("cluster_member_x-") for k in s),
                        f"{name} never heard of a stranger")

            # ---- rotation under load -------------------------------------------------------
            # `stats cluster` is a snapshot taken twice a second, and a stranger's last datagrams
            # may still have been on their way: the baseline is the count once it stopped moving.
            baseline = settled_counts(cluster, "cluster_gossip_unauthenticated", c)
            writer, monitor = Writer(cluster), Monitor(cluster)
            writer.start()
            monitor.start()
            try:
                time.sleep(0.5)  # writes before the first step too
                steps = [([k1, k2], "install the new key (second line)"),
                         ([k2, k1], "make it primary (first line)"),
                         ([k2], "remove the old key")]
                for n, (keys, what) in enumerate(steps, start=1):
                    write_keys(ring, keys)
                    for node in cluster.nodes:
                        node.server.signal(signal.SIGHUP)
                    took = cluster.wait_until(
                        lambda s, n=n, keys=keys: (s.get("cluster_gossip_reloads") == str(n)
                                                   and s.get("cluster_gossip_keys") == str(len(keys))
                                                   and s.get("cluster_gossip_primary") == fingerprint(keys[0])),
                        f"reload {n} applied", STEP_TIMEOUT_S)
                    print(f"step {n}, {what}: every node in {took:.2f} s", flush=True)
                    time.sleep(0.5)  # gossip and writes under this step before the next
                # A file that no longer parses: refused, the keys in use stay.
                with open(ring, "w") as f:
                    f.write("not base64 at all\n")
                cluster.nodes[0].server.signal(signal.SIGHUP)
                m = cluster.nodes[0].server.wait_stderr(r"gossip keyring: SIGHUP: .*line 1: not a base64 key.*"
                                                        r"keeping 1 key, primary " + fingerprint(k2), 10.0)
                print(f"bad file refused: {m.group(0)}", flush=True)
                write_keys(ring, [k2])
                time.sleep(0.5)
            finally:
                writer.stop.set()
                monitor.stop.set()
                writer.join(timeout=CLIENT_TIMEOUT_S + 5)
                monitor.join(timeout=10)

            snap = cluster.snapshot()
            n0 = snap.get(cluster.nodes[0].name, {})
            c.equal(n0.get("cluster_gossip_reload_errors"), "1", "the bad file counted as a refused reload")
            c.equal(n0.get("cluster_gossip_primary"), fingerprint(k2), "the bad file changed nothing")
            for name, s in snap.items():
                c.equal(int(s["cluster_gossip_unauthenticated"]) - baseline[name], 0,
                        f"{name}: datagrams that failed to open during the rotation")
            c.check(monitor.polls >= 5, f"membership polled during the rotation ({monitor.polls} polls)")
            c.check(not monitor.bad, f"every poll saw 3 members, none dead: {monitor.bad[:5]}")
            c.check(len(writer.acked) >= 100, f"writes acknowledged during the rotation: {len(writer.acked)}")
            print(f"{len(writer.acked)} writes acknowledged, {len(writer.failures)} failed "
                  f"{writer.failures[:3]}, {monitor.polls} membership polls, {monitor.suspects} suspect sightings",
                  flush=True)

            # Every acknowledged write reads back, through every node.
            lost = []
            for node in cluster.nodes:
                reader = Client(node.address(), connect_timeout=CLIENT_TIMEOUT_S, timeout=CLIENT_TIMEOUT_S)
                keys = list(writer.acked)
                for start in range(0, len(keys), 100):
                    got = reader.get_many(keys[start:start + 100])
                    lost += [(node.name, k) for k in keys[start:start + 100] if got.get(k) != writer.acked[k]]
                reader.close()
            c.check(not lost, f"acknowledged writes that do not read back: {len(lost)} {lost[:5]}")

            # The retired key no longer gets in.
            old_ring = os.path.join(tmp, "old.keys")
            write_keys(old_ring, [k1])
            try_stranger(args.server, cluster, "x-old-key", ["--gossip-keyring", old_ring], c,
                         "a node with the retired key")
            cluster.wait_members(3, timeout=5.0)
    return c.finish("cluster_keyring")


if __name__ == "__main__":
    sys.exit(main())
