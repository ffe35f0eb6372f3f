# Shared by .ci/demo, .ci/test and .ci/run: install what is missing, nothing more.
# Sourced, not executed.

set -euo pipefail

DHTKIT_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export DHTKIT_ROOT

# Debian bookworm packages a build needs. Extra ones can be passed as arguments.
dhtkit_ensure_packages() {
  # libcli11-dev: dhtkit-cache's command line. memcached, libmemcached-tools and
  # python3-pymemcache: the cache's tests run real memcached clients against it
  # and compare its replies with memcached's own. prometheus-cpp-dev: its
  # --metrics-port. libssl-dev: dhtkit::security (TLS, encrypted gossip). iproute2:
  # the fault tests' network namespaces. openssl: the TLS tests make their certificates
  # with it. doxygen: the API reference (the docs target and its test).
  local wanted=(cmake ninja-build g++ libasio-dev libcereal-dev catch2 libcli11-dev memcached libmemcached-tools
    python3-pymemcache prometheus-cpp-dev libssl-dev iproute2 openssl doxygen "$@")
  local missing=()
  for p in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "dhtkit: installing ${missing[*]}" >&2
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

dhtkit_jobs() { nproc 2>/dev/null || echo 2; }
