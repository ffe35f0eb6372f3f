#!/usr/bin/python3
"""Soak: a seeded schedule of faults on dhtkit-cache processes in network
namespaces, under load, for --minutes (default 10). Opt-in, never run by CI
(root, iproute2 and python3-pymemcache needed; tests/faults/ has the parts).

Each round draws a fault (tests/faults/netns.py FaultSchedule): a node
isolated, a node killed with SIGKILL and restarted, one link cut, a link
flapping; with --partitions also a split in two halves and a minority cut
off. The fault holds for a few seconds under load and is healed; then the
load pauses while membership settles and every key's replicas converge (the
time from the heal to both is reported), and resumes for the next round. At
the end every key is read through every node and the whole history is
checked (tests/faults/history.py).

JSON Lines on stdout, one object per figure:
  {"bench":"faults_soak","name":"heal","params":{"kind":"isolate",...},"value":1.9,"unit":"s"}  per heal
  {"bench":"faults_soak","name":"acknowledged_writes_lost","params":{...},"value":0,"unit":"writes"}  (goal 0)
and operations, faults by kind, acknowledged writes, writes discarded by
last-writer-wins under partitions, reads of never-written values, keys
whose replicas differ. A human summary goes to stderr. Exit status 1 when
any acknowledged write was lost without a partition to explain it, a read
returned a value never written, or the replicas did not converge.

  sudo /usr/bin/python3 bench/faults/soak.py --server build/examples/cache/dhtkit-cache --minutes 10 --seed 1
"""

import argparse
import json
import os
import random
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "faults"))
import netns  # noqa: E402
import history  # noqa: E402
import workload  # noqa: E402


def emit(name, value, unit, **params):
    print(json.dumps({"bench": "faults_soak", "name": name, "params": params, "value": value, "unit": unit}),
          flush=True)


def log(text):
    print(text, file=sys.stderr, flush=True)


def inject(cluster, hist, fault, n):
    """Applies one fault, holds it, heals it; (what, start, partition?)."""
    net = cluster.net
    kind = fault["kind"]
    node, other = fault["node"], fault["other"]
    start = hist.clock()
    if kind == "isolate":
        what = f"n{node} isolated"
        net.isolate(node, n)
        time.sleep(fault["hold_s"])
        net.heal_all()
    elif kind == "kill":
        what = f"n{node} killed (SIGKILL) and restarted"
        cluster.kill9(node)
        time.sleep(fault["hold_s"])
        cluster.restart(node)
    elif kind == "cut":
        what = f"link n{node}-n{other} cut"
        net.cut(node, other)
        time.sleep(fault["hold_s"])
        net.heal_all()
    elif kind == "flap":
        what = f"link n{node}-n{other} flapping x{fault['flaps']}"
        for _ in range(fault["flaps"]):
            net.cut(node, other)
            time.sleep(fault["flap_s"])
            net.heal(node, other)
            time.sleep(fault["flap_s"])
    elif kind == "split":
        what = f"split {fault['side_a']}|{fault['side_b']}"
        net.split(fault["side_a"], fault["side_b"])
        time.sleep(fault["hold_s"])
        net.heal_all()
    elif kind == "minority":
        rest = [i for i in range(n) if i not in fault["minority"]]
        what = f"minority {fault['minority']} cut from {rest}"
        net.split(fault["minority"], rest)
        time.sleep(fault["hold_s"])
        net.heal_all()
    else:
        raise ValueError(kind)
    return what, start, kind != "kill"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server", required=True, help="the dhtkit-cache binary")
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=None, help="default: drawn, and printed")
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--partitions", action="store_true",
                    help="also split the cluster in two and cut a minority off (then last-writer-wins may "
                         "discard writes; reported apart)")
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--rate", type=int, default=40, help="operations a second per client thread")
    ap.add_argument("--converge-timeout", type=float, default=60.0)
    args = ap.parse_args()
    netns.require_netns()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 31)
    log(f"soak seed {seed}: {args.minutes} min, {args.nodes} nodes, "
        f"{'with' if args.partitions else 'without'} partitions")
    params = {"seed": seed, "minutes": args.minutes, "nodes": args.nodes, "partitions": args.partitions,
              "replicas": 3, "write_quorum": 2, "read_quorum": 1}
    n = args.nodes
    hist = history.History()
    schedule = netns.FaultSchedule(seed, n, safe=not args.partitions)
    rng = random.Random(seed + 1)
    injected = {}
    heals = []
    failed_rounds = []
    with netns.NetnsCluster(args.server, n) as cluster:
        cluster.wait_members(n)
        load = workload.Workload(cluster, hist, seed, threads=args.threads, rate=args.rate)
        load.start()
        end_at = time.monotonic() + args.minutes * 60
        keys = load.keys()
        while time.monotonic() < end_at:
            time.sleep(rng.uniform(2.0, 5.0))  # load alone between faults
            fault = schedule.next()
            what, start, partition = inject(cluster, hist, fault, n)
            healed = hist.clock()
            injected[fault["kind"]] = injected.get(fault["kind"], 0) + 1
            try:
                settle_s = cluster.wait_settled(n, timeout=args.converge_timeout)
            except RuntimeError as e:
                failed_rounds.append(f"{what}: did not settle: {e}")
                log(f"{healed:.1f} s: {what}: DID NOT SETTLE")
                settle_s = None
            # Until the views merged, both sides may still coordinate a key: the partition's window.
            hist.fault(what, start, hist.clock(), partition=partition)
            paused = load.pause()
            took, states, ok = workload.wait_converged(cluster, keys, args.converge_timeout, 3)
            converge_s = hist.clock() - healed
            load.resume()
            if not ok:
                failed_rounds.append(f"{what}: replicas differ {args.converge_timeout} s after the heal")
            heals.append(converge_s)
            emit("heal", round(converge_s, 3), "s", kind=fault["kind"], what=what, at_s=round(healed, 1),
                 settle_s=None if settle_s is None else round(settle_s, 3), converged=ok, paused=paused)
            log(f"{healed:.1f} s: {what} healed; settled {settle_s} s, converged {converge_s:.2f} s after the heal")
        load.stop()
        result = workload.finish(cluster, hist, load, n, converge_timeout=args.converge_timeout)
        stats = cluster.snapshot()

    report = result["report"]
    for line in report.lines():
        log(line)
    counts = hist.counts()
    conflicts = sum(int(s.get("cluster_conflicts_resolved", 0)) for s in stats.values() if "error" not in s)
    emit("operations", len(hist.ops), "ops", **params, by_outcome=counts)
    emit("faults_injected", sum(injected.values()), "faults", **params, by_kind=injected)
    emit("acknowledged_writes", report.acked, "writes", **params)
    emit("acknowledged_writes_lost", len(report.lost_writes), "writes", **params)
    emit("discarded_by_lww_under_partition", len(report.lww_discarded), "writes", **params,
         acknowledged_under_partition=report.acked_in_partition,
         acknowledged_under_partition_by_kind=report.acked_in_partition_by_kind)
    emit("reads_of_never_written_values", len(report.never_written), "reads", **params)
    emit("keys_unconverged", len(report.unconverged) + len(report.final_disagree), "keys", **params)
    emit("conflicts_resolved", conflicts, "versions", **params)
    if heals:
        heals.sort()
        emit("heal_to_converged_median", round(heals[len(heals) // 2], 3), "s", **params)
        emit("heal_to_converged_max", round(heals[-1], 3), "s", **params)
    for line in failed_rounds:
        log("ROUND FAILED: " + line)
    bad = report.lost_writes or report.never_written or report.unconverged or report.final_disagree \
        or failed_rounds or (not args.partitions and report.lww_discarded)
    if bad:
        log(f"soak FAILED: seed {seed} (rerun with --seed {seed})")
        return 1
    log(f"soak passed: seed {seed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
