#!/usr/bin/env bash
# Runs the benchmarks the plots are drawn from and writes their JSON Lines to
# docs/plots/data/<name>.jsonl (their stderr tables to <name>.txt beside them):
#
#   bash docs/plots/collect.sh                  # all four, cache last (~12 min on 2 cores)
#   bash docs/plots/collect.sh chord ring       # only these
#   BUILD=build/plots bash docs/plots/collect.sh  # another Release build directory
#
# then `/usr/bin/python3 docs/plots/plot.py` redraws docs/plots/*.png from the
# data alone. Each file is replaced only when its benchmark exits 0, so a run
# that fails or is interrupted leaves the committed data as it was.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${BUILD:-$root/build/release}
case $build in /*) ;; *) build=$root/$build ;; esac
data=$root/docs/plots/data
benches=("$@")
[[ ${#benches[@]} -gt 0 ]] || benches=(chord membership ring cache)

targets=()
for b in "${benches[@]}"; do
  case $b in
    chord | membership | ring) targets+=("bench_$b") ;;
    cache) targets+=(bench_cache_load dhtkit-cache) ;;
    *) echo "collect.sh: unknown benchmark '$b' (chord, membership, ring, cache)" >&2; exit 2 ;;
  esac
done

cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" --target "${targets[@]}" -j 2 >&2
mkdir -p "$data"

run() { # name command...: stdout to data/name.jsonl, stderr to data/name.txt
  local name=$1
  shift
  echo "collect.sh: $name: $*" >&2
  "$@" >"$data/$name.jsonl.tmp" 2>"$data/$name.txt.tmp"
  mv "$data/$name.jsonl.tmp" "$data/$name.jsonl"
  mv "$data/$name.txt.tmp" "$data/$name.txt"
}
trap 'rm -f "$data"/*.tmp' EXIT

# The simulated benchmarks first: their figures do not depend on the machine's
# load. The cache load is timed on real sockets, so it runs last and alone,
# with exactly what bench/cache/run.sh runs (its defaults: 3 interleaved rounds
# of 10 s per server and depth, depths 1 and 16).
for b in chord membership ring; do
  for want in "${benches[@]}"; do
    if [[ $want == "$b" ]]; then run "$b" "$build/bench/bench_$b"; fi
  done
done
for want in "${benches[@]}"; do
  if [[ $want == cache ]]; then
    command -v memcached >/dev/null || { echo "memcached not installed (Debian: memcached)" >&2; exit 1; }
    run cache "$build/bench/bench_cache_load" --dhtkit "$build/examples/cache/dhtkit-cache" \
      --memcached "$(command -v memcached)"
  fi
done
