#!/bin/bash
# Two versions of dps-composer, each building the default blueprint with an empty cache (the
# tools tree made inside the build, unlike bench/ab_builds.py), alternating; prints each
# build's summary line, its time and the 1-minute load average before it. Reports only.
#
#   bench/full_cold_ab.sh A_SRC B_SRC [RUNS]     (A_SRC, B_SRC: source trees, as ab_builds.py)
set -euo pipefail
a=$(realpath "$1") b=$(realpath "$2") runs=${3:-2}
python="$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/python"  # not realpath: the venv is its link
work=$(mktemp -d /var/tmp/full-cold-ab.XXXXXX)
trap 'rm -rf "$work"' EXIT
for i in $(seq "$runs"); do
    for side in a b; do
        src=$a
        [ "$side" = b ] && src=$b
        rm -rf "$work/cache" "$work/out"
        load=$(cut -d' ' -f1 /proc/loadavg)
        start=$(date +%s.%N)
        (cd "$src" && "$python" -m composer build blueprints/debian-uki-sdboot.toml \
            -o "$work/out" --cache-dir "$work/cache" 2>&1 | tail -1)
        end=$(date +%s.%N)
        echo "$side full cold #$i: $(echo "$end - $start" | bc) s (load $load)"
    done
done
