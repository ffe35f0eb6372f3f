#!/usr/bin/python3
"""dhtkit-cache with -t 4 and eight client threads at once, alone and as a
three-node cluster: the workload that makes its threads meet (the store's
shards, the counters, stats, connections handed from the acceptor to the
workers, cluster replies posted back to a connection's worker).

Each thread works on keys of its own (set, get, append, touch, gat, mg, ms,
delete: every reply checked) and on shared keys: incr on one counter and a
gets/cas retry loop on another, so the final values must equal the number of
increments exactly; meanwhile one thread asks for stats. Then every server is
stopped with SIGTERM and must exit 0.

CI's ThreadSanitizer stage runs it against a -fsanitize=thread build with
TSAN_OPTIONS=halt_on_error=1: a race aborts the server, which fails the
replies and the exit status.

  /usr/bin/python3 tests/cache/threads_test.py --server build/.../dhtkit-cache [--cluster]
"""

import argparse
import os
import socket
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cache_harness as h  # noqa: E402

THREADS = 8
ROUNDS = 60  # per thread: each round is a dozen requests


def worker(index, address, c, lock, counters):
    failures = []

    def expect(sock, data, want, until=b"\r\n"):
        got = h.request(sock, data, until, timeout=30)
        if got != want:
            failures.append(f"thread {index}: {data[:60]!r}: got {got[:120]!r}, want {want[:120]!r}")

    try:
        with socket.create_connection(address, timeout=30) as s:
            for r in range(ROUNDS):
                key = b"t%d:%d" % (index, r % 7)
                value = b"%d-%d" % (index, r)
                expect(s, b"set %s 0 0 %d\r\n%s\r\n" % (key, len(value), value), b"STORED\r\n")
                expect(s, b"append %s 0 0 1\r\n!\r\n" % key, b"STORED\r\n")
                expect(s, b"get %s\r\n" % key, b"VALUE %s 0 %d\r\n%s!\r\nEND\r\n" % (key, len(value) + 1, value),
                       b"END\r\n")
                expect(s, b"touch %s 100\r\n" % key, b"TOUCHED\r\n")
                expect(s, b"gat 100 %s\r\n" % key, b"VALUE %s 0 %d\r\n%s!\r\nEND\r\n" % (key, len(value) + 1, value),
                       b"END\r\n")
                expect(s, b"ms %s 2 T0\r\nok\r\n" % key, b"HD\r\n")
                expect(s, b"mg %s v\r\n" % key, b"VA 2\r\nok\r\n", b"ok\r\n")
                expect(s, b"delete %s\r\n" % key, b"DELETED\r\n")
                # Shared: one counter, incremented by every thread.
                got = h.request(s, b"incr shared:counter 1\r\n", timeout=30)
                if not got.rstrip().isdigit():
                    failures.append(f"thread {index}: incr answered {got!r}")
                # Shared: a gets/cas loop on one value (a number), retried until it wins.
                for _ in range(1000):
                    reply = h.request(s, b"gets shared:cas\r\n", b"END\r\n", timeout=30)
                    head, _, rest = reply.partition(b"\r\n")
                    parts = head.split()
                    if len(parts) != 5:
                        failures.append(f"thread {index}: gets answered {reply!r}")
                        break
                    number = int(rest.split(b"\r\n")[0]) + 1
                    text = b"%d" % number
                    answer = h.request(s, b"cas shared:cas 0 0 %d %s\r\n%s\r\n" % (len(text), parts[4], text),
                                       timeout=30)
                    if answer == b"STORED\r\n":
                        break
                    if answer != b"EXISTS\r\n":
                        failures.append(f"thread {index}: cas answered {answer!r}")
                        break
                else:
                    failures.append(f"thread {index}: cas never won in 1000 tries")
                with lock:
                    counters["increments"] += 1
    except (OSError, ConnectionError) as e:
        failures.append(f"thread {index}: {e!r}")
    with lock:
        counters["failures"].extend(failures)


def run_load(c, addresses, what):
    """THREADS clients spread over `addresses` (one per client port), and a stats reader."""
    with socket.create_connection(addresses[0], timeout=30) as s:
        c.equal(h.request(s, b"set shared:counter 0 0 1\r\n0\r\n"), b"STORED\r\n", f"{what}: the counter")
        c.equal(h.request(s, b"set shared:cas 0 0 1\r\n0\r\n"), b"STORED\r\n", f"{what}: the cas value")
    lock = threading.Lock()
    counters = {"increments": 0, "failures": []}
    done = threading.Event()
    stats_failures = []

    def stats_reader():
        try:
            with socket.create_connection(addresses[-1], timeout=30) as s:
                while not done.is_set():
                    if "curr_connections" not in h.stats(s):
                        stats_failures.append("stats without curr_connections")
        except (OSError, ConnectionError) as e:
            stats_failures.append(repr(e))

    threads = [threading.Thread(target=worker, args=(i, addresses[i % len(addresses)], c, lock, counters))
               for i in range(THREADS)]
    reader = threading.Thread(target=stats_reader)
    reader.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    done.set()
    reader.join(30)
    c.equal(counters["failures"][:5], [], f"{what}: every reply as expected")
    c.equal(stats_failures, [], f"{what}: stats answered throughout")
    total = THREADS * ROUNDS
    c.equal(counters["increments"], total, f"{what}: rounds completed")
    with socket.create_connection(addresses[0], timeout=30) as s:
        c.equal(h.request(s, b"get shared:counter\r\n", b"END\r\n"),
                b"VALUE shared:counter 0 %d\r\n%d\r\nEND\r\n" % (len(str(total)), total),
                f"{what}: the shared counter counts every incr")
        c.equal(h.request(s, b"get shared:cas\r\n", b"END\r\n"),
                b"VALUE shared:cas 0 %d\r\n%d\r\nEND\r\n" % (len(str(total)), total),
                f"{what}: the cas loop lost no increment")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server", required=True, help="the dhtkit-cache binary (or memcached, single server only)")
    ap.add_argument("--cluster", action="store_true", help="three nodes with -t 4 instead of one server")
    args = ap.parse_args()
    c = h.Checks()
    if not args.cluster:
        with h.Server(args.server, "-t", "4") as server:
            run_load(c, [server.address()], "-t 4")
            c.equal(server.stop(), 0, "-t 4: exit status after SIGTERM")
        return c.finish("threads")
    if h.is_memcached(args.server):
        h.skip("--cluster runs dhtkit-cache nodes")
    import cluster_harness as ch

    with ch.Cluster(args.server, 3, threads=4) as cluster:
        cluster.wait_members(3)
        run_load(c, [node.address() for node in cluster.nodes], "cluster of 3, -t 4")
        for node in cluster.nodes:
            c.equal(node.terminate(30), 0, f"cluster: {node.name} exit status after SIGTERM")
    return c.finish("threads cluster")


if __name__ == "__main__":
    sys.exit(main())
