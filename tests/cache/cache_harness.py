"""Starts a dhtkit-cache (or, to check a test against the reference, Debian's
memcached) for one test, and stops it whatever happens.

dhtkit-cache is started with -p 0 and prints "dhtkit-cache: listening on
HOST:PORT" on stderr; the harness waits for that line with a deadline. memcached
cannot pick a port, so it gets a free one and the harness waits until it accepts
a connection, again with a deadline. Nothing here sleeps blindly.

Tests are run by Debian's /usr/bin/python3 (python3-pymemcache); a test whose
tools are missing exits 77, which CTest reports as skipped -- except under CI
(CI=true), where .ci installs every tool, so a missing one is a failure, not a
test that quietly ran nothing.
"""

import argparse
import os
import re
import select
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time

SKIP = 77
LISTENING = re.compile(rb"listening on (\S+):(\d+)")


def parse_args(description):
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--server", required=True,
                        help="the dhtkit-cache binary (or memcached, to check the test against the reference)")
    return parser.parse_args()


def skip(reason):
    if os.environ.get("CI") == "true":
        print(f"FAIL (CI installs every tool): {reason}")
        sys.exit(1)
    print(f"SKIP: {reason}")
    sys.exit(SKIP)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def is_memcached(binary):
    return os.path.basename(binary) == "memcached"


class Server:
    """A running server: .port, .pid, .stderr_text(), .stop() -> exit status.

    wrapper: a command that execs the server in its place (the fault tests' `ip netns exec NS`,
    so .pid is still the server's); host: the address clients reach it at (its -l)."""

    def __init__(self, binary, *args, start_timeout=15.0, wrapper=(), host="127.0.0.1"):
        self.binary = binary
        self.host = host
        self._stderr = []
        # A condition, not a bare lock: wait_stderr() sleeps until the drain
        # thread brings more output (or the end of it), not on a clock.
        self._stderr_lock = threading.Condition()
        self._stderr_closed = False
        self.proc = None
        if is_memcached(binary):
            self.port = free_port()
            extra = ["-u", "nobody"] if os.geteuid() == 0 else []
            # memcached's flags, minus dhtkit-cache's own.
            args = [a for a in args if not a.startswith("--idle-timeout")]
            self.proc = subprocess.Popen([binary, "-l", self.host, "-p", str(self.port), *extra, *args],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            self._drain()
            self._wait_connectable(start_timeout)
        else:
            self.proc = subprocess.Popen([*wrapper, binary, "-p", "0", *args], stdout=subprocess.DEVNULL,
                                         stderr=subprocess.PIPE)
            self.port = self._wait_listening(start_timeout)
            self._drain()
        self.pid = self.proc.pid

    def _wait_listening(self, timeout):
        deadline = time.monotonic() + timeout
        buffered = b""
        fd = self.proc.stderr.fileno()
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            buffered += chunk
            match = LISTENING.search(buffered)
            if match:
                with self._stderr_lock:
                    self._stderr.append(buffered)
                return int(match.group(2))
        with self._stderr_lock:
            self._stderr.append(buffered)
        self.kill()
        raise RuntimeError(f"server did not print its listening line within {timeout} s; stderr: {buffered!r}")

    def _wait_connectable(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.stderr_text()}")
            try:
                socket.create_connection((self.host, self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"server did not accept connections within {timeout} s")

    def _drain(self):
        # Keeps reading stderr so a chatty server never blocks on a full pipe.
        def run():
            while True:
                chunk = self.proc.stderr.read1(4096) if hasattr(self.proc.stderr, "read1") else b""
                with self._stderr_lock:
                    if chunk:
                        self._stderr.append(chunk)
                    else:
                        self._stderr_closed = True
                    self._stderr_lock.notify_all()
                if not chunk:
                    return

        threading.Thread(target=run, daemon=True).start()

    def stderr_text(self):
        with self._stderr_lock:
            return b"".join(self._stderr).decode(errors="replace")

    def wait_stderr(self, pattern, timeout=15.0):
        """The first match of the regex `pattern` in stderr, waiting at most `timeout` seconds for it."""
        found = []

        def ready():
            found[:] = [re.search(pattern, b"".join(self._stderr).decode(errors="replace"))]
            return found[0] is not None or self._stderr_closed

        with self._stderr_lock:
            self._stderr_lock.wait_for(ready, timeout)
        if found and found[0] is not None:
            return found[0]
        raise RuntimeError(f"no {pattern!r} on stderr within {timeout} s: {self.stderr_text()!r}")

    def address(self):
        return (self.host, self.port)

    def servers_arg(self):
        return f"--servers={self.host}:{self.port}"

    def connect(self, timeout=10.0):
        return socket.create_connection(self.address(), timeout=timeout)

    def rss_kib(self):
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def signal(self, signum):
        self.proc.send_signal(signum)

    def wait(self, timeout=15.0):
        return self.proc.wait(timeout=timeout)

    def stop(self, timeout=15.0):
        """SIGTERM, then the exit status (SIGKILL if it does not stop in time)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill()
        return False


def request(sock, data, until=b"\r\n", timeout=10.0):
    """Sends data, reads until the reply ends with `until` (bytes or a tuple of them); the reply."""
    sock.sendall(data)
    return read_until(sock, until, timeout)


def read_until(sock, until, timeout=10.0):
    sock.settimeout(timeout)
    endings = until if isinstance(until, tuple) else (until,)
    got = b""
    while not got.endswith(endings):
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {got[-200:]!r}")
        got += chunk
    return got


def read_to_eof(sock, timeout=5.0):
    """What arrives until the server closes: (bytes, closed?). A reset (or, on a TLS
    socket, an SSL error) after data counts as closed; running out of time does not."""
    sock.settimeout(timeout)
    got = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return got, True
            got += chunk
    except (ConnectionResetError, ssl.SSLError):
        return got, True
    except socket.timeout:
        return got, False


def parse_stats(reply):
    """A stats reply's STAT lines as {name: value}."""
    result = {}
    for line in reply.split(b"\r\n"):
        parts = line.split(b" ", 2)
        if len(parts) == 3 and parts[0] == b"STAT":
            result[parts[1].decode()] = parts[2].decode()
    return result


def stats(sock):
    return parse_stats(request(sock, b"stats\r\n", (b"END\r\n", b"ERROR\r\n")))


def require_tools(*names):
    for name in names:
        if shutil.which(name) is None:
            skip(f"{name} not installed (Debian: libmemcached-tools)")


def _short(value, limit=200):
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


class Checks:
    """Collects failures so one run reports every one of them."""

    def __init__(self):
        self.failures = []
        self.count = 0

    def check(self, condition, what):
        self.count += 1
        if not condition:
            self.failures.append(what)
            print(f"FAIL: {what}", flush=True)

    def equal(self, got, want, what):
        self.check(got == want, f"{what}: got {_short(got)}, want {_short(want)}")

    def finish(self, name):
        if self.failures:
            print(f"{name}: {len(self.failures)} of {self.count} checks failed")
            return 1
        print(f"{name}: all {self.count} checks passed")
        return 0
