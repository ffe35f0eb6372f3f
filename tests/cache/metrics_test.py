"""dhtkit-cache's Prometheus endpoint (--metrics-port), scraped over HTTP:

- the exposition parses, and the names follow Prometheus' conventions
  (dhtkit_cache_ prefix, _total on every counter, base units in the name);
- the values move as a real client (pymemcache, several connections, so
  several worker threads) sends commands: per-command counters by outcome,
  latency histograms, hits and misses, items, bytes, connections;
- the common series (get hit and miss, set stored, errors, ...) are there at
  zero before any command, so rate() sees their first increment;
- a metrics port already taken is a clear error and exit status 1; an IPv6
  metrics address, which the web server underneath cannot bind, is refused
  at start with a message and exit status 64;
- without --metrics-port the server prints no metrics line.

  /usr/bin/python3 tests/cache/metrics_test.py --server build/.../dhtkit-cache
"""

import re
import socket
import subprocess
import sys
import urllib.request

import cache_harness as h

METRICS_LINE = r"metrics on (http://\S+/metrics)"
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$')
LABEL = re.compile(r'(\w+)="([^"]*)"')


def scrape(url):
    with urllib.request.urlopen(url, timeout=10) as reply:
        content_type = reply.headers.get("Content-Type", "")
        text = reply.read().decode()
    types = {}
    samples = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            types[name] = kind
        elif line and not line.startswith("#"):
            m = SAMPLE.match(line)
            if not m:
                raise ValueError(f"unparsable exposition line: {line!r}")
            labels = tuple(sorted(LABEL.findall(m.group(2) or "")))
            samples[(m.group(1), labels)] = float(m.group(3))
    return content_type, types, samples


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def main():
    args = h.parse_args(__doc__)
    try:
        from pymemcache.client.base import Client
    except ImportError:
        h.skip("python3-pymemcache not installed")
    help_text = subprocess.run([args.server, "--help"], capture_output=True, text=True).stdout
    if "built without prometheus-cpp" in help_text:
        h.skip("this dhtkit-cache was built without prometheus-cpp (Debian: prometheus-cpp-dev)")

    c = h.Checks()
    with h.Server(args.server, "-t", "3", "--metrics-port", "0") as server:
        url = server.wait_stderr(METRICS_LINE).group(1)
        content_type, types, before = scrape(url)
        c.check(content_type.startswith("text/plain"), f"content type {content_type!r}")

        # Conventions, on every family of ours.
        ours = {n: k for n, k in types.items() if n.startswith("dhtkit_cache_")}
        c.check(len(ours) >= 15, f"{len(ours)} dhtkit_cache_ families: {sorted(ours)}")
        for name, kind in ours.items():
            if kind == "counter":
                c.check(name.endswith("_total"), f"counter {name} ends in _total")
            else:
                c.check(not name.endswith("_total"), f"{kind} {name} does not end in _total")
            c.check(not re.search(r"(micro|milli)seconds|_ms$|_us$|kilobytes|megabytes", name),
                    f"{name} is in base units")
        c.equal(types.get("dhtkit_cache_command_duration_seconds"), "histogram", "duration family type")
        c.equal(value(before, "dhtkit_cache_memory_limit_bytes"), 64.0 * 1024 * 1024, "memory limit gauge")
        for command, outcome in (("get", "hit"), ("get", "miss"), ("set", "stored"), ("other", "error")):
            c.check(("dhtkit_cache_commands_total", tuple(sorted({"command": command, "outcome": outcome}.items())))
                    in before, f"{command}/{outcome} exported at zero before any command")
        c.check(("dhtkit_cache_command_duration_seconds_count", (("command", "get"),)) in before,
                "the get histogram is exported before any get")

        # Several connections: the connections land on different workers, whose
        # counters the scrape must sum.
        clients = [Client(server.address(), timeout=10) for _ in range(3)]
        try:
            for i in range(60):
                c.check(clients[i % 3].set(f"key{i}", b"v" * 100, noreply=False), f"set key{i}")
            for i in range(60):
                c.equal(clients[(i + 1) % 3].get(f"key{i}"), b"v" * 100, f"get key{i}")
            for i in range(20):
                c.check(clients[i % 3].get(f"absent{i}") is None, f"absent{i} misses")
            c.check(clients[0].add("key0", b"x", noreply=False) is False, "add of an existing key is not stored")
            c.check(clients[1].delete("key1", noreply=False), "delete key1")
            c.check(clients[2].delete("absent", noreply=False) is False, "delete of an absent key")
        except Exception as e:  # noqa: BLE001 -- report it with the checks
            c.check(False, f"client session: {e!r}")
        _, _, during = scrape(url)
        c.check(value(during, "dhtkit_cache_connections") >= len(clients),
                f"connections gauge {value(during, 'dhtkit_cache_connections')} >= {len(clients)}")
        # CLIENT_ERROR: pymemcache raises it (and drops that connection).
        try:
            clients[0].incr("key0", 1, noreply=False)
            c.check(False, "incr of a non-number raised")
        except Exception as e:  # noqa: BLE001
            c.check("non-numeric" in str(e), f"incr of a non-number: {e!r}")
        for client in clients:
            client.close()

        _, _, after = scrape(url)

        def delta(name, **labels):
            return value(after, name, **labels) - value(before, name, **labels)

        c.equal(delta("dhtkit_cache_commands_total", command="set", outcome="stored"), 60.0, "set stored")
        c.equal(delta("dhtkit_cache_commands_total", command="get", outcome="hit"), 60.0, "get hit")
        c.equal(delta("dhtkit_cache_commands_total", command="get", outcome="miss"), 20.0, "get miss")
        c.equal(delta("dhtkit_cache_commands_total", command="add", outcome="not_stored"), 1.0, "add not_stored")
        c.equal(delta("dhtkit_cache_commands_total", command="delete", outcome="deleted"), 1.0, "delete deleted")
        c.equal(delta("dhtkit_cache_commands_total", command="delete", outcome="not_found"), 1.0,
                "delete not_found")
        c.equal(delta("dhtkit_cache_commands_total", command="incr", outcome="client_error"), 1.0,
                "incr client_error")
        c.equal(delta("dhtkit_cache_get_hits_total"), 60.0, "get_hits_total")
        c.equal(delta("dhtkit_cache_get_misses_total"), 20.0, "get_misses_total")
        c.equal(value(after, "dhtkit_cache_items"), 59.0, "items gauge")
        c.check(value(after, "dhtkit_cache_item_bytes") >= 59 * 100, "item bytes gauge")
        c.check(delta("dhtkit_cache_connections_total") >= 3, "connections accepted")
        c.check(delta("dhtkit_cache_read_bytes_total") > 60 * 100, "bytes read")
        c.check(delta("dhtkit_cache_written_bytes_total") > 60 * 100, "bytes written")

        # The get histogram: 80 observations, cumulative buckets that never
        # decrease and end at the count, a positive sum.
        count = delta("dhtkit_cache_command_duration_seconds_count", command="get")
        c.equal(count, 80.0, "get durations observed")
        buckets = sorted(
            ((float("inf") if dict(labels)["le"] == "+Inf" else float(dict(labels)["le"])), v)
            for (name, labels), v in after.items()
            if name == "dhtkit_cache_command_duration_seconds_bucket" and dict(labels).get("command") == "get")
        c.check(len(buckets) >= 10, f"get has {len(buckets)} buckets")
        counts = [v for _, v in buckets]
        c.check(counts == sorted(counts), f"cumulative buckets never decrease: {counts}")
        c.check(buckets and buckets[-1][0] == float("inf") and buckets[-1][1] == value(
            after, "dhtkit_cache_command_duration_seconds_count", command="get"), "+Inf bucket equals the count")
        c.check(value(after, "dhtkit_cache_command_duration_seconds_sum", command="get") > 0, "positive sum")

        # memcached's own stats stay what memcached_exporter reads.
        with server.connect() as sock:
            st = h.stats(sock)
            c.equal(float(st.get("get_hits", -1)), value(after, "dhtkit_cache_get_hits_total"), "stats get_hits agrees")
            settings = h.request(sock, b"stats settings\r\n", b"END\r\n")
            c.check(b"STAT maxconns 1024\r\n" in settings, "stats settings answers")
        c.equal(server.stop(), 0, "exit status after SIGTERM with the metrics endpoint on")

    # A metrics port already taken: a message and exit status 1, not a server
    # that silently runs without metrics.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        run = subprocess.run([args.server, "-p", "0", "--metrics-port", str(port)], capture_output=True, text=True,
                             timeout=30)
        c.equal(run.returncode, 1, "exit status with the metrics port taken")
        c.check("cannot serve metrics on 127.0.0.1:" + str(port) in run.stderr, f"message: {run.stderr!r}")

    # An IPv6 metrics address: refused at start, in words.
    for flags in (["--metrics-port", "0", "--metrics-listen", "::1"], ["-l", "::1", "--metrics-port", "0"]):
        run = subprocess.run([args.server, "-p", "0", *flags], capture_output=True, text=True, timeout=30)
        c.equal(run.returncode, 64, f"exit status with {flags}")
        c.check("takes an IPv4 address" in run.stderr, f"message with {flags}: {run.stderr!r}")

    # Off by default: no metrics line.
    with h.Server(args.server) as server:
        with server.connect() as sock:
            h.request(sock, b"version\r\n")
        c.check("metrics on" not in server.stderr_text(), "no metrics endpoint without --metrics-port")
        c.equal(server.stop(), 0, "exit status without metrics")

    return c.finish("metrics")


if __name__ == "__main__":
    sys.exit(main())
