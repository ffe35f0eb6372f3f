#!/usr/bin/env bash
# dhtkit-cache beside Debian's memcached, in one run, on Release builds:
#   bash bench/cache/run.sh [--quick] [bench_cache_load flags...]
# Configures and builds build/release (only dhtkit-cache and bench_cache_load),
# then runs bench_cache_load, which starts `memcached -t 2 -m 1024`,
# `dhtkit-cache -t 2 -m 1024` and two three-node dhtkit-cache clusters (N=3
# R=1 W=2 and R=2 W=2; --no-cluster leaves them out) on free loopback ports and
# prints JSON Lines (bench/support/bench.hpp) on stdout, a table on stderr.
# --tls adds memcached -Z and dhtkit-cache -Z to the same rounds, with a
# certificate made here (openssl, in a temporary directory removed at exit).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build="$root/build/release"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" --target dhtkit-cache bench_cache_load -j "$(nproc 2>/dev/null || echo 2)" >&2
command -v memcached >/dev/null || { echo "memcached not installed (Debian: memcached)" >&2; exit 1; }
args=()
tls=()
for a in "$@"; do
  if [ "$a" = "--tls" ]; then
    command -v openssl >/dev/null || { echo "--tls: openssl not installed (Debian: openssl)" >&2; exit 1; }
    certs=$(mktemp -d)
    trap 'rm -rf "$certs"' EXIT
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=localhost \
      -keyout "$certs/key.pem" -out "$certs/cert.pem" 2>/dev/null
    # memcached reads them as the user nobody (-u nobody).
    chmod 755 "$certs" && chmod 644 "$certs"/*.pem
    tls=(--tls-cert "$certs/cert.pem" --tls-key "$certs/key.pem")
  else
    args+=("$a")
  fi
done
# Not exec: the trap removes the certificates afterwards.
"$build/bench/bench_cache_load" --dhtkit "$build/examples/cache/dhtkit-cache" \
  --memcached "$(command -v memcached)" "${tls[@]}" "${args[@]}"
