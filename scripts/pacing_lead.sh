#!/usr/bin/env bash
# Predictive's lead (issue 14): on the UK campaign with its target at the
# limit (3% in any 24 hours), for each scenario and team size, talk share
# over SEEDS seeds of DAYS days for predictive, progressive, the oracle and
# a sweep of fixed ratios; the best ratio in hindsight is the one with the
# highest talk share whose mean realised abandonment is no higher than
# predictive's. Prints one row per cell with the gaps the issue names.
#
#   scripts/pacing_lead.sh                    # 20 seeds, 10 days, 25 and 100 agents
#   SEEDS=3 DAYS=3 SIZES=25 scripts/pacing_lead.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS=${SEEDS:-20}
DAYS=${DAYS:-10}
SIZES=${SIZES:-"25 100"}
SCENARIOS=${SCENARIOS:-"default drifting"}
cargo build --release --quiet
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bin="$work/dialler"
cp target/release/dialler "$bin"
grep -v '^target_percent' campaigns/uk-broadband.toml |
  sed 's/^\[abandonment\]/[abandonment]\ntarget_percent = 3.0/' >"$work/uk.toml"
printf 'scenario\tagents\tpredictive (rate%%, worst%%)\tbest ratio (rate%%)\tvs ratio\tprogressive\tvs progressive\toracle\tbelow oracle\n'
for sc in $SCENARIOS; do
  for n in $SIZES; do
    if [ "$n" -ge 50 ]; then
      ratios="ratio:2.5,ratio:3,ratio:3.5,ratio:4,ratio:4.5,ratio:5,ratio:5.5,ratio:6"
    else
      ratios="ratio:1.6,ratio:1.8,ratio:2,ratio:2.2,ratio:2.4,ratio:2.6,ratio:2.8,ratio:3.2"
    fi
    "$bin" simulate --campaign "$work/uk.toml" --scenario "campaigns/scenarios/$sc.toml" \
      --strategy "predictive,progressive,oracle,$ratios" --agents "$n" --days "$DAYS" \
      --seeds "$SEEDS" --json >"$work/run.json"
    python3 - "$sc" "$n" "$work/run.json" <<'PY'
import json, sys
sc, n, path = sys.argv[1:]
runs = json.load(open(path))["runs"]
by = {}
for r in runs:
    by.setdefault(r["strategy"], []).append(r)
def mean(s, k):
    return sum(r[k] for r in by[s]) / len(by[s])
def worst(s):
    return max(r["worst_window_percent"] for r in by[s])
p = mean("predictive", "talk_share")
prate = mean("predictive", "abandon_rate_percent")
ratios = [s for s in by if s.startswith("ratio:")]
fair = [s for s in ratios if mean(s, "abandon_rate_percent") <= prate] or ratios
best = max(fair, key=lambda s: mean(s, "talk_share"))
b = mean(best, "talk_share")
g = mean("progressive", "talk_share")
o = mean("oracle", "talk_share")
print(f"{sc}\t{n}\t{p:.4f} ({prate:.2f}, {worst('predictive'):.2f})\t{best} {b:.4f} ({mean(best, 'abandon_rate_percent'):.2f})"
      f"\t{100*(p/b-1):+.2f}%\t{g:.4f}\t{100*(p/g-1):+.1f}%\t{o:.4f}\t{100*(1-p/o):.2f}%", flush=True)
PY
  done
done
