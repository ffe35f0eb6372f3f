#!/usr/bin/python3
"""One fault scenario on dhtkit-cache processes in network namespaces
(netns.py), under load (workload.py), checked with history.py.

N=3 W=2 R=1 (the defaults), --cluster-profile local. Scenarios:

  minority      3 nodes; one is partitioned away from the other two, then healed
  split         4 nodes split 2|2, then healed
  isolate-kill  3 nodes; one isolated, killed with SIGKILL while isolated, the
                links healed, the node restarted (same name, same address)
  rolling       3 nodes; each in turn stopped (SIGTERM) and restarted, under load
  flap          3 nodes; the link between two of them cut and healed several times

Checked in every scenario: no read (during the load or after) returned a
value never written; after the last heal every key's replicas converge
within CONVERGE_S and every node reads the same value; no acknowledged
write or append is lost without a partition to explain it. Where at most one
node is lost at a time (every scenario but split), zero acknowledged writes
and appends are lost, full stop. Under the 2|2 split both sides take writes
(each has two of a key's three holders or fallbacks, enough for W=2): what
last-writer-wins discarded when the sides merged is printed, not failed --
it is what the design allows (README, "Faults on real processes").

  /usr/bin/python3 tests/faults/scenario_test.py --server .../dhtkit-cache --scenario split [--seed N]

The seed (drawn when not given) picks the nodes, the timings and every
client's choices; it is printed at the start and on failure.
"""

import argparse
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import netns  # noqa: E402  (first: it skips when namespaces are not available)
import history  # noqa: E402
import workload  # noqa: E402
import cache_harness as h  # noqa: E402

CONVERGE_S = 45.0  # the bound on replicas converging after the last heal (anti-entropy: a slice every 5 s)
SCENARIOS = ("minority", "split", "isolate-kill", "rolling", "flap")


def run(args, seed):
    rng = random.Random(seed)
    n = 4 if args.scenario == "split" else 3
    hist = history.History()
    c = h.Checks()
    with netns.NetnsCluster(args.server, n) as cluster:
        cluster.wait_members(n)
        load = workload.Workload(cluster, hist, seed)
        load.start()
        time.sleep(2.0)  # load alone first
        net = cluster.net

        def partition(what, cut, hold_s):
            start = hist.clock()
            cut()
            print(f"{start:.2f} s: {what} ({net.describe_cuts()}), {hold_s:.1f} s", flush=True)
            time.sleep(hold_s)
            healed = hist.clock()
            net.heal_all()
            # Until every node sees every other alive again, both sides still
            # coordinate the same keys, each on its own version: the partition
            # lasts, for the conflict rule, until the views have merged.
            merged = cluster.wait_settled(n, timeout=30.0)
            print(f"{healed:.2f} s: healed, views merged {merged:.2f} s later", flush=True)
            hist.fault(what, start, hist.clock())

        if args.scenario == "minority":
            node = rng.randrange(n)
            partition(f"n{node} partitioned from the majority", lambda: net.isolate(node, n), rng.uniform(5, 8))
        elif args.scenario == "split":
            order = list(range(n))
            rng.shuffle(order)
            a, b = sorted(order[:2]), sorted(order[2:])
            partition(f"split {a}|{b}", lambda: net.split(a, b), rng.uniform(6, 9))
        elif args.scenario == "isolate-kill":
            node = rng.randrange(n)
            start = hist.clock()
            net.isolate(node, n)
            print(f"{start:.2f} s: n{node} isolated", flush=True)
            time.sleep(rng.uniform(3, 5))
            cluster.kill9(node)
            print(f"{hist.clock():.2f} s: n{node} killed (SIGKILL) while isolated", flush=True)
            time.sleep(rng.uniform(1, 3))
            net.heal_all()
            hist.fault(f"n{node} isolated", start, hist.clock())  # its views merge when it restarts
            time.sleep(1.0)
            cluster.restart(node)
            print(f"{hist.clock():.2f} s: links healed, n{node} restarted", flush=True)
        elif args.scenario == "rolling":
            for node in range(n):
                start = hist.clock()
                status = cluster.terminate(node, timeout=20.0)
                c.equal(status, 0, f"n{node} exits 0 after SIGTERM (within 20 s)")
                if status != 0:
                    print(cluster.nodes[node].stderr_text()[-3000:], flush=True)
                time.sleep(rng.uniform(0.5, 2.0))
                cluster.restart(node)
                took = cluster.wait_settled(n, timeout=30.0)
                print(f"{start:.2f} s: n{node} restarted, settled {took:.2f} s after", flush=True)
                hist.fault(f"n{node} restart", start, hist.clock(), partition=False)
        elif args.scenario == "flap":
            a, b = rng.sample(range(n), 2)
            start = hist.clock()
            for _ in range(rng.randrange(4, 8)):
                net.cut(a, b)
                time.sleep(rng.uniform(0.3, 1.5))
                net.heal(a, b)
                time.sleep(rng.uniform(0.3, 1.5))
            cluster.wait_settled(n, timeout=30.0)
            hist.fault(f"link n{a}-n{b} flapping", start, hist.clock())
            print(f"{start:.2f}-{hist.clock():.2f} s: link n{a}-n{b} flapped", flush=True)

        time.sleep(3.0)  # load after the last heal
        c.check(load.stop(), "client threads stopped")
        stats = cluster.snapshot()
        try:
            result = workload.finish(cluster, hist, load, n, converge_timeout=CONVERGE_S)
        except RuntimeError as e:
            c.check(False, f"membership settles after the last heal: {e}")
            return c, hist, None
        stats = cluster.snapshot()

    report = result["report"]
    for line in report.lines():
        print(line)
    # The first keys with a loss, whole: enough to see which version won and why.
    lossy = list(dict.fromkeys(k for k, _, _ in report.lost_writes + report.lww_discarded))
    shown = lossy[:2] if (report.lost_writes or args.scenario != "split") else []
    for key in list(args.show_key or []) + shown:
        print(f"history of {key}: final {({node: v.get(key) for node, v in result['final'].items()})}")
        for op in hist.ops:
            if op.key == key:
                print(f"  {op!r}")
    conflicts = sum(int(s.get("cluster_conflicts_resolved", 0)) for s in stats.values() if "error" not in s)
    not_stored = [x for w in load.workers for x in w.not_stored]
    client_errors = [x for w in load.workers for x in w.client_errors]
    print(f"{args.scenario}: {len(hist.ops)} operations {hist.counts()}; settled {result['settle_s']:.2f} s, "
          f"replicas converged {result['converge_s']:.2f} s after the load stopped; "
          f"conflicts resolved (cluster_conflicts_resolved) {conflicts}; appends NOT_STORED {len(not_stored)}",
          flush=True)
    if report.lww_discarded:
        print(f"last-writer-wins discarded {len(report.lww_discarded)} acknowledged writes written during a "
              "partition: both sides took writes to the same key (a client wrote through either side), and "
              "when they merged the version with the highest hybrid-clock stamp won; the other side's "
              "appends are gone with its version.")
    c.check(len(hist.ops) > 100, f"the load ran: {len(hist.ops)} operations")
    c.check(report.acked > 50, f"writes were acknowledged: {report.acked}")
    c.equal(len(report.never_written), 0, "reads of values never written")
    c.equal(len(report.lost_writes), 0, "acknowledged writes lost with no partition to explain them")
    if args.scenario != "split":
        c.equal(len(report.lww_discarded), 0,
                "acknowledged writes lost with at most one node lost at a time (N=3 W=2)")
    c.equal(len(report.final_disagree), 0, "keys read differently through different nodes")
    c.check(result["converged"] and not report.unconverged,
            f"replicas converge within {CONVERGE_S} s of the last heal ({len(report.unconverged)} keys differ)")
    c.equal(len(client_errors), 0, f"client-side errors {client_errors[:3]}")
    return c, hist, report


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server", required=True, help="the dhtkit-cache binary")
    ap.add_argument("--scenario", required=True, choices=SCENARIOS)
    ap.add_argument("--seed", type=int, default=None, help="reproduce a run (default: drawn, and printed)")
    ap.add_argument("--show-key", action="append", help="print every operation on this key (repeatable)")
    args = ap.parse_args()
    netns.require_netns()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 31)
    print(f"scenario {args.scenario} seed {seed}", flush=True)
    try:
        c, _, _ = run(args, seed)
    except BaseException:
        print(f"FAILED: scenario {args.scenario} seed {seed} (rerun with --seed {seed})", flush=True)
        raise
    status = c.finish(f"faults: {args.scenario}")
    if status != 0:
        print(f"FAILED: scenario {args.scenario} seed {seed} (rerun with --seed {seed})", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
