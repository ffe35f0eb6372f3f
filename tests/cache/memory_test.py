"""dhtkit-cache under -m 64: loading far more than 64 MB of 100-byte items evicts,
the store's byte count stays within the limit, and the process's resident
memory (VmRSS, /proc/PID/status) stays within the limit plus a stated overhead.

The overhead allowed over -m is OVERHEAD_MIB: what the process holds before any
item is stored (the binary, libc, thread stacks touched, the store's empty
index: a few MiB, measured and printed below), per-connection and per-thread
buffers (64 KiB read buffer per worker, up to 1 MiB of output per connection
while replies are written) and malloc's own free lists and fragmentation, which
the store's count of allocator bytes does not see.

  /usr/bin/python3 tests/cache/memory_test.py --server build/.../dhtkit-cache
"""

import sys
import time

import cache_harness as h

LIMIT_MIB = 64
OVERHEAD_MIB = 16
ITEMS = 1_200_000  # 100-byte values: about 134 MB of keys and values, twice the limit
VALUE = b"x" * 100
BATCH = 2000


def load(sock, first, count):
    """Stores keys first..first+count-1 in pipelined batches; the number of STORED replies."""
    stored = 0
    for start in range(first, first + count, BATCH):
        n = min(BATCH, first + count - start)
        sock.sendall(b"".join(b"set key:%08d 0 0 100\r\n%s\r\n" % (i, VALUE) for i in range(start, start + n)))
        replies = b""
        sock.settimeout(30)
        while replies.count(b"\r\n") < n:
            chunk = sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("server closed during the load")
            replies += chunk
        stored += replies.count(b"STORED\r\n")
    return stored


def main():
    args = h.parse_args(__doc__)
    c = h.Checks()
    with h.Server(args.server, "-m", str(LIMIT_MIB), "-t", "2") as server:
        start_rss = server.rss_kib()
        with server.connect(timeout=30) as s:
            began = time.monotonic()
            stored = load(s, 0, ITEMS)
            took = time.monotonic() - began
            c.equal(stored, ITEMS, "every set answered STORED (evicting, not failing)")
            st = h.stats(s)
            rss = server.rss_kib()
            print(f"loaded {ITEMS} items of 100 bytes in {took:.1f} s; RSS at start {start_rss} KiB, "
                  f"after {rss} KiB; stats: curr_items {st.get('curr_items')} bytes {st.get('bytes')} "
                  f"limit_maxbytes {st.get('limit_maxbytes')} evictions {st.get('evictions')}")
            limit = LIMIT_MIB << 20
            c.equal(int(st.get("limit_maxbytes", -1)), limit, "limit_maxbytes is -m")
            c.check(int(st.get("evictions", 0)) > 0, "loading past -m evicts")
            c.check(0 < int(st.get("bytes", -1)) <= limit, f"bytes {st.get('bytes')} within -m {limit}")
            c.check(int(st.get("curr_items", ITEMS)) < ITEMS, "fewer items kept than stored")
            c.check(int(st.get("curr_items", 0)) > ITEMS // 8, f"a fair share kept: {st.get('curr_items')} items")
            c.check(rss <= (LIMIT_MIB + OVERHEAD_MIB) * 1024,
                    f"RSS {rss} KiB within -m {LIMIT_MIB} MiB plus {OVERHEAD_MIB} MiB overhead")

            # LRU: the newest keys are there, the oldest are gone.
            newest = b" ".join(b"key:%08d" % i for i in range(ITEMS - 100, ITEMS))
            reply = h.request(s, b"get " + newest + b"\r\n", b"END\r\n", timeout=30)
            c.equal(reply.count(b"VALUE "), 100, "the 100 newest keys are all there")
            oldest = b" ".join(b"key:%08d" % i for i in range(0, 100))
            reply = h.request(s, b"get " + oldest + b"\r\n", b"END\r\n", timeout=30)
            c.equal(reply.count(b"VALUE "), 0, "the 100 oldest keys were evicted")

            # A second pass over new keys: memory does not creep up as eviction goes on.
            load(s, ITEMS, ITEMS // 2)
            rss2 = server.rss_kib()
            st = h.stats(s)
            print(f"after another {ITEMS // 2} items: RSS {rss2} KiB, bytes {st.get('bytes')}")
            c.check(int(st.get("bytes", -1)) <= limit, "bytes still within -m after a second load")
            c.check(rss2 <= (LIMIT_MIB + OVERHEAD_MIB) * 1024,
                    f"RSS {rss2} KiB still within the bound after a second load")
        c.equal(server.stop(), 0, "exit status after SIGTERM")
    return c.finish("memory")


if __name__ == "__main__":
    sys.exit(main())
