"""dhtkit-cache's limits and lifecycle over real sockets:

- the connection limit (-c): the client past it gets "ERROR Too many open
  connections" and is closed, and a slot freed is usable again;
- --idle-timeout closes an idle connection and spares an active one;
- a client that sends requests and never reads the replies, or sends an endless
  line, makes the server hold a bounded amount of memory (VmRSS);
- SIGTERM and SIGINT stop the server with exit status 0, with clients
  connected; `shutdown` works only with -A; -F makes flush_all an error;
- -I and -M reach the store (too large, out of memory instead of eviction);
- bad command lines exit 64 with a message, --help documents every flag.

  /usr/bin/python3 tests/cache/limits_test.py --server build/.../dhtkit-cache
"""

import signal
import socket
import subprocess
import sys
import time

import cache_harness as h

TOO_MANY = b"ERROR Too many open connections\r\n"


def version_ok(sock):
    try:
        return h.request(sock, b"version\r\n", timeout=5).startswith(b"VERSION ")
    except (OSError, ConnectionError):
        return False


def connection_limit(c, binary):
    with h.Server(binary, "-c", "4", "-t", "2") as server:
        clients = [server.connect() for _ in range(4)]
        for i, s in enumerate(clients):
            c.check(version_ok(s), f"-c 4: connection {i + 1} is served")
        extra = server.connect()
        got, closed = h.read_to_eof(extra)
        c.equal(got, TOO_MANY, "-c 4: the fifth connection's reply")
        c.check(closed, "-c 4: the fifth connection is closed, not left hanging")
        extra.close()
        # A freed slot is usable again (the server sees the close asynchronously: retry, bounded).
        clients.pop().close()
        deadline = time.monotonic() + 5
        served = False
        while time.monotonic() < deadline and not served:
            s = server.connect()
            served = version_ok(s)
            s.close()
        c.check(served, "-c 4: a connection closed frees its slot")
        st = h.stats(clients[0])
        if "rejected_connections" in st:
            c.check(int(st["rejected_connections"]) >= 1, "stats rejected_connections counts refusals")
        for s in clients:
            s.close()
        c.equal(server.stop(), 0, "-c: exit status after SIGTERM")


def idle_timeout(c, binary):
    with h.Server(binary, "--idle-timeout", "1", "-t", "2") as server:
        idle = server.connect()
        active = server.connect()
        c.check(version_ok(idle), "idle-timeout: the idle connection is served first")
        start = time.monotonic()
        idle.settimeout(0.2)
        closed_after = None
        while time.monotonic() - start < 6:
            if not version_ok(active):
                c.check(False, "idle-timeout: an active connection stays open")
                break
            try:
                if idle.recv(100) == b"":
                    closed_after = time.monotonic() - start
                    break
            except socket.timeout:
                pass
            except ConnectionResetError:
                closed_after = time.monotonic() - start
                break
        c.check(closed_after is not None, "idle-timeout 1: the idle connection is closed within 6 s")
        if closed_after is not None:
            c.check(closed_after >= 0.8, f"idle-timeout 1: not closed early ({closed_after:.2f} s)")
        c.check(version_ok(active), "idle-timeout: the active connection is still served")
        idle.close()
        active.close()
        c.equal(server.stop(), 0, "idle-timeout: exit status after SIGTERM")


def send_until_blocked(sock, data, seconds):
    """Sends data repeatedly until the kernel buffers are full for `seconds` (the server stopped reading)."""
    sock.settimeout(seconds)
    sent = 0
    try:
        while sent < 4 << 30:
            sent += sock.send(data)
    except socket.timeout:
        pass
    except (BrokenPipeError, ConnectionResetError):
        pass
    return sent


def bounded_memory(c, binary):
    with h.Server(binary, "-t", "1", "-m", "64") as server:
        with server.connect() as s:
            value = b"v" * (512 * 1024)
            c.equal(h.request(s, b"set big 0 0 %d\r\n" % len(value) + value + b"\r\n"), b"STORED\r\n",
                    "slow reader: set a 512 KiB value")
        base = server.rss_kib()
        # A client asks for the 512 KiB value over and over and never reads: the
        # server must stop reading it rather than queue gigabytes of replies.
        slow = server.connect()
        sent = send_until_blocked(slow, b"get big\r\n" * 1000, 2.0)
        grown = server.rss_kib() - base
        c.check(sent < 64 << 20, f"slow reader: the server stopped reading ({sent} bytes of requests taken)")
        c.check(grown < 16 * 1024, f"slow reader: server RSS grew {grown} KiB (bound 16 MiB)")
        with server.connect() as other:
            c.check(version_ok(other), "slow reader: other clients are still served")
        slow.close()

        # An endless line (no \r\n): bounded input, an error or a close, never unbounded growth.
        base = server.rss_kib()
        endless = server.connect()
        sent = send_until_blocked(endless, b"x" * 65536, 2.0)
        grown = server.rss_kib() - base
        c.check(grown < 16 * 1024, f"endless line: server RSS grew {grown} KiB after {sent} bytes (bound 16 MiB)")
        endless.close()
        with server.connect() as other:
            c.check(version_ok(other), "endless line: other clients are still served")
        c.equal(server.stop(), 0, "bounded memory: exit status after SIGTERM")


def signals_and_shutdown(c, binary):
    for signum in (signal.SIGTERM, signal.SIGINT):
        with h.Server(binary, "-t", "2") as server:
            clients = [server.connect() for _ in range(3)]
            for s in clients:
                version_ok(s)
            server.signal(signum)
            try:
                c.equal(server.wait(10), 0, f"{signum.name} with clients connected: exit status")
            except subprocess.TimeoutExpired:
                c.check(False, f"{signum.name}: the server did not stop within 10 s")
            for s in clients:
                got, closed = h.read_to_eof(s, 5)
                c.check(closed, f"{signum.name}: client connections are closed")
                s.close()

    with h.Server(binary, "-t", "2") as server:
        with server.connect() as s:
            reply = h.request(s, b"shutdown\r\n")
            c.check(reply.startswith(b"ERROR"), f"shutdown without -A is refused: {reply!r}")
            c.check(version_ok(s), "shutdown without -A: the server keeps running")
        c.equal(server.stop(), 0, "exit status after SIGTERM")

    with h.Server(binary, "-A", "-t", "2") as server:
        with server.connect() as s:
            s.sendall(b"shutdown\r\n")
            h.read_to_eof(s, 5)
        try:
            c.equal(server.wait(10), 0, "shutdown with -A: exit status")
        except subprocess.TimeoutExpired:
            c.check(False, "shutdown with -A: the server did not stop within 10 s")

    with h.Server(binary, "-F", "-t", "1") as server:
        with server.connect() as s:
            reply = h.request(s, b"flush_all\r\n")
            c.check(reply.startswith(b"CLIENT_ERROR"), f"-F: flush_all answers an error: {reply!r}")
        c.equal(server.stop(), 0, "-F: exit status after SIGTERM")


def store_flags(c, binary):
    """-I and -M reach the store: a value past -I and a write past -m without eviction fail."""
    with h.Server(binary, "-I", "64k", "-t", "1") as server:
        with server.connect() as s:
            value = b"v" * (100 * 1024)
            reply = h.request(s, b"set big 0 0 %d\r\n" % len(value) + value + b"\r\n")
            c.equal(reply, b"SERVER_ERROR object too large for cache\r\n", "-I 64k: a 100 KiB value")
            value = b"v" * (32 * 1024)
            c.equal(h.request(s, b"set ok 0 0 %d\r\n" % len(value) + value + b"\r\n"), b"STORED\r\n",
                    "-I 64k: a 32 KiB value")
        c.equal(server.stop(), 0, "-I: exit status after SIGTERM")
    with h.Server(binary, "-M", "-m", "2", "-I", "1k", "-t", "1") as server:
        with server.connect() as s:
            value = b"v" * 500
            replies = []
            for i in range(20000):
                reply = h.request(s, b"set k%d 0 0 %d\r\n" % (i, len(value)) + value + b"\r\n")
                if reply != b"STORED\r\n":
                    replies.append(reply)
                    break
            c.equal(replies[:1], [b"SERVER_ERROR out of memory storing object\r\n"],
                    "-M -m 2: a write past the limit fails instead of evicting")
            c.equal(h.request(s, b"get k0\r\n", b"END\r\n"), b"VALUE k0 0 500\r\n" + value + b"\r\nEND\r\n",
                    "-M: the first item is still there")
        c.equal(server.stop(), 0, "-M: exit status after SIGTERM")


def command_line(c, binary):
    def run(*args):
        return subprocess.run([binary, *args], capture_output=True, timeout=10)

    for args in (["-t", "0"], ["-p", "70000"], ["-p", "abc"], ["-I", "100"], ["-I", "2g"], ["-I", "40m"],
                 ["-m", "0"], ["-c", "0"], ["-l", "not-an-address"], ["--idle-timeout", "-1"], ["--no-such-flag"]):
        p = run(*args)
        c.equal(p.returncode, 64, f"bad command line {args}: exit status")
        c.check(b"dhtkit-cache:" in p.stderr and len(p.stderr) > 20,
                f"bad command line {args}: a message on stderr ({p.stderr[:200]!r})")
    p = run("--help")
    c.equal(p.returncode, 0, "--help: exit status")
    for flag in (b"-p", b"-l", b"-m", b"-M", b"-c", b"-t", b"-I", b"-v", b"-A", b"-F", b"-V", b"-h",
                 b"--idle-timeout", b"127.0.0.1"):
        c.check(flag in p.stdout, f"--help documents {flag.decode()}")
    p = run("-V")
    c.check(p.returncode == 0 and b"dhtkit-cache" in p.stdout, f"-V prints the version: {p.stdout!r}")
    # A port that is taken: a clear error, exit 1.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        p = run("-p", str(taken.getsockname()[1]))
        c.equal(p.returncode, 1, "a port in use: exit status")
        c.check(b"cannot listen" in p.stderr, f"a port in use: the message ({p.stderr!r})")


def main():
    args = h.parse_args(__doc__)
    if h.is_memcached(args.server):
        h.skip("these limits are dhtkit-cache's own flags and messages")
    c = h.Checks()
    command_line(c, args.server)
    connection_limit(c, args.server)
    store_flags(c, args.server)
    idle_timeout(c, args.server)
    bounded_memory(c, args.server)
    signals_and_shutdown(c, args.server)
    return c.finish("limits")


if __name__ == "__main__":
    sys.exit(main())
