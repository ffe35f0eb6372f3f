"""dhtkit-cache against a real client library: pymemcache (Debian python3-pymemcache).

Every storage and retrieval command through pymemcache's own API, with and
without noreply, large values and binary-safe values holding \\r\\n.

  /usr/bin/python3 tests/cache/pymemcache_test.py --server build/.../dhtkit-cache
"""

import sys

import cache_harness as h

try:
    from pymemcache.client.base import Client
    from pymemcache.exceptions import MemcacheServerError, MemcacheClientError
except ImportError:
    h.skip("pymemcache not installed (Debian: python3-pymemcache)")


def main():
    args = h.parse_args(__doc__)
    c = h.Checks()
    with h.Server(args.server, "-t", "2") as server:
        mc = Client(server.address(), connect_timeout=5, timeout=10, default_noreply=False)
        try:
            run(mc, c, server)
        finally:
            mc.close()
        c.equal(server.stop(), 0, "exit status after SIGTERM")
    return c.finish("pymemcache")


def run(mc, c, server):
    # set / get
    c.equal(mc.set("k1", b"v1"), True, "set")
    c.equal(mc.get("k1"), b"v1", "get")
    c.equal(mc.get("missing"), None, "get of a missing key")
    c.equal(mc.set("flagged", b"x", flags=0xFFFFFFFF), True, "set with 32-bit flags")
    c.equal(mc.get("flagged"), b"x", "get of a flagged item")
    # flags come back as set: raw command through pymemcache's _fetch_cmd is private, use gets'
    # sibling: the raw socket below.

    # gets / cas
    value, cas = mc.gets("k1")
    c.equal(value, b"v1", "gets value")
    c.check(cas is not None and int(cas) > 0, f"gets cas unique {cas!r}")
    c.equal(mc.cas("k1", b"v2", cas), True, "cas with the current unique")
    c.equal(mc.cas("k1", b"v3", cas), False, "cas with a stale unique (EXISTS)")
    c.equal(mc.get("k1"), b"v2", "value after cas")
    c.equal(mc.cas("nope", b"v", 12345), None, "cas of a missing key (NOT_FOUND)")
    _, cas2 = mc.gets("k1")
    c.check(cas2 != cas, "cas unique changes on write")

    # add / replace
    c.equal(mc.add("k1", b"other"), False, "add of an existing key")
    c.equal(mc.add("k2", b"new"), True, "add of a new key")
    c.equal(mc.replace("k3", b"x"), False, "replace of a missing key")
    c.equal(mc.replace("k2", b"replaced"), True, "replace of an existing key")
    c.equal(mc.get("k2"), b"replaced", "value after replace")

    # append / prepend
    c.equal(mc.append("k2", b"-tail"), True, "append")
    c.equal(mc.prepend("k2", b"head-"), True, "prepend")
    c.equal(mc.get("k2"), b"head-replaced-tail", "value after append and prepend")
    c.equal(mc.append("missing", b"x"), False, "append to a missing key")
    c.equal(mc.prepend("missing", b"x"), False, "prepend to a missing key")

    # incr / decr
    mc.set("n", b"10")
    c.equal(mc.incr("n", 5), 15, "incr")
    c.equal(mc.decr("n", 3), 12, "decr")
    c.equal(mc.decr("n", 100), 0, "decr stops at 0")
    mc.set("big", str(2**64 - 1).encode())
    c.equal(mc.incr("big", 1), 0, "incr wraps at 2^64")
    c.equal(mc.incr("missing", 1), None, "incr of a missing key")
    mc.set("text", b"abc")
    try:
        mc.incr("text", 1)
        c.check(False, "incr of a non-numeric value raises")
    except (MemcacheClientError, MemcacheServerError) as e:
        c.check("non-numeric" in str(e), f"incr of a non-numeric value: {e}")

    # touch / delete
    c.equal(mc.touch("k1", 100), True, "touch of an existing key")
    c.equal(mc.touch("missing", 100), False, "touch of a missing key")
    c.equal(mc.delete("k1"), True, "delete")
    c.equal(mc.delete("k1"), False, "delete of a missing key")
    c.equal(mc.get("k1"), None, "get after delete")

    # expiry: negative exptime is already expired
    mc.set("gone", b"x", expire=-1)
    c.equal(mc.get("gone"), None, "negative exptime: already expired")

    # get_many
    mc.set_many({"m1": b"1", "m2": b"2", "m3": b"3"})
    c.equal(mc.get_many(["m1", "m2", "m3", "m4"]), {"m1": b"1", "m2": b"2", "m3": b"3"}, "get_many")
    c.equal(mc.gets_many(["m1"])["m1"][0], b"1", "gets_many")

    # noreply: the command acts, nothing comes back (the next reply is the next command's)
    c.equal(mc.set("quiet", b"q", noreply=True), True, "set noreply")
    c.equal(mc.add("quiet2", b"q2", noreply=True), True, "add noreply")
    mc.incr("n", 1, noreply=True)
    mc.delete("m3", noreply=True)
    c.equal(mc.get("quiet"), b"q", "value stored with noreply")
    c.equal(mc.get("quiet2"), b"q2", "value added with noreply")
    # (memcached pads a value that shrank in place with spaces: "12" decremented to 0 reads "0 ")
    c.equal((mc.get("n") or b"").rstrip(b" "), b"1", "incr noreply acted")
    c.equal(mc.get("m3"), None, "delete noreply acted")

    # large values, up to the 1 MiB item limit (key + value + header)
    large = bytes(range(256)) * (1000 * 1024 // 256)
    c.equal(mc.set("large", large), True, "set of a 1000 KiB value")
    c.equal(mc.get("large"), large, "get of a 1000 KiB value")
    try:
        mc.set("huge", b"x" * (2 << 20))
        c.check(False, "set of a 2 MiB value fails")
    except MemcacheServerError as e:
        c.check("too large" in str(e), f"set of a 2 MiB value: {e}")
    c.equal(mc.get("huge"), None, "a too-large value is not stored")

    # binary-safe values: every byte, \r\n inside, a value that looks like a reply
    binary = b"\r\nEND\r\n\x00\xff" + bytes(range(256)) + b"\r\n"
    c.equal(mc.set("bin", binary), True, "set of a binary value")
    c.equal(mc.get("bin"), binary, "get of a binary value")
    c.equal(mc.get_many(["bin", "k2"]), {"bin": binary, "k2": b"head-replaced-tail"}, "get_many with binary")
    c.equal(mc.set("empty", b""), True, "set of an empty value")
    c.equal(mc.get("empty"), b"", "get of an empty value")

    # stats, version
    st = mc.stats()
    for field in (b"pid", b"uptime", b"curr_items", b"total_items", b"bytes", b"curr_connections",
                  b"get_hits", b"get_misses", b"evictions", b"limit_maxbytes", b"threads"):
        c.check(field in st, f"stats has {field.decode()}")
    c.check(st.get(b"get_hits", 0) > 0, "stats get_hits counted")
    c.equal(st.get(b"limit_maxbytes"), 64 << 20, "stats limit_maxbytes is -m")
    c.equal(st.get(b"pid"), server.pid, "stats pid")
    version = mc.version()
    c.check(version.startswith(b"1.6"), f"version is 1.6-style: {version!r}")

    # flush_all
    c.equal(mc.flush_all(), True, "flush_all")
    c.equal(mc.get("k2"), None, "get after flush_all")
    c.equal(mc.get_many(["m1", "bin"]), {}, "get_many after flush_all")
    c.equal(mc.set("after", b"x"), True, "set after flush_all")
    c.equal(mc.get("after"), b"x", "get after flush_all and set")

    # a second client sees the first one's writes
    other = Client(server.address(), connect_timeout=5, timeout=10)
    try:
        c.equal(other.get("after"), b"x", "a second connection sees the write")
    finally:
        other.close()

    # flags come back exactly (raw socket: pymemcache's serde hides them)
    with server.connect() as s:
        h.request(s, b"set f 4294967295 0 1\r\nz\r\n")
        reply = h.request(s, b"get f\r\n", b"END\r\n")
        c.equal(reply, b"VALUE f 4294967295 1\r\nz\r\nEND\r\n", "flags round-trip")


if __name__ == "__main__":
    sys.exit(main())
