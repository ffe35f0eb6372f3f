#!/usr/bin/python3
"""A three-node dhtkit-cache cluster on this machine, driven by a real memcached
client (pymemcache). The README's main job: `bash .ci/demo` builds dhtkit-cache
and runs this.

    /usr/bin/python3 examples/cache/cluster_demo.py [--server build/release/examples/cache/dhtkit-cache]

It starts nodes a, b and c on free loopback ports, writes through one node,
reads through another, kills a node with SIGKILL, reads every key through the
survivors, restarts the killed node and waits until it is refilled, shows
`stats cluster`, and stops the cluster with SIGTERM (a graceful leave).

Every claim it prints is checked: if a key is not read back, a node does not
rejoin or does not exit cleanly, it says so and exits 1. Every process it
starts is stopped on every way out (an error, Ctrl-C, SIGTERM), and the nodes
get SIGKILL from the kernel if this script itself dies.
"""

import argparse
import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time

try:
    from pymemcache.client.base import Client
    from pymemcache.exceptions import MemcacheError
except ImportError:
    sys.exit("pymemcache is missing (Debian: python3-pymemcache); `bash .ci/demo` installs it")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_SERVER = os.path.join(ROOT, "build", "release", "examples", "cache", "dhtkit-cache")
HOST = "127.0.0.1"
START = time.monotonic()


class DemoFailed(Exception):
    """Something the walkthrough claims did not happen."""


def say(text=""):
    print(text, flush=True)


def step(title):
    say()
    say(f"== {title}  [{time.monotonic() - START:4.1f} s]")


def free_port():
    """A port free for both TCP and UDP: a node's cluster port carries gossip
    (UDP) and data (TCP) on the same number."""
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
    raise DemoFailed("no free port")


def die_with_parent():
    # A node outlives a SIGKILLed script otherwise: the kernel kills it instead.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Node:
    """One dhtkit-cache process of the cluster."""

    def __init__(self, binary, name, join=None):
        self.binary = binary
        self.name = name
        self.port = free_port()
        self.cport = free_port()
        self.join = join
        self.proc = None
        self.log = []

    def start(self, timeout=15.0):
        args = [self.binary, "-p", str(self.port), "-l", HOST, "--cluster-port", str(self.cport),
                "--name", self.name, "--cluster-profile", "local"]
        if self.join:
            args += ["--join", ",".join(f"{HOST}:{n.cport}" for n in self.join)]
        self.command = " ".join(args[1:])
        self.log = []
        listening = threading.Event()
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, preexec_fn=die_with_parent)

        def drain(proc=self.proc, log=self.log):
            # The client port opens once the node has joined; the node says so on stderr.
            for raw in proc.stderr:
                line = raw.decode(errors="replace").rstrip()
                log.append(line)
                if "listening on" in line:
                    listening.set()
            listening.set()

        threading.Thread(target=drain, daemon=True).start()
        if not listening.wait(timeout) or self.proc.poll() is not None:
            status = self.proc.poll()
            why = f"exited at start (status {status})" if status is not None else \
                f"did not open its client port within {timeout:.0f} s"
            raise DemoFailed(f"node {self.name} {why}; its stderr:\n  " + "\n  ".join(self.log[-10:]))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def client(self):
        return Client((HOST, self.port), connect_timeout=2, timeout=5)

    def stats_cluster(self):
        c = self.client()
        try:
            raw = c.stats("cluster")
        finally:
            c.close()
        return {k.decode(): (v.decode() if isinstance(v, bytes) else v) for k, v in raw.items()}

    def kill(self):
        self.proc.kill()
        self.proc.wait()

    def stop(self, timeout=15.0):
        """SIGTERM (graceful leave); SIGKILL if it takes longer than timeout. Returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return "killed after %.0f s" % timeout
        return self.proc.returncode


def wait_until(what, predicate, timeout, interval=0.1):
    """Polls predicate() until it returns something true; its last error or value says why not."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except (MemcacheError, OSError) as e:
            last = f"{type(e).__name__}: {e}"
        if time.monotonic() > deadline:
            raise DemoFailed(f"{what}: not within {timeout:.0f} s" + (f" (last error: {last})" if last else ""))
        time.sleep(interval)


def all_see(nodes, count):
    """True once every node counts `count` live members and is joined."""
    for n in nodes:
        s = n.stats_cluster()
        if int(s.get("cluster_members_alive", -1)) != count or s.get("cluster_state") != "joined":
            return False
    return True


def members(stats):
    return {k[len("cluster_member_"):]: v for k, v in stats.items() if k.startswith("cluster_member_")}


def read_all(node, expected):
    """Gets every key through `node`, one get per key as most applications do.
    Returns (keys read back correctly, {key: what went wrong})."""
    c = node.client()
    ok, bad = 0, {}
    try:
        for key, value in expected.items():
            try:
                got = c.get(key)
            except (MemcacheError, OSError) as e:
                bad[key] = f"{type(e).__name__}: {e}"
                c.close()  # pymemcache reconnects on the next request
                continue
            if got is None:
                bad[key] = "miss"
            elif got.decode() != value:
                bad[key] = f"wrong value {got[:20]!r}"
            else:
                ok += 1
    finally:
        c.close()
    return ok, bad


def show_stats(nodes):
    say(f"   {'node':<5}{'state':<9}{'members (as this node sees them)':<36}{'ring':>6}"
        f"{'handoffs':>10}{'hints':>7}{'forwarded':>11}{'conflicts':>11}")
    for n in nodes:
        s = n.stats_cluster()
        view = " ".join(f"{m}={state}" for m, state in sorted(members(s).items()))
        say(f"   {n.name:<5}{s.get('cluster_state', '?'):<9}{view:<36}{s.get('cluster_ring_share', '?'):>6}"
            f"{s.get('cluster_handoffs_in_progress', '?'):>10}{s.get('cluster_hints_held', '?'):>7}"
            f"{s.get('cluster_requests_forwarded', '?'):>11}{s.get('cluster_conflicts_resolved', '?'):>11}")


def demo(binary):
    a = Node(binary, "a")
    b = Node(binary, "b", join=[a])
    c = Node(binary, "c", join=[a, b])
    nodes = [a, b, c]
    try:
        run(nodes)
    finally:
        for n in nodes:  # on every way out; a node already stopped is left alone
            if n.alive():
                n.proc.kill()
                n.proc.wait()


def run(nodes):
    a, b, c = nodes

    step("1. Start three nodes on this machine")
    say("   Each node is one dhtkit-cache process: a memcached port for clients and a")
    say("   cluster port where nodes gossip about who is alive and copy data.")
    for n in nodes:
        n.start()
        joined = f", joins through {', '.join(j.name for j in n.join)}" if n.join else ", starts a new cluster"
        say(f"   node {n.name}: clients on {HOST}:{n.port}, cluster port {n.cport}{joined}")
    say("   e.g. node c was started as:")
    say(f"     dhtkit-cache {c.command}")
    wait_until("all three nodes seeing each other", lambda: all_see(nodes, 3), 15)
    say("   Every node now lists all three as alive (`stats cluster` on each).")
    s = a.stats_cluster()
    say(f"   Replication: each key is stored on N={s.get('cluster_replicas')} nodes; a write is "
        f"acknowledged after W={s.get('cluster_write_quorum')},")
    say(f"   a read asks R={s.get('cluster_read_quorum')}. With three nodes and N=3, every node holds every key.")

    step("2. Write through node a, read through node b")
    expected = {f"user:{i}": f"{name} (written through a)" for i, name in
                enumerate(["ada", "alan", "barbara", "dennis", "edsger", "grace", "john", "ken",
                           "leslie", "margaret", "niklaus", "tony"], 1)}
    ca = a.client()
    try:
        for key, value in expected.items():
            if not ca.set(key, value, noreply=False):
                raise DemoFailed(f"set {key} through a was not stored")
    finally:
        ca.close()
    say(f"   pymemcache set {len(expected)} keys (user:1 .. user:{len(expected)}) through a: all STORED.")
    ok, bad = read_all(b, expected)
    if bad:
        raise DemoFailed(f"through b, {len(bad)} keys were not read back: {bad}")
    say(f"   Through b, a different node, all {ok} keys read back with the values written:")
    say("   any node serves any key; the client does not need to know where keys live.")

    step("3. Kill node c with SIGKILL (a crash: no goodbye, its memory is gone)")
    c.kill()
    killed_at = time.monotonic()
    say(f"   kill -9 {c.proc.pid}: node c is gone.")
    lost = {}
    for n in (a, b):
        ok, bad = read_all(n, expected)
        lost.update({f"{k} via {n.name}": v for k, v in bad.items()})
        say(f"   Through {n.name}: {ok} of {len(expected)} keys read back "
            f"({time.monotonic() - killed_at:.1f} s after the kill).")
    if lost:
        # The contract during a failover: a request either succeeds or fails
        # with an error, never a wrong value. A miss or a wrong value is a bug.
        wrong = {k: v for k, v in lost.items() if not v.startswith("Memcache")}
        if wrong:
            raise DemoFailed(f"reads through the survivors returned a miss or a wrong value: {wrong}")
        say(f"   {len(lost)} reads answered an error while c's failure was not yet known; after the")
        say("   failure detector marks c, they are retried:")
        wait_until("a and b marking c as not alive",
                   lambda: all(members(n.stats_cluster()).get("c") in ("suspect", "dead") for n in (a, b)), 10)
        for n in (a, b):
            ok, bad = read_all(n, expected)
            if bad:
                raise DemoFailed(f"through {n.name}, {len(bad)} keys were still not read back: {bad}")
            say(f"   Through {n.name}: all {ok} keys read back.")
    say("   No key was lost: every key was on two other nodes as well.")
    view = wait_until("a and b noticing that c is gone",
                      lambda: all(members(n.stats_cluster()).get("c") in ("suspect", "dead") for n in (a, b))
                      and members(a.stats_cluster()).get("c"), 10)
    say(f"   {time.monotonic() - killed_at:.1f} s after the kill, a's failure detector lists c as {view}.")

    extra = {f"order:{i}": f"order {i} (written while c was down)" for i in range(1, 4)}
    ca = a.client()
    try:
        for key, value in extra.items():
            if not ca.set(key, value, noreply=False):
                raise DemoFailed(f"set {key} through a while c was down was not stored")
    finally:
        ca.close()
    expected.update(extra)
    say(f"   Writes still work with c down: {len(extra)} more keys (order:1 .. order:{len(extra)}) STORED through a,")
    say("   acknowledged by a and b (W=2 of N=3). Their third copies are c's to catch up on.")

    step("4. Restart node c with the same name (empty memory)")
    restarted_at = time.monotonic()
    c.start()
    say(f"   dhtkit-cache {c.command}")
    wait_until("c rejoining (all three alive on every node)", lambda: all_see(nodes, 3), 15)
    say(f"   {time.monotonic() - restarted_at:.1f} s later every node lists a, b and c as alive again.")

    def refilled():
        ok, bad = read_all(c, expected)
        return not bad and ok

    ok = wait_until("every key readable through the restarted c", refilled, 15, interval=0.25)
    wait_until("handoffs to c finishing",
               lambda: all(int(n.stats_cluster().get("cluster_handoffs_in_progress", 1)) == 0 for n in nodes), 15)
    cc = c.client()
    try:
        items = cc.stats().get(b"curr_items")
    finally:
        cc.close()
    say(f"   Through c all {ok} keys read back, including the {len(extra)} written while it was down;")
    say(f"   c holds {items} items of its own again (curr_items): the others copied its share")
    say(f"   back to it ({time.monotonic() - restarted_at:.1f} s after the restart).")

    step("5. `stats cluster` on each node")
    show_stats(nodes)
    say("   ring: this node's share of the key space; handoffs: data transfers still running;")
    say("   hints: writes kept for a node that was down; forwarded: requests this node")
    say("   sent on to other nodes; conflicts: concurrent versions it resolved.")
    say("   Any memcached client can ask for the same: printf 'stats cluster\\r\\n' | nc 127.0.0.1 PORT")

    step("6. Stop the cluster with SIGTERM, one node after another")
    say("   SIGTERM asks a node to leave gracefully: it hands its share of the keys to the")
    say("   nodes that stay, tells them it is leaving, and exits 0.")
    staying = [a, b, c]
    for n in (c, b, a):
        stopping = time.monotonic()
        status = n.stop()
        left = f"exit {status}" if isinstance(status, int) else status
        if status != 0:
            raise DemoFailed(f"node {n.name} did not leave cleanly ({left}); its last stderr lines:\n  "
                             + "\n  ".join(n.log[-10:]))
        staying.remove(n)
        if staying:
            wait_until(f"{', '.join(m.name for m in staying)} listing {n.name} as left",
                       lambda: all(members(m.stats_cluster()).get(n.name) in ("left", None) for m in staying), 10)
            say(f"   node {n.name}: {left} after {time.monotonic() - stopping:.1f} s; "
                f"{' and '.join(m.name for m in staying)} {'list' if len(staying) > 1 else 'lists'} it as left.")
        else:
            say(f"   node {n.name}, the last one: {left} after {time.monotonic() - stopping:.1f} s.")
    say()
    say(f"Done in {time.monotonic() - START:.1f} s. Every key written was read back through every")
    say("route above. To run your own cluster, see README: 'A cluster of dhtkit-cache nodes'.")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", default=DEFAULT_SERVER, help="the dhtkit-cache binary")
    args = parser.parse_args()
    if not os.access(args.server, os.X_OK):
        sys.exit(f"{args.server}: not found; build it first (bash .ci/demo builds it)")

    def on_term(signum, _frame):
        raise SystemExit(128 + signum)  # unwinds through demo()'s cleanup

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)
    # Ctrl-C raises KeyboardInterrupt even when started from a shell that ignores SIGINT.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        demo(args.server)
    except DemoFailed as e:
        say()
        say(f"FAILED: {e}")
        return 1
    except KeyboardInterrupt:
        say()
        say("Interrupted: every node started was stopped.")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
