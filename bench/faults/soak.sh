#!/bin/sh
# The fault soak (bench/faults/soak.py): sh bench/faults/soak.sh BUILD_DIR [soak.py flags, e.g. --minutes 3 --seed 1]
build=${1:?usage: soak.sh BUILD_DIR [flags]}; shift
exec /usr/bin/python3 "$(dirname "$0")/soak.py" --server "$build/examples/cache/dhtkit-cache" "$@"
