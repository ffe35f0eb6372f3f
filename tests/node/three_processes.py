#!/usr/bin/python3
"""Three dhtkit-node processes on 127.0.0.1: a put through one node is read
through another, one node leaves, one is killed, and the data is still read.

    /usr/bin/python3 tests/node/three_processes.py --node build/examples/dhtkit-node

1. n1 founds a cluster on 127.0.0.1 port 0; n2 and n3 join through n1's packet
   endpoint (taken from n1's "joined" line);
2. every node sees 3 live members and all agree on the placement (stats);
3. `put k v` through n1 is stored on at least 2 replicas; `get k` through n2
   returns v;
4. n3 leaves (`leave`) and exits 0; n2 is killed with SIGKILL;
5. once n1 no longer counts n2 among its members, `get k 1` through n1 returns
   v (one live node answers R=1), and `get k` (R=2) fails with quorum not
   reached, 1 of 2 replies;
6. n1's stdin is closed: it exits 0.

Every wait has a deadline and ends as soon as what it waits for happened; the
nodes' stdout and stderr are read by threads, and a poll of `members` or
`stats` is retried when a node reports an event on stderr (or every 100 ms).
Every process is killed in a finally. Exit status 0 on success, 1 with a
message (and the tail of each node's stderr) on any failure.
"""

import argparse
import json
import os
import queue
import subprocess
import sys
import threading
import time

KEY, VALUE = "k", "v"


class Failure(Exception):
    pass


def check(cond, message):
    if not cond:
        raise Failure(message)


def log(message):
    print(message, flush=True)


class Node:
    """A dhtkit-node process: commands on stdin, one JSON reply per line on stdout."""

    def __init__(self, binary, name, seeds=()):
        self.name = name
        argv = [binary, "--name", name, "--listen", "127.0.0.1:0"]
        for s in seeds:
            argv += ["--seed", s]
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self.lines = queue.Queue()
        self.events = []  # stderr lines (JSON events, or messages)
        self.changed = threading.Condition()
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_stdout(self):
        for raw in self.proc.stdout:
            self.lines.put(raw.decode("utf-8", "replace").rstrip("\n"))
        self.lines.put(None)

    def _read_stderr(self):
        for raw in self.proc.stderr:
            with self.changed:
                self.events.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self.changed.notify_all()

    def read_json(self, timeout, what):
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise Failure(f"{self.name}: no reply to {what!r} within {timeout} s")
        check(line is not None, f"{self.name}: exited (status {self.proc.poll()}) before answering {what!r}")
        try:
            return json.loads(line)
        except ValueError:
            raise Failure(f"{self.name}: not a JSON line in answer to {what!r}: {line!r}")

    def wait_joined(self, timeout=15):
        j = self.read_json(timeout, "joined")
        check(j.get("event") == "joined" and j.get("name") == self.name, f"{self.name}: first line {j}")
        self.packet = j["packet"]
        log(f"  {self.name} joined: id {j['id']}, packet {j['packet']}, stream {j['stream']}")
        return j

    def send(self, command):
        self.proc.stdin.write((command + "\n").encode())
        self.proc.stdin.flush()

    def cmd(self, command, timeout=10):
        self.send(command)
        return self.read_json(timeout, command)

    def timed(self, command, timeout=10):
        """cmd(), logging the reply and how long it took."""
        start = time.monotonic()
        r = self.cmd(command, timeout)
        log(f"  {r} ({(time.monotonic() - start) * 1000:.0f} ms)")
        return r

    def event_count(self):
        with self.changed:
            return len(self.events)

    def wait_event_after(self, seen, timeout):
        """Returns when the node wrote a stderr line past `seen`, or after `timeout`."""
        with self.changed:
            self.changed.wait_for(lambda: len(self.events) > seen, timeout)

    def wait_exit(self, timeout):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise Failure(f"{self.name}: still running {timeout} s after it was told to exit")

    def stderr_tail(self, n=15):
        with self.changed:
            return self.events[-n:]

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def wait_until(nodes, command, ok, bound, what):
    """Sends `command` to every node until ok(replies) holds, within `bound` seconds."""
    deadline = time.monotonic() + bound
    while True:
        seen = [n.event_count() for n in nodes]
        replies = [n.cmd(command) for n in nodes]
        if ok(replies):
            return replies
        left = deadline - time.monotonic()
        check(left > 0, f"{what} not reached within {bound} s; last replies: {replies}")
        nodes[0].wait_event_after(seen[0], min(0.1, left))


def run(binary):
    nodes = []
    try:
        log("a bad flag is refused with exit status 2")
        bad = subprocess.run([binary, "--name", "x", "--listen", "127.0.0.1:0", "--no-such-flag"],
                             capture_output=True, timeout=10)
        check(bad.returncode == 2, f"--no-such-flag: exit {bad.returncode}, want 2; stderr {bad.stderr!r}")

        log("starting n1 (founds the cluster), then n2 and n3 seeded with n1")
        n1 = Node(binary, "n1")
        nodes.append(n1)
        n1.wait_joined()
        n2 = Node(binary, "n2", [n1.packet])
        n3 = Node(binary, "n3", [n1.packet])
        nodes += [n2, n3]
        n2.wait_joined()
        n3.wait_joined()

        log("waiting until every node sees 3 members, all agree on the placement and no handoff is left")
        wait_until(nodes, "members",
                   lambda rs: all(r.get("count") == 3 and r.get("alive") == 3 for r in rs), 15,
                   "3 members on every node")
        # A joiner's gained ranges serve reads only once their handoff is
        # done; until then reads go to the previous holders, and growing from
        # one node there is only one: an R=2 read through a joiner would see
        # 1 of 2. This test is about the settled cluster, so it waits.
        stats = wait_until(nodes, "stats",
                           lambda rs: len({r["placement_fingerprint"] for r in rs}) == 1
                           and all(r["members_alive"] == 3 and r["ranges_pending"] == 0
                                   and r["ranges_outbound"] == 0 for r in rs),
                           15, "one placement and no handoff in progress on every node")
        log(f"  placement fingerprint {stats[0]['placement_fingerprint']} version "
            f"{[r['placement_version'] for r in stats]}")
        r = n1.cmd("bogus")
        check(r == {"ok": False, "error": "unknown command"}, f"unknown command: {r}")

        log(f"put {KEY} {VALUE} through n1")
        r = n1.timed(f"put {KEY} {VALUE}")
        check(r.get("op") == "put" and r.get("ok") is True and r.get("acks", 0) >= 2 and r.get("required") == 2,
              f"put through n1: {r}")

        log(f"get {KEY} through n2")
        r = n2.timed(f"get {KEY}")
        check(r.get("ok") is True and r.get("values") == [VALUE], f"get through n2: {r}")

        log("n3 leaves gracefully")
        r = n3.timed("leave", timeout=20)
        check(r == {"op": "leave", "ok": True}, f"leave of n3: {r}")
        status = n3.wait_exit(10)
        check(status == 0, f"n3 exited {status} after leave, want 0")

        log("kill -9 n2")
        n2.kill()

        log("waiting until n1 sees n2 dead (n1 alone in its members)")
        start = time.monotonic()
        r = wait_until([n1], "members", lambda rs: rs[0].get("count") == 1, 10, "n1 alone")[0]
        check([m["name"] for m in r["members"]] == ["n1"], f"n1's members: {r}")
        log(f"  after {time.monotonic() - start:.1f} s: {r}")

        log(f"get {KEY} 1 through n1 (R=1: the one live replica answers)")
        r = n1.timed(f"get {KEY} 1")
        check(r.get("ok") is True and r.get("values") == [VALUE] and r.get("required") == 1,
              f"get {KEY} 1 through n1: {r}")

        log(f"get {KEY} through n1 (R=2: one live replica cannot make a quorum)")
        r = n1.timed(f"get {KEY}")
        check(r.get("ok") is False and r.get("error") == "quorum not reached" and r.get("replies") == 1
              and r.get("required") == 2, f"get {KEY} (R=2) through n1: {r}")

        log("closing n1's stdin: it exits 0")
        n1.proc.stdin.close()
        status = n1.wait_exit(10)
        check(status == 0, f"n1 exited {status} at end of input, want 0")
        log("PASS")
        return 0
    except Failure as e:
        print(f"FAIL: {e}", flush=True)
        for n in nodes:
            print(f"--- {n.name} (exit status {n.proc.poll()}), last stderr lines:")
            for line in n.stderr_tail():
                print(f"    {line}")
        return 1
    finally:
        for n in nodes:
            n.kill()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--node", required=True, help="the dhtkit-node binary")
    args = parser.parse_args()
    if not os.access(args.node, os.X_OK):
        print(f"FAIL: {args.node} is not an executable")
        return 1
    return run(args.node)


if __name__ == "__main__":
    sys.exit(main())
