#!/usr/bin/python3
"""dhtkit-cache nodes over mutual TLS (--cluster-tls-cert/-key/-ca).

Certificates are made here, with the openssl command line, in a temporary
directory (never committed): a cluster CA, a certificate per node naming it
(subjectAltName DNS:n<i>), and an intruder's certificate from another CA.

  1. The flags: only some of the three is a usage error (exit 64); a --name
     the certificate does not carry, or a certificate from another CA than
     --cluster-tls-ca, stops the node at start with a message naming the cause.
  2. Three TLS nodes serve large values (over the 1400-byte datagram, so they
     travel on the TLS stream lane): each set through one node is read through
     every node; no node counted a TLS refusal.
  3. An intruder with a certificate from another CA: gossip (the packet lane)
     is not TLS's to guard, so it is admitted to the membership, but none of its
     writes of large values reaches a cluster node, and the cluster nodes
     count its attempts (cluster_tls_* in `stats cluster`). Once it is gone,
     every value written in step 2 is still read through every node.

  /usr/bin/python3 tests/cache/cluster_tls_test.py --server .../dhtkit-cache
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cache_harness as h  # noqa: E402
import cluster_harness as ch  # noqa: E402

Client, errors = ch.pymemcache_or_skip()

# Each write through the intruder waits for the cluster's request timeout
# (about a second) before its SERVER_ERROR: a few make the point.
INTRUDER_WRITES = 5
TLS_COUNTERS = ("cluster_tls_handshake_failures", "cluster_tls_outbound_handshake_failures",
                "cluster_tls_peer_name_mismatches", "cluster_tls_frames_refused")


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def make_ca(d, name):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "1", "-subj", f"/CN={name}",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            cwd=d)
    return os.path.join(d, f"{name}.pem")


def make_cert(d, ca, name):
    """Key and certificate for node `name` signed by CA `ca`; (cert, key) paths."""
    with open(os.path.join(d, f"{name}.ext"), "w") as f:
        f.write(f"subjectAltName=DNS:{name}\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE\n")
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=d)
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key", "-CAcreateserial",
            "-out", f"{name}.pem", "-days", "1", "-extfile", f"{name}.ext", cwd=d)
    return os.path.join(d, f"{name}.pem"), os.path.join(d, f"{name}.key")


def tls_args(cert, key, ca):
    return ["--cluster-tls-cert", cert, "--cluster-tls-key", key, "--cluster-tls-ca", ca]


def run_to_exit(binary, args, timeout=20):
    """Runs dhtkit-cache expecting it to stop by itself: (exit status, stderr)."""
    p = subprocess.run([binary, "-p", "0", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       timeout=timeout)
    return p.returncode, p.stderr.decode(errors="replace")


def check_flags(binary, d, ca, certs, other_cert):
    port = str(ch.free_cluster_port())
    base = ["-l", ch.HOST, "--cluster-port", port, "--cluster-profile", "local"]
    cert, key = certs["n0"]
    status, err = run_to_exit(binary, base + ["--name", "n0", "--cluster-tls-cert", cert])
    assert status == 64 and "all three or none" in err, (status, err)
    status, err = run_to_exit(binary, base + ["--name", "n9", *tls_args(cert, key, ca)])
    assert status == 1 and "--name n9 is not a name of --cluster-tls-cert" in err and "(it names n0)" in err, \
        (status, err)
    other_cert_path, other_key = other_cert
    status, err = run_to_exit(binary, base + ["--name", "intruder", *tls_args(other_cert_path, other_key, ca)])
    assert status == 1 and "does not verify against" in err, (status, err)
    print("flags: a partial set is a usage error; a wrong name or CA stops the node with its cause")


def value_of(i, size):
    return (f"v{i}:".encode() + bytes((i * 7 + j) % 251 for j in range(size)))[:size]


def client(node):
    return Client(node.address(), connect_timeout=2, timeout=5)


def tls_counts(cluster, names):
    snap = cluster.snapshot()
    return {name: {k[len("cluster_tls_"):]: int(snap[name].get(k, "0")) for k in TLS_COUNTERS} for name in names}


def main():
    args = h.parse_args(__doc__)
    if h.is_memcached(args.server):
        h.skip("a dhtkit-cache cluster test")
    if shutil.which("openssl") is None:
        h.skip("the openssl command is not installed (Debian: openssl)")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="dhtkit-tls-") as d:
        ca = make_ca(d, "cluster-ca")
        make_ca(d, "other-ca")
        certs = {f"n{i}": make_cert(d, "cluster-ca", f"n{i}") for i in range(3)}
        intruder = make_cert(d, "other-ca", "intruder")
        # The intruder trusts both CAs: it can check the cluster's servers, so
        # each refusal is a cluster node's (and counted there).
        both = os.path.join(d, "both-cas.pem")
        with open(both, "w") as out:
            for f in ("other-ca.pem", "cluster-ca.pem"):
                out.write(open(os.path.join(d, f)).read())

        help_text = subprocess.run([args.server, "--help"], capture_output=True, text=True).stdout
        if "not in this build" in help_text and "--cluster-tls-cert" in help_text:
            h.skip("dhtkit-cache was built without OpenSSL (--cluster-tls-* refused)")
        check_flags(args.server, d, ca, certs, intruder)

        def node_args(name):
            if name == "intruder":
                return tls_args(*intruder, both)
            return tls_args(*certs[name], ca)

        with ch.Cluster(args.server, 3, node_args=node_args) as cluster:
            cluster.wait_settled()
            print(f"3 TLS nodes up and settled at {time.monotonic() - started:.1f} s")
            names = [n.name for n in cluster.nodes]
            sizes = [1500, 5000, 20000, 100000, 300000]
            written = {}
            for i, size in enumerate(sizes * 3):
                key = f"big:{i}"
                via = cluster.nodes[i % 3]
                value = value_of(i, size)
                c = client(via)
                assert c.set(key, value, noreply=False), f"set {key} ({size} B) through {via.name} failed"
                c.close()
                written[key] = value
            for node in cluster.nodes:
                c = client(node)
                for key, value in written.items():
                    got = c.get(key)
                    assert got == value, f"{key} through {node.name}: {len(got or b'')} B, wanted {len(value)} B"
                c.close()
            counts = tls_counts(cluster, names)
            for name in names:
                assert all(v == 0 for v in counts[name].values()), f"TLS refusals in a healthy cluster: {counts}"
            assert all(cluster.snapshot()[n]["cluster_tls"] == "on" for n in names)
            print(f"{len(written)} large values ({min(sizes)}..{max(sizes)} B) set through one node, read "
                  f"through all 3 over TLS")

            # The intruder: admitted by gossip, refused on the stream lane.
            bad = cluster.add("intruder")
            cluster.wait_members(4)
            phase = time.monotonic()
            refused_writes = 0
            c = client(bad)
            for i in range(INTRUDER_WRITES):
                try:
                    ok = c.set(f"intruder:{i}", value_of(1000 + i, 8000), noreply=False)
                except errors.MemcacheError:
                    ok = False
                refused_writes += not ok
            c.close()
            assert refused_writes == INTRUDER_WRITES, \
                f"{INTRUDER_WRITES - refused_writes} of {INTRUDER_WRITES} large writes through the intruder succeeded"
            print(f"intruder: {INTRUDER_WRITES} large writes refused in {time.monotonic() - phase:.1f} s")

            deadline = time.monotonic() + 10
            while (min(sum(v.values()) for v in tls_counts(cluster, names).values()) == 0
                   and time.monotonic() < deadline):
                time.sleep(0.1)
            counts = tls_counts(cluster, names)
            print("TLS refusals counted by the cluster's nodes:",
                  "; ".join(f"{n}: " + " ".join(f"{k}={v}" for k, v in counts[n].items()) for n in names))
            # Each cluster node dialed the intruder (a handoff of the ranges it
            # gained, a replica, a forwarded command) or was dialed by it.
            for name in names:
                assert sum(counts[name].values()) > 0, f"{name} counted none of the intruder's attempts: {counts}"
            assert sum(counts[n]["handshake_failures"] for n in names) > 0, counts

            # No intruder value is readable through a cluster node (a miss, or
            # an error while the intruder coordinates the key; never its value).
            for node in cluster.nodes[:3]:
                c = client(node)
                for i in range(INTRUDER_WRITES):
                    try:
                        got = c.get(f"intruder:{i}")
                    except errors.MemcacheError:
                        got = None
                    assert got is None, f"intruder:{i} readable through {node.name}"
                c.close()

            phase = time.monotonic()
            cluster.kill9(3)
            cluster.wait_settled(3, timeout=40)
            print(f"intruder killed: the cluster settled in {time.monotonic() - phase:.1f} s")
            for node in cluster.nodes[:3]:
                c = client(node)
                for key, value in written.items():
                    assert c.get(key) == value, f"{key} through {node.name} after the intruder left"
                c.close()
            print("intruder: its large writes reached no cluster node; the cluster kept every value")
    print(f"PASS in {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    main()
