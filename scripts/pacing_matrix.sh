#!/usr/bin/env bash
# The pacing safety matrix (issue 14): every strategy a campaign file can
# choose, on every profile's shipped campaign with its target raised to the
# limit (the hardest setting), at each team size and scenario, over SEEDS
# seeds of DAYS simulated days. Prints one line per cell with the worst
# rolling window of any run, and at the end whether every run stayed within
# its limit (exit status 1 if not).
#
#   scripts/pacing_matrix.sh                      # the whole matrix (hours)
#   SEEDS=2 DAYS=7 SIZES="5 25" PROFILES=uk scripts/pacing_matrix.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS=${SEEDS:-20}
DAYS=${DAYS:-35}
SIZES=${SIZES:-"5 10 25 100"}
PROFILES=${PROFILES:-"us uk ca au in"}
SCENARIOS=${SCENARIOS:-"default drifting week-start"}
STRATEGIES=${STRATEGIES:-"predictive,progressive,ratio:2,ratio:3,feedback,threshold"}
OUT=${OUT:-target/pacing-matrix.tsv}

cargo build --release --quiet
bin="$(mktemp -d)/dialler"; cp target/release/dialler "$bin"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

campaign_of() {
  case $1 in
    us) echo us-home-solar ;; uk) echo uk-broadband ;; ca) echo ca-home-security ;;
    au) echo au-solar-rebates ;; in) echo in-insurance-renewal ;;
  esac
}
limit_of() {
  case $1 in ca) echo 5.0 ;; *) echo 3.0 ;; esac
}

printf 'profile\tscenario\tagents\tstrategy\truns\tworst_max%%\tlimit%%\trate_mean%%\ttalk_mean\n' >"$OUT"
fail=0
for p in $PROFILES; do
  c=$(campaign_of "$p")
  lim=$(limit_of "$p")
  # The shipped campaign with its target at the limit.
  grep -v '^target_percent' "campaigns/$c.toml" |
    sed "s/^\[abandonment\]/[abandonment]\ntarget_percent = $lim/" >"$work/$c.toml"
  for sc in $SCENARIOS; do
    for n in $SIZES; do
      "$bin" simulate --campaign "$work/$c.toml" --scenario "campaigns/scenarios/$sc.toml" \
        --strategy "$STRATEGIES" --agents "$n" --days "$DAYS" --seeds "$SEEDS" --json >"$work/run.json"
      python3 - "$p" "$sc" "$n" "$work/run.json" "$OUT" <<'PY' || fail=1
import json, sys
p, sc, n, path, out = sys.argv[1:]
doc = json.load(open(path))
by = {}
for r in doc["runs"]:
    by.setdefault(r["strategy"], []).append(r)
bad = False
with open(out, "a") as f:
    for s, rs in by.items():
        worst = max(r["worst_window_percent"] for r in rs)
        lim = rs[0]["limit_percent"]
        rate = sum(r["abandon_rate_percent"] for r in rs) / len(rs)
        talk = sum(r["talk_share"] for r in rs) / len(rs)
        over = worst > lim
        bad |= over
        line = f"{p}\t{sc}\t{n}\t{s}\t{len(rs)}\t{worst:.3f}\t{lim:g}\t{rate:.3f}\t{talk:.4f}"
        f.write(line + "\n")
        print(line + ("\tOVER" if over else ""), flush=True)
sys.exit(1 if bad else 0)
PY
    done
  done
done
if [ "$fail" = 0 ]; then
  echo "every run within its limit ($OUT)"
else
  echo "SOME RUN BROKE ITS LIMIT ($OUT)"
  exit 1
fi
