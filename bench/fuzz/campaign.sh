#!/usr/bin/env bash
# The fuzzing campaign (opt-in, not CI): builds every libFuzzer target with
# clang, runs each for a fixed number of inputs (10 million by default) from
# its seed corpus, and prints one JSON line per target:
#
#   {"target":"chord_fuzz","runs":10000000,"finished":true,"seconds":5123,"exec_per_s":1952,
#    "cov":2711,"ft":10450,"corpus":812,"crashes":0,"log":"..."}
#
# runs: inputs executed (libFuzzer's last "#N" line); cov / ft: libFuzzer's
# coverage (edges) and features at the end; corpus: inputs kept; crashes:
# crash, leak, oom and timeout artifacts written (libFuzzer stops at the
# first, so 0 or 1; the artifact's path is in the log). A target stopped
# before its runs (--max-seconds, a crash, or an interrupted campaign)
# reports finished:false with the runs it did.
#
# Usage:
#   bench/fuzz/campaign.sh [--runs N] [--jobs J] [--build DIR] [--out DIR]
#                          [--targets "a b"] [--max-seconds S]
#                          [--malloc-limit-mb M] [--rss-limit-mb R] [--seed S]
#   bench/fuzz/campaign.sh --report [--out DIR]   # JSON lines from the logs so far
#
#   --runs N             inputs per target (default 10000000)
#   --jobs J             targets run at once (default 2, the CI machine's cores);
#                        they run under nice 19 so a shared machine stays usable
#   --build DIR          clang build folder (default build-fuzz-campaign)
#   --out DIR            corpora, logs, artifacts, results.jsonl (default fuzz-campaign)
#   --targets LIST       default: all seven
#   --max-seconds S      stop each target after S seconds (default: no limit)
#   --malloc-limit-mb M  a single allocation over M MiB is a failure (default 64)
#   --rss-limit-mb R     a process over R MiB is a failure (default 2048)
#   --seed S             libFuzzer's seed (default 1)
#
# The corpora persist in --out: a second campaign continues from the first.
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
runs=10000000
jobs=2
build=build-fuzz-campaign
out=fuzz-campaign
targets="wire_fuzz cache_parser_fuzz cache_cluster_fuzz chord_fuzz swim_fuzz replication_fuzz node_fuzz"
max_seconds=0
malloc_mb=64
rss_mb=2048
seed=1
report_only=0

while [[ $# -gt 0 ]]; do
  case "$1" in
    --runs) runs=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --targets) targets=$2; shift 2 ;;
    --max-seconds) max_seconds=$2; shift 2 ;;
    --malloc-limit-mb) malloc_mb=$2; shift 2 ;;
    --rss-limit-mb) rss_mb=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --report) report_only=1; shift ;;
    -h|--help) sed -n '2,36p' "$0"; exit 0 ;;
    *) echo "campaign.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
done

mkdir -p "$out"
out=$(cd "$out" && pwd)

# The largest input each target is given: what its smoke test uses.
max_len_of() {
  case "$1" in
    wire_fuzz) echo 4096 ;;
    cache_parser_fuzz) echo 16384 ;;
    *) echo 65536 ;;
  esac
}

# The corpus program of a target (wire_fuzz_corpus...), all of the form `prog <folder>`.
corpus_prog_of() { echo "$1_corpus"; }

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# One JSON line from a target's log (works on a log still being written).
report() {
  local t=$1 dir="$out/$1" log="$out/$1/fuzz.log"
  [[ -f $log ]] || return 0
  local last runs cov ft corp secs finished crashes
  last=$(grep -aE '^#[0-9]+[[:space:]]' "$log" | tail -n 1 || true)
  # The exact count when libFuzzer printed its final stats (at the end, on
  # a crash or when interrupted); else the last status line's, a lower bound.
  runs=$(sed -nE 's/^stat::number_of_executed_units: ([0-9]+).*/\1/p' "$log" | tail -n 1)
  [[ -n $runs ]] || runs=$(sed -nE 's/^#([0-9]+).*/\1/p' <<<"$last")
  cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$last")
  ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$last")
  corp=$(find "$dir/corpus" -type f | wc -l)
  # Every line below is written by this script around the run.
  local start end
  start=$(sed -nE 's/^campaign: start ([0-9]+)$/\1/p' "$log" | head -n 1)
  end=$(sed -nE 's/^campaign: end ([0-9]+)$/\1/p' "$log" | tail -n 1)
  [[ -n $end ]] || end=$(now_ms)
  local ms=$(( end - ${start:-end} ))
  secs=$(awk -v ms="$ms" 'BEGIN { printf "%.1f", ms / 1000 }')
  local wanted
  wanted=$(sed -nE 's/^campaign: runs ([0-9]+)$/\1/p' "$log" | head -n 1)
  finished=false
  if grep -qaE '^#[0-9]+[[:space:]]+DONE' "$log" && [[ ${runs:-0} -ge ${wanted:-1} ]]; then finished=true; fi
  crashes=$(find "$dir" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'oom-*' -o -name 'timeout-*' \) | wc -l)
  local eps=0
  [[ $ms -gt 0 && -n $runs ]] && eps=$(( runs * 1000 / ms ))
  printf '{"target":"%s","runs":%s,"finished":%s,"seconds":%s,"exec_per_s":%s,"cov":%s,"ft":%s,"corpus":%s,"crashes":%s,"log":"%s"}\n' \
    "$t" "${runs:-0}" "$finished" "$secs" "$eps" "${cov:-0}" "${ft:-0}" "$corp" "$crashes" "$log"
}

if [[ $report_only -eq 1 ]]; then
  for t in $targets; do report "$t"; done
  exit 0
fi

command -v clang++ >/dev/null || { echo "campaign.sh: clang++ is needed (libFuzzer)" >&2; exit 1; }
if [[ ! -f $build/CMakeCache.txt ]]; then
  CXX=clang++ cmake -S "$repo" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DDHTKIT_BUILD_FUZZ=ON \
    -DDHTKIT_BUILD_BENCH=OFF -DDHTKIT_WARNINGS_AS_ERRORS=ON >/dev/null
fi
build_targets=()
for t in $targets; do build_targets+=("$t" "$(corpus_prog_of "$t")"); done
# At most two compilers at once: the machine is shared.
cmake --build "$build" --target "${build_targets[@]}" -j 2

run_one() {
  local t=$1 dir="$out/$1"
  mkdir -p "$dir/corpus"
  "$build/tests/fuzz/$(corpus_prog_of "$t")" "$dir/corpus"
  local limit=()
  [[ $max_seconds -gt 0 ]] && limit=(-max_total_time="$max_seconds")
  {
    echo "campaign: runs $runs"
    echo "campaign: start $(now_ms)"
  } >"$dir/fuzz.log"
  # -entropic=0: see tests/fuzz/CMakeLists.txt (the entropic schedule cost
  # most of the time on these targets).
  nice -n 19 "$build/tests/fuzz/$t" -runs="$runs" "${limit[@]}" -entropic=0 -max_len="$(max_len_of "$t")" \
    -malloc_limit_mb="$malloc_mb" -rss_limit_mb="$rss_mb" -seed="$seed" -print_final_stats=1 \
    -artifact_prefix="$dir/" "$dir/corpus" >>"$dir/fuzz.log" 2>&1 || true
  echo "campaign: end $(now_ms)" >>"$dir/fuzz.log"
  report "$t" | tee -a "$out/results.jsonl"
}

# At most $jobs targets at once.
for t in $targets; do
  while [[ $(jobs -rp | wc -l) -ge $jobs ]]; do wait -n || true; done
  run_one "$t" &
done
wait
