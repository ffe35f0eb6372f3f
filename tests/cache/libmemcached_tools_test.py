"""dhtkit-cache against libmemcached's command-line tools (Debian libmemcached-tools):
memccp, memccat, memcrm, memcstat and a short memcslap run.

  /usr/bin/python3 tests/cache/libmemcached_tools_test.py --server build/.../dhtkit-cache
"""

import os
import subprocess
import sys
import tempfile

import cache_harness as h

TOOLS = ("memccp", "memccat", "memcrm", "memcstat", "memcslap")


def tool(c, *argv, timeout=30, want_rc=0):
    try:
        p = subprocess.run(argv, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        c.check(False, f"{' '.join(argv)}: timed out after {timeout} s")
        return b""
    c.check(p.returncode == want_rc,
            f"{' '.join(argv)}: exit {p.returncode}, want {want_rc}; stderr {p.stderr[-300:]!r}")
    return p.stdout


def main():
    args = h.parse_args(__doc__)
    h.require_tools(*TOOLS)
    c = h.Checks()
    with h.Server(args.server, "-t", "2") as server, tempfile.TemporaryDirectory() as tmp:
        servers = server.servers_arg()
        # memccp stores each file under its base name; memccat prints it back, plus a newline.
        text = os.path.join(tmp, "greeting.txt")
        with open(text, "wb") as f:
            f.write(b"hello from memccp\r\nsecond line\n")
        binary = os.path.join(tmp, "blob.bin")
        blob = bytes(range(256)) * 1024  # 256 KiB, every byte value
        with open(binary, "wb") as f:
            f.write(blob)
        tool(c, "memccp", servers, text, binary)
        c.equal(tool(c, "memccat", servers, "greeting.txt"), b"hello from memccp\r\nsecond line\n\n",
                "memccat of a text file")
        c.equal(tool(c, "memccat", servers, "blob.bin"), blob + b"\n", "memccat of a binary file")
        # memccp --add refuses an existing key; --replace refuses a missing one.
        tool(c, "memccp", servers, "--add", text, want_rc=1)
        tool(c, "memcrm", servers, "greeting.txt")
        tool(c, "memccat", servers, "greeting.txt", want_rc=1)
        tool(c, "memcrm", servers, "greeting.txt", want_rc=1)

        out = tool(c, "memcstat", servers)
        for field in (b"pid", b"uptime", b"curr_items", b"bytes", b"curr_connections", b"version"):
            c.check(field in out, f"memcstat output names {field.decode()}")
        c.check(str(server.pid).encode() in out, "memcstat shows the server's pid")

        # memcslap: a short load of sets, then gets and multi-gets, from 4 threads.
        for test in ("set", "get", "mget"):
            out = tool(c, "memcslap", servers, "--concurrency=4", "--execute-number=2000", f"--test={test}",
                       timeout=60)
            c.check(b"Took" in out or b"seconds" in out, f"memcslap --test={test} reports a time: {out[-200:]!r}")
        out = tool(c, "memcstat", servers)
        c.check(b"cmd_get" in out, "memcstat after memcslap")

        c.equal(server.stop(), 0, "exit status after SIGTERM")
    return c.finish("libmemcached_tools")


if __name__ == "__main__":
    sys.exit(main())
