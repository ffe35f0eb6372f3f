#!/usr/bin/python3
"""Records the golden replies of memcached 1.6.18 for the conformance rows.

Starts a private memcached on a free loopback port, sends each row of
conformance_rows.txt on a fresh connection and writes conformance_golden.txt,
which tests/cache_conformance_test.cpp replays into a dhtkit_cache::session and
compares byte for byte (CAS values masked, see mask_cas below).

    /usr/bin/python3 tests/cache/record_conformance.py [--memcached /usr/bin/memcached]

Row file format (one row a line, '#' starts a comment line):

    name [mode] | request

The request is written with escapes: \\r \\n \\t \\\\ \\xHH, {rep:C:N} for N copies
of the character C (long keys, big values), {pause} for a point where the
runner sends what came before and waits for its replies (so a later {CAS}
sees them), and {CAS} for the last CAS value the server has sent so far in
this row (from a gets VALUE line or a meta c flag). Every row ends with an
implied "mn\\r\\n" so the runner knows when the reply is complete without
waiting (when the mn is swallowed as data, it waits until the connection is
quiet). Modes: exact (default) compares bytes after masking CAS values;
stats compares non-STAT lines exactly and requires dhtkit's STAT names to be
an in-order subset of memcached's (values differ between servers).

Golden file: one row a line, tab separated: name, mode, request (escaped, as
in the row file), reply (escaped), closed (1 when the server closed the
connection).

Before each row the runner sends flush_all on a side connection, so every row
starts from an empty cache (and no delayed flush from an earlier row is
pending).
"""
import argparse
import os
import re
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cache_harness import Server  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROWS = os.path.join(HERE, "conformance_rows.txt")
GOLDEN = os.path.join(HERE, "conformance_golden.txt")
SENTINEL = b"mn\r\n"
QUIET_S = 0.3      # a connection silent this long has said everything
STRAGGLER_S = 0.05  # ... or this long after it sent an MN
ROW_LIMIT_S = 3.0  # bound on one row


def unescape(text):
    """Row text -> list of byte segments split at {pause}; {CAS} kept as a marker."""
    text = re.sub(r"\{rep:(.):(\d+)\}", lambda m: m.group(1) * int(m.group(2)), text)
    out = bytearray()
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\":
            n = text[i + 1]
            if n == "r":
                out += b"\r"
            elif n == "n":
                out += b"\n"
            elif n == "t":
                out += b"\t"
            elif n == "\\":
                out += b"\\"
            elif n == "x":
                out.append(int(text[i + 2:i + 4], 16))
                i += 2
            else:
                raise ValueError("bad escape \\" + n)
            i += 2
        else:
            out += c.encode()
            i += 1
    return bytes(out).split(b"{pause}")


def escape(data):
    out = []
    for b in data:
        if b == 0x0D:
            out.append("\\r")
        elif b == 0x0A:
            out.append("\\n")
        elif b == 0x09:
            out.append("\\t")
        elif b == 0x5C:
            out.append("\\\\")
        elif 0x20 <= b < 0x7F:
            out.append(chr(b))
        else:
            out.append("\\x%02x" % b)
    return "".join(out)


def read_rows(path=ROWS):
    rows = []
    for line in open(path, encoding="utf-8"):
        line = line.rstrip("\n")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        head, _, request = line.partition(" | ")
        parts = head.split()
        name, mode = parts[0], (parts[1] if len(parts) > 1 else "exact")
        rows.append((name, mode, request))
    return rows


CAS_RE = re.compile(rb"^VALUE \S+ \d+ \d+ (\d+)\r$|^(?:HD|VA|EN|NF|NS|EX)(?: .*)? c(\d+)(?: |\r$)", re.M)


def last_cas(reply):
    found = None
    for m in CAS_RE.finditer(reply):
        found = m.group(1) or m.group(2)
    return found


def recv_until(sock, want_suffix, buf, expected=1):
    """Reads into buf until it ends with want_suffix (seen `expected` times),
    the peer closes, the connection is quiet for QUIET_S, or ROW_LIMIT_S
    passes. Returns closed."""
    deadline = time.monotonic() + ROW_LIMIT_S
    while time.monotonic() < deadline:
        quiet = QUIET_S
        if want_suffix and buf.endswith(want_suffix):
            if buf.count(want_suffix) >= expected:
                return False
            # Some of the row's own mn commands may have been taken as data:
            # wait a little for more before taking the reply as complete.
            quiet = STRAGGLER_S
        sock.settimeout(quiet)
        try:
            data = sock.recv(65536)
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True
        if not data:
            return True
        buf += data
    return False


def run_row(port, segments):
    """Sends one row on a fresh connection; returns (reply bytes, closed)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=2)
    reply = bytearray()
    closed = False
    try:
        for i, seg in enumerate(segments):
            last = i == len(segments) - 1
            if b"{CAS}" in seg:
                seg = seg.replace(b"{CAS}", (last_cas(bytes(reply)) or b"0"))
            try:
                sock.sendall(seg + (SENTINEL if last else b""))
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            expected = len(re.findall(rb"(?:^|\n)mn(?:[ \r\n])", b"".join(segments))) + 1
            closed = recv_until(sock, b"MN\r\n" if last else None, reply, expected)
            if closed:
                break
    finally:
        sock.close()
    return bytes(reply), closed


def reset(port):
    sock = socket.create_connection(("127.0.0.1", port), timeout=2)
    sock.sendall(b"flush_all\r\n")
    buf = bytearray()
    recv_until(sock, b"OK\r\n", buf)
    sock.close()


def start_memcached(binary):
    """A private memcached as the rows were recorded: loopback, no UDP, one
    thread; started and stopped by cache_harness.Server."""
    return Server(binary, "-U", "0", "-t", "1")


def record(port, rows):
    out = []
    for name, mode, request in rows:
        reset(port)
        reply, closed = run_row(port, unescape(request))
        out.append((name, mode, request, escape(reply), "1" if closed else "0"))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--memcached", default="/usr/bin/memcached")
    ap.add_argument("--rows", default=ROWS)
    ap.add_argument("--out", default=GOLDEN)
    args = ap.parse_args()
    with start_memcached(args.memcached) as memcached:
        version = subprocess.run([args.memcached, "-V"], capture_output=True, text=True).stdout.strip()
        results = record(memcached.port, read_rows(args.rows))
    with open(args.out, "w", encoding="utf-8") as f:
        f.write("# recorded from %s by tests/cache/record_conformance.py; do not edit\n" % version)
        for r in results:
            f.write("\t".join(r) + "\n")
    print("%d rows recorded from %s into %s" % (len(results), version, args.out))


if __name__ == "__main__":
    sys.exit(main())
