#!/usr/bin/python3
"""dhtkit-cache under overload: each case drives one kind of abuse at a real
server and checks the bound it states (the README's overload table lists
them). limits_test.py already covers -c with a handful of clients, the idle
timeout, a client that never reads and an endless line; these go further.

  flood     500 connections opened at once against -c 100, then 3 s of
            connect/close churn from 4 threads. Exactly the 99 past the one
            established client are kept and each answers; the other 401 get
            "ERROR Too many open connections" and are closed; the established
            client's round trips stay under LATENCY_BOUND_S; RSS grows less
            than 16 MiB; once the flood closes, curr_connections is back to 1
            within 10 s and 99 new clients are served.
  slowloris 40 clients each send one byte a second: a command line that
            never ends, a value that never completes, and a value over -I
            being swallowed. With --request-timeout 2 each is closed between
            1.5 and 6 s after its request began; others are served meanwhile
            (round trips under LATENCY_BOUND_S); a client that idles between
            whole requests, or sends one in pieces within the bound, is not
            cut; with --request-timeout 0 a trickler is still open after 4 s.
  huge      lengths announced past every bound (2^32-1, -1, 2^63, 2^64, past
            -I, INT_MAX-2) on set, cas, append and ms: memcached's replies
            byte for byte (CLIENT_ERROR bad command line format, or
            SERVER_ERROR object too large for cache and the value swallowed);
            64 MiB swallowed of a 2 GiB announcement grows VmRSS by less than
            16 MiB and VmPeak by less than 64 MiB (nothing of the announced
            size is allocated); other clients are served meanwhile.
  memory    -m 64 and 512 MiB of values of 1 KiB to 512 KiB (seeded) from 4
            writers: every set STORED (evicting), stats bytes <= -m, evictions
            counted, total_items = sets; VmRSS stays within -m + 48 MiB
            (malloc keeps freed large blocks of several sizes and threads);
            a reader's round trips stay under LATENCY_BOUND_S.
  garbage   a 3-node cluster; for 10 s a peer sends n0's cluster port random
            datagrams, envelopes with a good header and checksum and a random
            payload, truncated and over-long envelopes (UDP), and connections
            with random bytes, bad hellos, and frames announcing 4 GiB (TCP).
            n0 stays up; all three keep seeing 3 alive members; set/get through
            n0 and n1 keep working with round trips under 2 s; n0's stats
            cluster counts the garbage (dropped and refused counters rise by
            at least half of what was sent).

  /usr/bin/python3 tests/cache/overload_test.py --server build/.../dhtkit-cache --case flood

A case that uses randomness prints its seed; --seed replays it.
"""

import argparse
import os
import random
import resource
import selectors
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cache_harness as h  # noqa: E402

TOO_MANY = b"ERROR Too many open connections\r\n"
# A request round trip on an established connection while the server is
# under attack. Unloaded it is well under a millisecond; the bound is loose
# because CI runs tests two at a time on a 2-core machine with a Debug build,
# and tight enough that a server that stops serving others (a blocked thread,
# a starved worker) fails it.
LATENCY_BOUND_S = 1.0
# Garbage datagrams a second that a Debug node on a shared 2-core machine takes
# without its socket overflowing (it handled about 3,500 a second under a flood).
GARBAGE_RATE = 1000


def proc_status(pid):
    """VmRSS, VmHWM and VmPeak of a process in KiB (from /proc/<pid>/status)."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key = line.split(":", 1)[0]
            if key in ("VmRSS", "VmHWM", "VmPeak"):
                out[key] = int(line.split()[1])
    return out


def version_ok(sock, timeout=5.0):
    try:
        return h.request(sock, b"version\r\n", timeout=timeout).startswith(b"VERSION ")
    except (OSError, ConnectionError):
        return False


def raise_file_limit(wanted):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))


class Probe(threading.Thread):
    """An established client doing `request` round trips every `interval` s until stopped: the
    latencies and the errors, to check that the server keeps serving it."""

    def __init__(self, address, request=b"version\r\n", until=b"\r\n", interval=0.02, expect=None):
        super().__init__(daemon=True)
        self.sock = socket.create_connection(address, timeout=10)
        self.request, self.until, self.interval, self.expect = request, until, interval, expect
        self.latencies, self.errors = [], []
        self.stopping = threading.Event()

    def run(self):
        while not self.stopping.is_set():
            start = time.monotonic()
            try:
                reply = h.request(self.sock, self.request, self.until, timeout=10)
                self.latencies.append(time.monotonic() - start)
                if self.expect is not None and reply != self.expect:
                    self.errors.append(f"reply {reply[:200]!r}")
            except (OSError, ConnectionError) as e:
                self.errors.append(repr(e))
                return
            self.stopping.wait(self.interval)

    def stop(self):
        self.stopping.set()
        self.join(15)

    def check(self, c, what, bound=LATENCY_BOUND_S):
        c.equal(self.errors, [], f"{what}: the established client's requests all answered")
        c.check(len(self.latencies) > 0, f"{what}: the established client made requests")
        if self.latencies:
            worst = max(self.latencies)
            ordered = sorted(self.latencies)
            print(f"{what}: {len(self.latencies)} round trips, median {ordered[len(ordered) // 2] * 1e3:.2f} ms, "
                  f"max {worst * 1e3:.1f} ms", flush=True)
            c.check(worst < bound, f"{what}: the slowest round trip {worst:.3f} s is under {bound} s")


def wait_stat(sock, name, want, timeout):
    """Polls `stats` until stat `name` equals `want`; its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = h.stats(sock).get(name)
        if value == str(want) or time.monotonic() >= deadline:
            return value
        time.sleep(0.05)


# ---- flood -------------------------------------------------------------------

def flood(c, binary, _seed):
    limit, count = 100, 500
    raise_file_limit(count + 200)
    with h.Server(binary, "-c", str(limit), "-t", "4") as server:
        probe = Probe(server.address())
        c.check(version_ok(probe.sock), "flood: the established client is served before")
        before = proc_status(server.pid)
        probe.start()
        began = time.monotonic()
        socks = []
        try:
            for _ in range(count):
                socks.append(socket.create_connection(server.address(), timeout=10))
            print(f"flood: {count} connections opened in {time.monotonic() - began:.2f} s", flush=True)
            # Every refused one gets the message and an end of stream; the kept ones get nothing.
            replies = {s: b"" for s in socks}
            refused = set()
            sel = selectors.DefaultSelector()
            for s in socks:
                s.setblocking(False)
                sel.register(s, selectors.EVENT_READ)
            deadline = time.monotonic() + 15
            while len(refused) < count - (limit - 1) and time.monotonic() < deadline:
                for key, _ in sel.select(timeout=0.5):
                    s = key.fileobj
                    try:
                        chunk = s.recv(4096)
                    except BlockingIOError:
                        continue
                    except ConnectionResetError:
                        chunk = b""
                    if chunk:
                        replies[s] += chunk
                    else:
                        refused.add(s)
                        sel.unregister(s)
            sel.close()
            kept = [s for s in socks if s not in refused]
            c.equal(len(refused), count - (limit - 1), f"flood: connections past -c {limit} closed by the server")
            c.equal(len(kept), limit - 1, "flood: connections kept (the established client holds one slot)")
            c.check(all(replies[s] == TOO_MANY for s in refused),
                    "flood: every refused connection was told 'ERROR Too many open connections'")
            c.check(all(replies[s] == b"" for s in kept), "flood: the kept connections were sent nothing")
            served = 0
            for s in kept:
                s.setblocking(True)
                served += version_ok(s)
            c.equal(served, limit - 1, "flood: every kept connection answers a request")
            during = proc_status(server.pid)
            grown = during["VmRSS"] - before["VmRSS"]
            print(f"flood: VmRSS {before['VmRSS']} -> {during['VmRSS']} KiB, VmHWM {during['VmHWM']} KiB", flush=True)
            c.check(grown < 16 * 1024, f"flood: VmRSS grew {grown} KiB (bound 16 MiB)")
        finally:
            for s in socks:
                s.close()

        # Churn: connections opened and closed as fast as 4 threads can, for 3 s.
        stop_at = time.monotonic() + 3
        churned = [0] * 4
        churn_errors = []

        def churn(i):
            while time.monotonic() < stop_at:
                try:
                    with socket.create_connection(server.address(), timeout=5) as s:
                        if churned[i] % 2:
                            s.sendall(b"version\r\n")
                    churned[i] += 1
                except OSError as e:
                    churn_errors.append(repr(e))
                    return

        threads = [threading.Thread(target=churn, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        print(f"flood: churn opened and closed {sum(churned)} connections in 3 s", flush=True)
        c.equal(churn_errors, [], "flood: churn connections all connected")
        probe.stop()
        probe.check(c, "flood")

        # Recovery: the slots come back.
        c.equal(wait_stat(probe.sock, "curr_connections", 1, 10), "1",
                "flood: curr_connections back to 1 (the established client) within 10 s")
        st = h.stats(probe.sock)
        c.check(int(st.get("rejected_connections", 0)) >= count - (limit - 1),
                f"flood: rejected_connections {st.get('rejected_connections')} counts the refusals")
        again = []
        try:
            for _ in range(limit - 1):
                again.append(server.connect())
            c.equal(sum(version_ok(s) for s in again), limit - 1, "flood: after it, -c minus one new clients served")
        finally:
            for s in again:
                s.close()
        probe.sock.close()
        c.equal(server.stop(), 0, "flood: exit status after SIGTERM")


# ---- slowloris -----------------------------------------------------------------

def slowloris(c, binary, _seed):
    timeout_s = 2
    kinds = {
        # A command line that never ends (short of the 2,048-byte line bound at this pace).
        "line": (b"", b"get " + b"k" * 2000),
        # A whole set line, then its 100-byte value one byte at a time.
        "value": (b"set slow 0 0 100\r\n", b"v" * 100),
        # A set over -I is answered at once and its bytes swallowed, one at a time.
        "swallow": (b"set slow 0 0 100000000\r\n", b"s" * 100),
    }
    with h.Server(binary, "-c", "64", "-t", "2", "--request-timeout", str(timeout_s)) as server:
        probe = Probe(server.address(), b"set p 0 0 1\r\nx\r\nget p\r\n", b"END\r\n")
        probe.start()
        slow = []  # [kind, socket, bytes left, time of the first byte, time closed]
        for i in range(40):
            kind = list(kinds)[i % 3]
            s = server.connect()
            s.setblocking(False)
            slow.append([kind, s, bytearray(kinds[kind][1]), None, None])
        start = time.monotonic()
        for entry in slow:
            head = kinds[entry[0]][0]
            if head:
                entry[1].sendall(head)
                entry[3] = time.monotonic()
        # A client that idles longer than the timeout between whole requests, and one that sends a
        # request in pieces within it: neither is cut.
        idler = server.connect()
        c.check(version_ok(idler), "slowloris: the idle client is served")
        idle_since = time.monotonic()
        pieces = server.connect()
        piece_reply = []

        def send_in_pieces():
            for part in (b"set pieces 0 0 ", b"10\r\n01234", b"567", b"89\r\n"):
                pieces.sendall(part)
                time.sleep(0.3)
            piece_reply.append(h.read_until(pieces, b"\r\n", 5))

        piecer = threading.Thread(target=send_in_pieces)
        piecer.start()

        # One byte a second to each slow client until it is closed (at most 8 s);
        # closes are looked for ten times a second. The sleeps pace the attack.
        next_byte = time.monotonic()
        while time.monotonic() - start < 8 and any(e[4] is None for e in slow):
            now = time.monotonic()
            for entry in slow:
                if entry[4] is not None:
                    continue
                try:
                    while True:  # what the server said (the swallow's error), or its close
                        chunk = entry[1].recv(4096)
                        if not chunk:
                            entry[4] = now
                            break
                except BlockingIOError:
                    pass
                except ConnectionResetError:
                    entry[4] = now
            if now >= next_byte:
                next_byte += 1.0
                for entry in slow:
                    if entry[4] is not None or not entry[2]:
                        continue
                    try:
                        entry[1].send(bytes(entry[2][:1]))
                        del entry[2][:1]
                        if entry[3] is None:
                            entry[3] = now
                    except (BrokenPipeError, ConnectionResetError):
                        entry[4] = now
            time.sleep(0.1)
        piecer.join(10)
        probe.stop()
        probe.check(c, "slowloris")
        for kind in kinds:
            took = [e[4] - e[3] for e in slow if e[0] == kind and e[4] is not None and e[3] is not None]
            left_open = sum(1 for e in slow if e[0] == kind and e[4] is None)
            c.equal(left_open, 0, f"slowloris: {kind} tricklers still open after 8 s")
            if took:
                print(f"slowloris: {kind}: closed {min(took):.2f} to {max(took):.2f} s after the request began",
                      flush=True)
                c.check(min(took) >= timeout_s - 0.5 and max(took) <= timeout_s + 4,
                        f"slowloris: {kind} tricklers closed within [{timeout_s - 0.5}, {timeout_s + 4}] s "
                        f"of the request's start (--request-timeout {timeout_s})")
        c.equal(piece_reply, [b"STORED\r\n"], "slowloris: a request sent in pieces within the bound is served")
        time.sleep(max(0.0, idle_since + timeout_s + 1 - time.monotonic()))  # idle past the bound
        c.check(version_ok(idler), "slowloris: a client idle between whole requests is not cut")
        for e in slow:
            e[1].close()
        idler.close()
        pieces.close()
        with server.connect() as s:
            c.equal(wait_stat(s, "curr_connections", 2, 10), "2",
                    "slowloris: the slow clients' slots are free again (the probe and this client remain)")
        probe.sock.close()
        c.equal(server.stop(), 0, "slowloris: exit status after SIGTERM")
    # --request-timeout 0: nothing cuts a trickler (the bound above is the option's doing).
    with h.Server(binary, "-t", "1", "--request-timeout", "0") as server:
        s = server.connect()
        began = time.monotonic()
        open_after = True
        for b in b"get kkkk":
            try:
                s.sendall(bytes([b]))
            except OSError:
                open_after = False
                break
            time.sleep(0.5)
        s.settimeout(0.1)
        try:
            open_after = open_after and s.recv(1) != b""
        except socket.timeout:
            pass
        except OSError:
            open_after = False
        c.check(open_after, f"--request-timeout 0: a trickler is still open after {time.monotonic() - began:.1f} s")
        s.close()
        c.equal(server.stop(), 0, "--request-timeout 0: exit status after SIGTERM")
    p = __import__("subprocess").run([binary, "--help"], capture_output=True, timeout=10)
    c.check(b"--request-timeout" in p.stdout and b"default: 30" in p.stdout,
            "--help documents --request-timeout and its default of 30 s")


# ---- huge ----------------------------------------------------------------------

BAD_FORMAT = b"CLIENT_ERROR bad command line format\r\n"
TOO_LARGE = b"SERVER_ERROR object too large for cache\r\n"


def exchange(sock, data, want, timeout=10.0):
    """Sends data and reads len(want) bytes (or until the server closes)."""
    sock.sendall(data)
    sock.settimeout(timeout)
    got = b""
    try:
        while len(got) < len(want):
            chunk = sock.recv(65536)
            if not chunk:
                break
            got += chunk
    except socket.timeout:
        pass
    return got


def huge(c, binary, _seed):
    memcached = h.is_memcached(binary)
    with h.Server(binary, "-m", "64", "-I", "1m", "-t", "2") as server:
        version = h.request(server.connect(), b"version\r\n")
        with server.connect() as s:
            # Lengths no item can have: memcached's parse error, and the connection goes on.
            for n in (b"4294967295", b"-1", b"9223372036854775808", b"18446744073709551616", b"2147483646",
                      b"99999999999999999999999999"):
                for line in (b"set k 0 0 " + n, b"ms k " + n + b" T0", b"append k 0 0 " + n):
                    c.equal(exchange(s, line + b"\r\nversion\r\n", BAD_FORMAT + version), BAD_FORMAT + version,
                            f"huge: {line.decode()}: the error, then the next command answered")
            # A cas unique over 64 bits: memcached says "bad data chunk" and then reads the next line as a value.
            c.equal(exchange(s, b"cas k 0 0 4294967296 1\r\nversion\r\n", b"CLIENT_ERROR bad data chunk\r\nERROR\r\n"),
                    b"CLIENT_ERROR bad data chunk\r\nERROR\r\n", "huge: cas with a length over 32 bits")
            # Over -I with the value sent: the error, the value swallowed, the old value gone.
            value = b"x" * 2_000_000
            c.equal(exchange(s, b"set k 0 0 5\r\nhello\r\nset k 0 0 2000000\r\n" + value + b"\r\nget k\r\n",
                             b"STORED\r\n" + TOO_LARGE + b"END\r\n"), b"STORED\r\n" + TOO_LARGE + b"END\r\n",
                    "huge: set over -I: too large, swallowed, and the old value is dropped")
            for line in (b"append k 0 0 2000000", b"ms k 2000000 T0"):
                c.equal(exchange(s, line + b"\r\n" + value + b"\r\nversion\r\n", TOO_LARGE + version),
                        TOO_LARGE + version, f"huge: {line.decode()}: too large, swallowed")
        # 2 GiB announced (the largest length memcached takes): 64 MiB of it sent at full speed.
        probe = Probe(server.address())
        before = proc_status(server.pid)
        probe.start()
        with server.connect() as s:
            s.sendall(b"set big 0 0 2147483645\r\n")
            if not memcached:  # memcached answers only once the whole value is swallowed
                c.equal(h.read_until(s, b"\r\n", 5), TOO_LARGE, "huge: 2 GiB announced: too large, at once")
            chunk = b"z" * (1 << 20)
            for _ in range(64):
                s.sendall(chunk)
            # The server has read it all once a request on another connection, sent after, is
            # answered and the sender's socket buffer has drained: bounded by the probe's own checks.
            after = proc_status(server.pid)
            c.check(version_ok(server.connect()), "huge: another client is served while a value is swallowed")
        probe.stop()
        probe.check(c, "huge")
        rss = after["VmRSS"] - before["VmRSS"]
        peak = after["VmPeak"] - before["VmPeak"]
        print(f"huge: 64 MiB of a 2 GiB value swallowed: VmRSS +{rss} KiB, VmPeak +{peak} KiB", flush=True)
        c.check(rss < 16 * 1024, f"huge: VmRSS grew {rss} KiB (bound 16 MiB)")
        c.check(peak < 64 * 1024, f"huge: VmPeak grew {peak} KiB (bound 64 MiB: nothing of 2 GiB was allocated)")
        with server.connect() as s:
            c.check(version_ok(s), "huge: served after the swallowing client left")
        probe.sock.close()
        c.equal(server.stop(), 0, "huge: exit status after SIGTERM")


# ---- memory ----------------------------------------------------------------------

def memory(c, binary, seed):
    limit_mib, overhead_mib, total = 64, 64, 512 << 20
    rng = random.Random(seed)
    writers = 4
    # Value sizes log-uniform from 1 KiB to 512 KiB: many sizes, so malloc cannot reuse one size class.
    plans = []
    for _ in range(writers):
        sizes, planned = [], 0
        while planned < total // writers:
            sizes.append(int(2 ** rng.uniform(10, 19)))
            planned += sizes[-1]
        plans.append(sizes)
    payload = bytes(rng.randrange(97, 123) for _ in range(1 << 19))
    with h.Server(binary, "-m", str(limit_mib), "-t", "4") as server:
        probe = Probe(server.address(), b"get probe\r\n", b"END\r\n", interval=0.05)
        probe.start()
        stored = [0] * writers
        errors = []

        def write(i):
            try:
                with server.connect(timeout=30) as s:
                    view = memoryview(payload)
                    for n, size in enumerate(plans[i]):
                        # One send per request: split sends would meet Nagle's delay.
                        request = b"".join((b"set w%d:%d 0 0 %d\r\n" % (i, n, size), view[:size], b"\r\n"))
                        if h.request(s, request, timeout=30) == b"STORED\r\n":
                            stored[i] += 1
            except (OSError, ConnectionError) as e:
                errors.append(repr(e))

        began = time.monotonic()
        threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        took = time.monotonic() - began
        probe.stop()
        sets = sum(len(p) for p in plans)
        status = proc_status(server.pid)
        with server.connect() as s:
            st = h.stats(s)
        print(f"memory: {sets} sets, {total >> 20} MiB in {took:.1f} s from {writers} writers; VmRSS "
              f"{status['VmRSS']} KiB, VmHWM {status['VmHWM']} KiB; stats bytes {st.get('bytes')} curr_items "
              f"{st.get('curr_items')} evictions {st.get('evictions')} total_items {st.get('total_items')}", flush=True)
        c.equal(errors, [], "memory: the writers' connections")
        c.equal(sum(stored), sets, "memory: every set answered STORED (evicting, not failing)")
        limit = limit_mib << 20
        c.check(0 < int(st.get("bytes", -1)) <= limit, f"memory: stats bytes {st.get('bytes')} within -m {limit}")
        c.check(int(st.get("evictions", 0)) > 0, "memory: writing past -m evicts")
        c.equal(st.get("total_items"), str(sets), "memory: total_items counts every set")
        c.check(int(st.get("bytes_read", 0)) >= total, f"memory: bytes_read {st.get('bytes_read')} >= {total}")
        bound = (limit_mib + overhead_mib) * 1024
        c.check(status["VmRSS"] <= bound, f"memory: VmRSS {status['VmRSS']} KiB within -m + {overhead_mib} MiB")
        c.check(status["VmHWM"] <= bound, f"memory: VmHWM {status['VmHWM']} KiB within -m + {overhead_mib} MiB")
        probe.check(c, "memory")
        probe.sock.close()
        c.equal(server.stop(), 0, "memory: exit status after SIGTERM")


# ---- garbage -----------------------------------------------------------------------

def _crc32c_table():
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC_TABLE = _crc32c_table()


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc = _CRC_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def envelope(tag, sender, payload):
    """A dhtkit wire envelope (include/dhtkit/transport/wire.hpp) with a correct checksum."""
    header = b"DHTK" + struct.pack("<BBHQI", 1, 0, tag, sender, len(payload))
    return header + struct.pack("<I", crc32c(payload, crc32c(header))) + payload


def garbage_datagrams(rng, count):
    """Datagrams no node accepts, of every kind a decoder must refuse: (kind, bytes)."""
    tags = [0x0000, 0x0001, 0x0150, 0x0201, 0x0202, 0x0203, 0x0210, 0x0301, 0x0310, 0x0401, 0x04E0, 0x7000, 0x8001]
    out = []
    for i in range(count):
        kind = i % 5
        payload = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 300)))
        if kind == 0:  # random bytes
            out.append(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 1400))))
        elif kind == 1:  # a good envelope around a random payload, under any protocol's tag
            out.append(envelope(rng.choice(tags), rng.getrandbits(64), payload))
        elif kind == 2:  # a good envelope cut short
            e = envelope(rng.choice(tags), rng.getrandbits(64), payload + b"\x01")
            out.append(e[:rng.randrange(1, len(e))])
        elif kind == 3:  # a header announcing more than it carries, or a bad checksum
            e = bytearray(envelope(rng.choice(tags), rng.getrandbits(64), payload))
            if rng.random() < 0.5:
                e[16:20] = struct.pack("<I", rng.choice([len(payload) + 1, 1 << 20, 0xFFFFFFFF]))
            else:
                e[-1 if payload else 20] ^= 0x5A
            out.append(bytes(e))
        else:  # over the packet lane's 1,400-byte maximum
            out.append(envelope(0x0201, rng.getrandbits(64), bytes(rng.randrange(256) for _ in range(3000))))
    return out


def udp_drops(port):
    """The kernel's count of datagrams dropped at the UDP socket bound to 127.0.0.1:port (full buffer)."""
    local = f"0100007F:{port:04X}"
    with open("/proc/net/udp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[1] == local:
                return int(fields[-1])
    return 0


def garbage(c, binary, seed):
    import cluster_harness as ch

    rng = random.Random(seed)
    datagrams = garbage_datagrams(rng, 1000)
    hello = struct.pack("<I", 24) + b"DHTH" + bytes([1, 4, 127, 0, 0, 1]) + bytes(12) + struct.pack("<H", 9)
    counters = ("cluster_dropped_malformed", "cluster_dropped_unknown_type", "cluster_dropped_not_a_member",
                "cluster_dropped_spoofed", "cluster_dropped_refused_by_core", "cluster_packet_oversize_dropped",
                "cluster_stream_bad_hellos", "cluster_stream_oversize_frames")
    with ch.Cluster(binary, 3) as cluster:
        took = cluster.wait_members(3)
        print(f"garbage: 3 nodes up in {took:.2f} s", flush=True)
        n0 = cluster.nodes[0]
        target = (ch.HOST, n0.cport)

        def attack(phase, seconds, udp_rate):
            """Garbage at n0's cluster port for `seconds`: UDP as fast as one sender can (udp_rate None)
            or paced to udp_rate datagrams a second, and TCP connections one after another."""
            before = n0.stats()
            drops_before = udp_drops(n0.cport)
            probes = [Probe(node.address(), b"set gk%d 0 0 2\r\nhi\r\nget gk%d\r\n" % (i, i), b"END\r\n",
                            interval=0.05, expect=b"STORED\r\nVALUE gk%d 0 2\r\nhi\r\nEND\r\n" % i)
                      for i, node in enumerate(cluster.nodes[:2])]
            for p in probes:
                p.start()
            began = time.monotonic()
            stop_at = began + seconds
            sent = {"udp": 0, "tcp_connections": 0, "tcp_bad_hello": 0, "tcp_oversize": 0, "tcp_frames": 0}
            membership = []  # (node, alive, dead) seen while the garbage flows
            errors = []

            def udp():
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                    i = 0
                    while time.monotonic() < stop_at:
                        batch = datagrams[i % 10::10]
                        for d in batch:
                            u.sendto(d, target)
                        sent["udp"] += len(batch)
                        i += 1
                        if udp_rate:  # paced: the next batch when the rate allows it
                            time.sleep(max(0.0, began + sent["udp"] / udp_rate - time.monotonic()))

            def tcp():
                while time.monotonic() < stop_at:
                    kind = sent["tcp_connections"] % 4
                    try:
                        with socket.create_connection(target, timeout=5) as s:
                            sent["tcp_connections"] += 1
                            if kind == 0:  # a hello frame of the right length with the wrong contents
                                s.sendall(struct.pack("<I", 24) + bytes(rng.randrange(256) for _ in range(24)))
                                sent["tcp_bad_hello"] += 1
                            elif kind == 1:  # the first frame announcing 4 GiB
                                s.sendall(struct.pack("<I", 0xFFFFFFFF) + b"x" * 100)
                                sent["tcp_bad_hello"] += 1
                            elif kind == 2:  # a good hello, frames of garbage, then one announcing 4 GiB
                                s.sendall(hello)
                                for _ in range(20):
                                    body = rng.choice(datagrams[:500])
                                    s.sendall(struct.pack("<I", len(body)) + body)
                                sent["tcp_frames"] += 20
                                s.sendall(struct.pack("<I", 0xFFFFFFFF) + b"y" * 100)
                                sent["tcp_oversize"] += 1
                            else:  # random bytes
                                s.sendall(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 4096))))
                            # Until the node closes it (at most 1 s), so each connection is judged.
                            s.settimeout(1)
                            try:
                                while s.recv(4096):
                                    pass
                            except OSError:
                                pass
                    except OSError as e:
                        errors.append(repr(e))
                        time.sleep(0.05)

            def watch():
                while time.monotonic() < stop_at:
                    for node in cluster.nodes:
                        try:
                            st = node.stats(timeout=5)
                            membership.append((node.name, int(st.get("cluster_members_alive", -1)),
                                               int(st.get("cluster_members_dead", -1))))
                        except (OSError, ConnectionError) as e:
                            membership.append((node.name, -1, repr(e)))
                    time.sleep(0.5)

            threads = [threading.Thread(target=f) for f in (udp, tcp, watch)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(seconds + 30)
            for p in probes:
                p.stop()
            drops = udp_drops(n0.cport) - drops_before
            after = {}

            def delta(name):
                return int(after.get(name, 0)) - int(before.get(name, 0))

            # stats cluster is a snapshot the node refreshes twice a second: wait (3 s at most)
            # until it shows what the node must have counted by now.
            deadline = time.monotonic() + 3
            while True:
                after = n0.stats()
                if (delta("cluster_stream_oversize_frames") >= sent["tcp_oversize"]
                        and delta("cluster_stream_bad_hellos") >= sent["tcp_bad_hello"]) \
                        or time.monotonic() >= deadline:
                    break
                time.sleep(0.1)

            print(f"garbage {phase}: sent {sent} in {seconds} s, kernel dropped {drops} datagrams at n0's socket; "
                  "n0 counted " + ", ".join(f"{n[len('cluster_'):]} +{delta(n)}" for n in counters), flush=True)
            c.check(n0.running, f"garbage {phase}: n0 is still running")
            c.check(len(errors) < max(1, sent["tcp_connections"] // 10),
                    f"garbage {phase}: n0 kept accepting connections ({len(errors)} failed: {errors[:3]})")
            c.check(len(membership) > 3, f"garbage {phase}: membership watched during the attack")
            # Every garbage datagram the node's socket took (the rest the kernel dropped, counted
            # above) is counted by one of the refusals; the frames on TCP count there too.
            udp_taken = sent["udp"] - drops
            udp_counted = sum(delta(n) for n in counters[:6]) - sent["tcp_frames"]
            c.check(udp_counted >= udp_taken * 0.9,
                    f"garbage {phase}: {udp_counted} datagrams counted as refused, >= 90 % of the {udp_taken} "
                    "n0's socket took")
            c.check(delta("cluster_stream_bad_hellos") >= sent["tcp_bad_hello"],
                    f"garbage {phase}: bad hellos counted {delta('cluster_stream_bad_hellos')} >= sent "
                    f"{sent['tcp_bad_hello']}")
            c.check(delta("cluster_stream_oversize_frames") >= sent["tcp_oversize"],
                    f"garbage {phase}: oversize frames counted {delta('cluster_stream_oversize_frames')} >= sent "
                    f"{sent['tcp_oversize']}")
            for p in probes:
                p.sock.close()
            return membership, probes

        # Line rate: as fast as one Python sender goes. The kernel drops most datagrams at n0's
        # socket, and with them some of its peers' probes, so peers may suspect n0 for a while and a
        # write may miss its quorum (an error reply); no node may be declared dead, no request may
        # hang past the cluster's deadlines, and the membership heals after it.
        #
        # What is not asserted at line rate: that every client is answered in time. With n0's
        # socket full, n0 decodes and refuses every datagram it takes on the node's strand, where
        # client commands wait too; requests to n0, and to n1 for a key n0 holds, often wait past
        # the probe's 10 s (the probes' keys are served again after the flood, checked below).
        # That is a known limitation
        # (README, "What the table does not promise"): the stalls are reported here, not failed.
        # At the paced rate below every node must answer every request within 2 s, and after the
        # flood every node must serve again.
        membership, probes = attack("at line rate", 5.0, None)
        c.equal([m for m in membership if m[2] != 0][:5], [], "garbage at line rate: no member declared dead")
        for i, p in enumerate(probes):
            bad = [e for e in p.errors if not e.startswith("reply b'SERVER_ERROR")]
            slowest = max(p.latencies or [0])
            print(f"garbage at line rate: n{i}'s client: {len(p.latencies)} answered, slowest {slowest:.2f} s, "
                  f"{len(p.errors) - len(bad)} SERVER_ERROR, stalled: {bad[:1]}", flush=True)
            c.check(all("TimeoutError" in e for e in bad),
                    f"garbage at line rate: n{i}'s client got replies, SERVER_ERROR or a stall: {bad[:2]}")
        cluster.wait_members(3, timeout=10)
        # Paced at GARBAGE_RATE datagrams a second (plus the TCP garbage): nothing is lost at the
        # socket, membership never wavers, and every request succeeds.
        membership, probes = attack(f"at {GARBAGE_RATE}/s", 5.0, GARBAGE_RATE)
        c.equal([m for m in membership if m[1] != 3 or m[2] != 0][:5], [],
                f"garbage at {GARBAGE_RATE}/s: every node saw 3 alive and 0 dead members throughout")
        for i, p in enumerate(probes):
            p.check(c, f"garbage at {GARBAGE_RATE}/s: n{i}'s client", bound=2.0)
        # After the attack: membership intact and data served through every node.
        cluster.wait_members(3, timeout=10)
        for node in cluster.nodes:
            with socket.create_connection(node.address(), timeout=10) as s:
                c.equal(h.request(s, b"set after 0 0 2\r\nok\r\nget after\r\n", b"END\r\n"),
                        b"STORED\r\nVALUE after 0 2\r\nok\r\nEND\r\n", f"garbage: {node.name} serves after the attack")
                # The probes' keys too: a request stalled during the flood must not have left its
                # key blocked (commands on one key are serialized at its coordinator).
                c.equal(h.request(s, b"get gk0 gk1\r\n", b"END\r\n", timeout=10).count(b"VALUE"), 2,
                        f"garbage: {node.name} serves the probes' keys after the attack")
        for node in cluster.nodes:
            c.equal(node.terminate(20), 0, f"garbage: {node.name} exit status after SIGTERM")


CASES = {"flood": flood, "slowloris": slowloris, "huge": huge, "memory": memory, "garbage": garbage}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server", required=True, help="the dhtkit-cache binary (or memcached for flood, huge, memory)")
    ap.add_argument("--case", required=True, choices=sorted(CASES))
    ap.add_argument("--seed", type=int, default=None, help="replay a run (printed by every run)")
    args = ap.parse_args()
    if h.is_memcached(args.server) and args.case in ("flood", "slowloris", "garbage"):
        h.skip(f"{args.case} checks dhtkit-cache's own bounds (-c counting, --request-timeout, the cluster)")
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 32)
    print(f"overload {args.case}: seed {seed} (replay with --seed {seed})", flush=True)
    c = h.Checks()
    CASES[args.case](c, args.server, seed)
    status = c.finish(f"overload {args.case}")
    if status:
        print(f"overload {args.case}: failed with seed {seed}")
    return status


if __name__ == "__main__":
    sys.exit(main())
