#!/usr/bin/env bash
# `dialler dnd import` at registry scale (issue 15): a plain national file
# of N Indian mobiles (default 10,000,000) with one line in a thousand bad,
# imported fresh, then imported again over the registry it made (the path
# that counts what a full import would drop). With OLD=/path/to/dialler
# (for example a build of the commit before the change), the same imports
# with that binary, side by side in the same run, alternating, REPS times
# (default 5); the medians are printed last.
#
#   scripts/dnd_import_bench.sh
#   OLD=/tmp/old/dialler N=1000000 scripts/dnd_import_bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-10000000}
cargo build --release --quiet
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 - "$N" >"$work/reg.txt" <<'PY'
import random, sys
n = int(sys.argv[1])
r = random.Random(15)
out = sys.stdout
for i in range(n):
    if i % 1000 == 999:
        out.write("98765-4321O\n")
    else:
        out.write("%d\n" % (6000000000 + r.randrange(4000000000)))
PY
echo "file: $N lines, $(du -m "$work/reg.txt" | cut -f1) MiB"
REPS=${REPS:-5}
run() { # label binary extra-args...
  local label=$1 bin=$2; shift 2
  local db="sqlite://$work/$label.db" dnd="$work/$label-dnd"
  rm -rf "$work/$label.db"* "$dnd"
  for pass in fresh again; do
    local t0 t1
    t0=$(date +%s.%N)
    set +e
    "$bin" --db "$db" --dnd-dir "$dnd" dnd import --country IN --registry national \
      --loaded-at 2026-11-29T00:00:00Z "$work/reg.txt" "$@" >/dev/null 2>"$work/err"
    local rc=$?
    set -e
    t1=$(date +%s.%N)
    printf '%-6s %-5s %6.2f s  exit %s\n' "$label" "$pass" "$(echo "$t1 - $t0" | bc)" "$rc" | tee -a "$work/times"
  done
}
for _ in $(seq "$REPS"); do
  run new target/release/dialler --accept-rejects "$N"
  if [ -n "${OLD:-}" ]; then run old "$OLD"; fi
done
echo "medians over $REPS runs:"
for label in new old; do
  for pass in fresh again; do
    grep "^$label *$pass " "$work/times" | awk '{print $3}' | sort -n |
      awk -v l="$label" -v p="$pass" '{a[NR]=$1} END {if (NR) printf "%-6s %-5s %6.2f s\n", l, p, a[int((NR+1)/2)]}'
  done
done
