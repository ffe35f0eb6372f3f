"""dhtkit-cache with clients over TLS (-Z and memcached's -o ssl_* options):

- bad command lines and bad certificate files: a message and exit 64 (usage)
  or 1 (a file that cannot be used), never a server that starts half-working;
- pymemcache over TLS: set/get/cas/delete/incr, a 1 MiB value, a multiget,
  meta commands and a deep pipeline on a raw TLS socket;
- ssl_verify_mode=2: a client with a certificate of the CA is served, one
  without a certificate or with one of another CA is refused, and counted in
  stats' ssl_handshake_errors (and the Prometheus metric when built with it);
- a plaintext client on the TLS port (talking, silent past
  --ssl-handshake-timeout, or sending garbage) is closed, counted, and the
  server keeps serving TLS clients meanwhile;
- -t 4 with eight concurrent TLS clients (seeded values, the seed printed);
- what holds for plain connections holds under TLS: -c, --idle-timeout,
  bounded memory for a client that never reads, SIGTERM with TLS clients.

Certificates are made in a temporary directory with the openssl command line
at each run (nothing secret is kept in the repository).

  /usr/bin/python3 tests/cache/tls_test.py --server build/.../dhtkit-cache
  /usr/bin/python3 tests/cache/tls_test.py --server /usr/bin/memcached   # the same checks against memcached -Z
"""

import os
import random
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import cache_harness as h

try:
    from pymemcache.client.base import Client
except ImportError:
    Client = None


class Certs:
    """A CA, the server's certificate (127.0.0.1 and localhost), a client's of the
    same CA, and a client's of another CA, in a temporary directory."""

    def __init__(self, directory):
        self.dir = directory
        self.ca, self.ca_key = self._ca("ca", "dhtkit test CA")
        self.other_ca, self.other_ca_key = self._ca("other_ca", "another CA")
        self.server, self.server_key = self._leaf("server", "localhost", self.ca, self.ca_key,
                                                  "subjectAltName=IP:127.0.0.1,DNS:localhost")
        self.client, self.client_key = self._leaf("client", "client", self.ca, self.ca_key, None)
        self.stranger, self.stranger_key = self._leaf("stranger", "stranger", self.other_ca, self.other_ca_key, None)
        # memcached drops to the user nobody before it reads them.
        os.chmod(directory, 0o755)
        for name in os.listdir(directory):
            os.chmod(os.path.join(directory, name), 0o644)

    def path(self, name):
        return os.path.join(self.dir, name)

    def _run(self, *args):
        p = subprocess.run(["openssl", *args], cwd=self.dir, capture_output=True, timeout=60)
        if p.returncode != 0:
            raise RuntimeError(f"openssl {' '.join(args)}: {p.stderr.decode(errors='replace')}")

    def _key(self, name):
        self._run("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-out", name + ".key")
        return self.path(name + ".key")

    def _ca(self, name, subject):
        key = self._key(name)
        self._run("req", "-x509", "-new", "-key", key, "-subj", "/CN=" + subject, "-days", "2", "-out", name + ".pem")
        return self.path(name + ".pem"), key

    def _leaf(self, name, common_name, ca, ca_key, extension):
        key = self._key(name)
        self._run("req", "-new", "-key", key, "-subj", "/CN=" + common_name, "-out", name + ".csr")
        args = ["x509", "-req", "-in", name + ".csr", "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-days",
                "2", "-out", name + ".pem"]
        if extension:
            with open(self.path(name + ".ext"), "w") as f:
                f.write(extension + "\n")
            args += ["-extfile", name + ".ext"]
        self._run(*args)
        return self.path(name + ".pem"), key


def tls_flags(certs, *extra):
    options = [f"ssl_chain_cert={certs.server}", f"ssl_key={certs.server_key}", *extra]
    return ["-Z", "-o", ",".join(options)]


def client_context(certs, cert=None, key=None):
    """What a careful client does: the server's certificate checked against the CA, and its name."""
    ctx = ssl.create_default_context(cafile=certs.ca)
    if cert:
        ctx.load_cert_chain(cert, key)
    return ctx


def tls_connect(server, ctx, timeout=10.0):
    raw = socket.create_connection(server.address(), timeout=timeout)
    try:
        return ctx.wrap_socket(raw, server_hostname=server.host)
    except BaseException:
        raw.close()
        raise


def tls_version_ok(server, ctx):
    """True if a TLS client with ctx is served a `version`; False if refused in any way."""
    try:
        with tls_connect(server, ctx, timeout=5) as s:
            return h.request(s, b"version\r\n", timeout=5).startswith(b"VERSION ")
    except (OSError, ssl.SSLError, ConnectionError):
        return False


def tls_stats(server, ctx, what=b"stats"):
    with tls_connect(server, ctx) as s:
        return h.parse_stats(h.request(s, what + b"\r\n", (b"END\r\n", b"ERROR\r\n")))


def wait_stat(server, ctx, name, want, timeout=10.0):
    """The stat once it reaches `want` (the server counts asynchronously), or its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = tls_stats(server, ctx).get(name)
        if value == str(want) or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def command_line(c, binary, certs):
    def run(*args):
        return subprocess.run([binary, "-p", "0", *args], capture_output=True, timeout=15)

    p = run("-Z")
    c.equal(p.returncode, 64, "-Z without ssl_chain_cert: exit status")
    c.check(b"ssl_chain_cert" in p.stderr, f"-Z without ssl_chain_cert: the message ({p.stderr!r})")
    p = run("-o", f"ssl_chain_cert={certs.server}")
    c.equal(p.returncode, 64, "-o ssl_* without -Z: exit status")
    p = run("-Z", "-o", f"ssl_chain_cert={certs.server},ssl_verify_mode=2")
    c.equal(p.returncode, 64, "ssl_verify_mode=2 without ssl_ca_cert: exit status")
    p = run("-Z", "-o", f"ssl_chain_cert={certs.server},ssl_verify_mode=7,ssl_ca_cert={certs.ca}")
    c.equal(p.returncode, 64, "ssl_verify_mode=7: exit status")
    p = run("-Z", "-o", f"ssl_chain_cert={certs.server},ssl_keyformat=1")
    c.equal(p.returncode, 64, "an ssl option dhtkit-cache does not take: exit status")

    missing = certs.path("missing.pem")
    p = run("-Z", "-o", f"ssl_chain_cert={missing}")
    c.equal(p.returncode, 1, "a missing certificate file: exit status")
    c.check(missing.encode() in p.stderr and b"No such file" in p.stderr,
            f"a missing certificate file: the message names it ({p.stderr!r})")
    p = run("-Z", "-o", f"ssl_chain_cert={certs.server},ssl_key={certs.client_key}")
    c.equal(p.returncode, 1, "a key that is not the certificate's: exit status")
    c.check(b"ssl_key" in p.stderr, f"a key that is not the certificate's: the message ({p.stderr!r})")
    p = run("-Z", "-o", f"ssl_chain_cert={certs.server_key},ssl_key={certs.server_key}")
    c.equal(p.returncode, 1, "a key file given as the certificate: exit status")
    p = run("-Z", "-o", f"ssl_chain_cert={certs.server},ssl_key={certs.server_key},ssl_ca_cert={missing}")
    c.equal(p.returncode, 1, "a missing CA file: exit status")
    p = run(*tls_flags(certs, "ssl_ciphers=NO-SUCH-CIPHER"))
    c.equal(p.returncode, 1, "an unknown cipher list: exit status")
    p = run("--help")
    for flag in (b"-Z", b"ssl_chain_cert", b"ssl_verify_mode", b"ssl_ca_cert", b"--ssl-handshake-timeout"):
        c.check(flag in p.stdout, f"--help documents {flag.decode()}")


def commands(c, binary, certs):
    with h.Server(binary, "-t", "2", "-I", "2m", *tls_flags(certs)) as server:
        ctx = client_context(certs)
        client = Client(server.address(), tls_context=ctx, connect_timeout=5, timeout=10)
        c.check(client.set("k", b"v1"), "pymemcache over TLS: set")
        c.equal(client.get("k"), b"v1", "pymemcache over TLS: get")
        value, token = client.gets("k")
        c.equal(value, b"v1", "pymemcache over TLS: gets")
        c.check(client.cas("k", b"v2", token), "pymemcache over TLS: cas with the current token")
        c.check(not client.cas("k", b"v3", token), "pymemcache over TLS: cas with a stale token is refused")
        c.equal(client.get("k"), b"v2", "pymemcache over TLS: the value cas wrote")
        c.check(client.delete("k", noreply=False), "pymemcache over TLS: delete")
        c.equal(client.get("k"), None, "pymemcache over TLS: get after delete")
        client.set("n", b"41")
        c.equal(client.incr("n", 1), 42, "pymemcache over TLS: incr")
        big = bytes(random.Random(15).getrandbits(8) for _ in range(1 << 20))
        c.check(client.set("big", big), "pymemcache over TLS: set a 1 MiB value")
        c.check(client.get("big") == big, "pymemcache over TLS: get the 1 MiB value back intact")
        many = {f"m{i}": (b"%d" % i) * (i % 50 + 1) for i in range(200)}
        client.set_many(many)
        c.equal(client.get_many(list(many)), many, "pymemcache over TLS: a 200-key multiget")
        client.close()

        with tls_connect(server, ctx) as s:
            c.equal(h.request(s, b"ms mk 2 T0\r\nhi\r\n"), b"HD\r\n", "meta over TLS: ms")
            c.equal(h.request(s, b"mg mk v\r\n", (b"hi\r\n", b"EN\r\n")),
                    b"VA 2\r\nhi\r\n", "meta over TLS: mg")
            c.equal(h.request(s, b"md mk\r\n"), b"HD\r\n", "meta over TLS: md")
            c.equal(h.request(s, b"mn\r\n"), b"MN\r\n", "meta over TLS: mn")
            # A deep pipeline in one write: the server's records and reads line up.
            pipeline = b"".join(b"mg m%d v\r\n" % i for i in range(200)) + b"mn\r\n"
            reply = h.request(s, pipeline, b"MN\r\n")
            c.equal(reply.count(b"VA "), 200, "meta over TLS: 200 pipelined mg, every reply")
            # Pipelines longer than the server reads per readiness event, cut at
            # every kind of place: a request split over records leaves decrypted
            # bytes inside OpenSSL that the socket's readiness does not show.
            rng = random.Random(3)
            answered = 0
            for round_ in range(12):
                lines = [b"mg %s v\r\n" % (b"k" * rng.randrange(1, 40)) for _ in range(rng.randrange(12000, 30000))]
                try:
                    reply = h.request(s, b"".join(lines) + b"mn\r\n", b"MN\r\n", timeout=10)
                    answered += reply.count(b"EN\r\n") == len(lines)
                except (OSError, ConnectionError):
                    break
            c.equal(answered, 12, "meta over TLS: 12 pipelines of 12,000 to 30,000 requests, every reply")
            # The 1 MiB value read in small pieces: what OpenSSL holds decrypted
            # but unread must still be delivered.
            s.sendall(b"get big\r\n")
            s.settimeout(10)
            got = b""
            while not got.endswith(b"END\r\n"):
                chunk = s.recv(1000)
                if not chunk:
                    break
                got += chunk
            c.check(got.startswith(b"VALUE big 0 1048576\r\n") and got[21:21 + len(big)] == big,
                    "a 1 MiB value read 1000 bytes at a time over TLS")
        st = tls_stats(server, ctx)
        if not h.is_memcached(binary):  # memcached counts the harness's plain probe of its port
            c.equal(st.get("ssl_handshake_errors"), "0", "stats: ssl_handshake_errors, none yet")
        settings = tls_stats(server, ctx, b"stats settings")
        c.equal(settings.get("ssl_enabled"), "yes", "stats settings: ssl_enabled")
        c.equal(settings.get("ssl_verify_mode"), "0", "stats settings: ssl_verify_mode")
        c.equal(settings.get("ssl_min_version"), "tlsv1.2", "stats settings: ssl_min_version")
        if not h.is_memcached(binary):
            c.equal(server.stop(), 0, "TLS commands: exit status after SIGTERM")


def client_certificates(c, binary, certs):
    extra = [] if h.is_memcached(binary) else ["--metrics-port", "0"]
    flags = tls_flags(certs, f"ssl_ca_cert={certs.ca}", "ssl_verify_mode=2")
    try:
        server = h.Server(binary, "-t", "2", *flags, *extra)
    except RuntimeError:
        if not extra:
            raise
        extra = []  # built without prometheus-cpp: --metrics-port is refused
        server = h.Server(binary, "-t", "2", *flags)
    with server:
        good = client_context(certs, certs.client, certs.client_key)
        c.check(tls_version_ok(server, good), "verify_mode=2: a client with a certificate of the CA is served")
        client = Client(server.address(), tls_context=good, connect_timeout=5, timeout=10)
        c.check(client.set("a", b"1") and client.get("a") == b"1",
                "verify_mode=2: pymemcache with a client certificate")
        client.close()
        c.check(not tls_version_ok(server, client_context(certs)),
                "verify_mode=2: a client without a certificate is refused")
        stranger = client_context(certs, certs.stranger, certs.stranger_key)
        c.check(not tls_version_ok(server, stranger), "verify_mode=2: a certificate of another CA is refused")
        # memcached 1.6.18 does not count a refused certificate (seen: its count stays put).
        if not h.is_memcached(binary):
            c.equal(wait_stat(server, good, "ssl_handshake_errors", 2), "2",
                    "verify_mode=2: both refusals counted in ssl_handshake_errors")
        if extra:
            port = int(server.wait_stderr(r"metrics on http://[^:]+:(\d+)/metrics").group(1))
            body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
            c.check(re.search(r"^dhtkit_cache_tls_handshake_errors_total 2(\.0*)?$", body, re.M) is not None,
                    "verify_mode=2: dhtkit_cache_tls_handshake_errors_total is 2")


def plaintext_clients(c, binary, certs):
    timeout_flag = [] if h.is_memcached(binary) else ["--ssl-handshake-timeout", "1"]
    with h.Server(binary, "-t", "2", *tls_flags(certs), *timeout_flag) as server:
        ctx = client_context(certs)
        base = int(tls_stats(server, ctx)["ssl_handshake_errors"])
        tls_client = tls_connect(server, ctx)
        # A plaintext memcached client: its request is no TLS record.
        with server.connect() as plain:
            plain.sendall(b"version\r\n")
            got, closed = h.read_to_eof(plain)
            c.check(closed and not got.startswith(b"VERSION"),
                    f"a plaintext client is closed, never served ({got[:80]!r}, closed={closed})")
        with server.connect() as noise:
            try:
                noise.sendall(random.Random(7).randbytes(64 << 10))
            except OSError:
                pass  # closed while sending: what is wanted
            _, closed = h.read_to_eof(noise)
            c.check(closed, "a client sending 64 KiB of garbage is closed")
        c.check(h.request(tls_client, b"version\r\n").startswith(b"VERSION"),
                "a TLS client connected before is still served")
        c.check(tls_version_ok(server, ctx), "a new TLS client is served after the plaintext ones")
        # memcached 1.6.18 counted one or both of these, varying between runs.
        if not h.is_memcached(binary):
            c.equal(wait_stat(server, ctx, "ssl_handshake_errors", base + 2), str(base + 2),
                    "plaintext clients: counted")
        if timeout_flag:
            # A silent client would pin a connection slot: --ssl-handshake-timeout 1 closes it.
            silent = server.connect()
            start = time.monotonic()
            busy_ok = True
            while time.monotonic() - start < 0.5:  # the server serves others meanwhile
                busy_ok = busy_ok and h.request(tls_client, b"version\r\n").startswith(b"VERSION")
            _, closed = h.read_to_eof(silent, timeout=5.0)
            after = time.monotonic() - start
            silent.close()
            c.check(busy_ok, "a TLS client is served while a silent client waits")
            c.check(closed and 0.8 <= after < 4.0,
                    f"a silent client is closed after --ssl-handshake-timeout 1 ({after:.2f} s, closed={closed})")
            c.equal(wait_stat(server, ctx, "ssl_handshake_errors", base + 3), str(base + 3),
                    "the silent client: counted")
        tls_client.close()


def threads(c, binary, certs):
    seed = int(os.environ.get("DHTKIT_TEST_SEED", random.randrange(1 << 32)))
    with h.Server(binary, "-t", "4", *tls_flags(certs)) as server:
        ctx = client_context(certs)
        failures = []

        def worker(index):
            rng = random.Random(seed * 100 + index)
            try:
                client = Client(server.address(), tls_context=ctx, connect_timeout=5, timeout=20)
                mine = {}
                for i in range(150):
                    key = f"t{index}-{rng.randrange(40)}"
                    if rng.random() < 0.5:
                        value = rng.randbytes(rng.choice((1, 100, 5000, 70000)))
                        if not client.set(key, value, noreply=False):
                            failures.append(f"client {index}: set {key} not stored")
                        mine[key] = value
                    elif client.get(key) != mine.get(key):
                        failures.append(f"client {index}: get {key} is not what it set")
                client.close()
            except Exception as e:  # noqa: BLE001 - any failure of a client thread is a test failure
                failures.append(f"client {index}: {e!r}")

        workers = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        for t in workers:
            t.start()
        for t in workers:
            t.join(60)
        c.check(not any(t.is_alive() for t in workers), f"-t 4: eight TLS clients finish within 60 s (seed {seed})")
        c.check(not failures, f"-t 4: eight concurrent TLS clients read what they wrote (seed {seed}): {failures[:3]}")
        if not h.is_memcached(binary):
            c.equal(tls_stats(server, ctx).get("ssl_handshake_errors"), "0", "-t 4: no handshake failed")


def limits(c, binary, certs):
    ctx = client_context(certs)
    with h.Server(binary, "-t", "2", "-c", "3", *tls_flags(certs)) as server:
        clients = [tls_connect(server, ctx) for _ in range(3)]
        for i, s in enumerate(clients):
            c.check(h.request(s, b"version\r\n").startswith(b"VERSION"), f"-c 3 under TLS: client {i + 1} served")
        c.check(not tls_version_ok(server, ctx), "-c 3 under TLS: a fourth TLS client is refused")
        c.equal(h.stats(clients[0]).get("rejected_connections"), "1", "-c 3 under TLS: counted as rejected")
        clients.pop().close()
        deadline = time.monotonic() + 10
        while not tls_version_ok(server, ctx) and time.monotonic() < deadline:
            time.sleep(0.05)
        c.check(time.monotonic() < deadline, "-c 3 under TLS: a freed slot serves a new TLS client")
        # Graceful stop with TLS clients connected.
        server.signal(signal.SIGTERM)
        try:
            c.equal(server.wait(10), 0, "SIGTERM with TLS clients connected: exit status")
        except subprocess.TimeoutExpired:
            c.check(False, "SIGTERM with TLS clients connected: the server stops within 10 s")
        for s in clients:
            s.close()

    with h.Server(binary, "-t", "2", "--idle-timeout", "1", *tls_flags(certs)) as server:
        idle = tls_connect(server, ctx)
        c.check(h.request(idle, b"version\r\n").startswith(b"VERSION"), "idle timeout under TLS: served first")
        start = time.monotonic()
        _, closed = h.read_to_eof(idle, timeout=6.0)
        after = time.monotonic() - start
        c.check(closed and after >= 0.8, f"--idle-timeout 1 under TLS: the idle client is closed ({after:.2f} s)")
        idle.close()

    with h.Server(binary, "-t", "1", "-m", "64", *tls_flags(certs)) as server:
        with tls_connect(server, ctx) as s:
            value = b"v" * (512 * 1024)
            c.equal(h.request(s, b"set big 0 0 %d\r\n" % len(value) + value + b"\r\n"), b"STORED\r\n",
                    "slow TLS reader: set a 512 KiB value")
        base = server.rss_kib()
        slow = tls_connect(server, ctx)
        slow.settimeout(2.0)
        sent = 0
        try:
            while sent < 256 << 20:
                sent += slow.send(b"get big\r\n" * 1000)
        except (socket.timeout, ssl.SSLError, OSError):
            pass
        grown = server.rss_kib() - base
        c.check(sent < 64 << 20, f"slow TLS reader: the server stopped reading ({sent} bytes of requests taken)")
        c.check(grown < 16 * 1024, f"slow TLS reader: server RSS grew {grown} KiB (bound 16 MiB)")
        c.check(tls_version_ok(server, ctx), "slow TLS reader: other TLS clients are still served")
        slow.close()


def main():
    args = h.parse_args(__doc__)
    if Client is None:
        h.skip("pymemcache not installed (Debian: python3-pymemcache)")
    if shutil.which("openssl") is None:
        h.skip("openssl not installed (Debian: openssl)")
    if not h.is_memcached(args.server):
        probe = subprocess.run([args.server, "-p", "0", "-Z"], capture_output=True, timeout=15)
        if b"built without OpenSSL" in probe.stderr:
            h.skip("this dhtkit-cache was built without OpenSSL (Debian: libssl-dev)")
    c = h.Checks()
    with tempfile.TemporaryDirectory(prefix="dhtkit-tls-") as directory:
        certs = Certs(directory)
        memcached = h.is_memcached(args.server)
        if not memcached:
            command_line(c, args.server, certs)
        commands(c, args.server, certs)
        client_certificates(c, args.server, certs)
        plaintext_clients(c, args.server, certs)
        threads(c, args.server, certs)
        if not memcached:
            limits(c, args.server, certs)
    return c.finish("tls")


if __name__ == "__main__":
    sys.exit(main())
