#!/usr/bin/env bash
# Cold start (issue 14): the first hour of a fresh campaign (empty ledger,
# estimators on the campaign's priors) against the same hour on the days
# after a day of dialling, predictive at 25 agents on the shipped campaigns,
# SEEDS seeds of DAYS days (from Monday 5 January 2026), with the worst
# rolling window of any run (every window, the first day's included).
#
#   scripts/pacing_cold_start.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS=${SEEDS:-20}
DAYS=${DAYS:-5}
AGENTS=${AGENTS:-25}
CAMPAIGNS=${CAMPAIGNS:-"uk-broadband us-home-solar"}
cargo build --release --quiet
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf 'campaign\tagents\tfresh first hour\twarm first hour\tfresh - warm\tworst window%% (limit)\n'
for c in $CAMPAIGNS; do
  target/release/dialler simulate --campaign "campaigns/$c.toml" --strategy predictive \
    --agents "$AGENTS" --days "$DAYS" --seeds "$SEEDS" --json >"$work/run.json"
  python3 - "$c" "$AGENTS" "$work/run.json" <<'PY'
import json, sys
c, n, path = sys.argv[1:]
runs = json.load(open(path))["runs"]
fresh = sum(r["first_hour_talk_share"] for r in runs) / len(runs)
warm = sum(r["warm_first_hour_talk_share"] for r in runs) / len(runs)
worst = max(r["worst_window_percent"] for r in runs)
print(f"{c}\t{n}\t{fresh:.4f}\t{warm:.4f}\t{fresh - warm:+.4f}\t{worst:.2f} ({runs[0]['limit_percent']:g})")
PY
done
