#!/usr/bin/env bash
# Quick start on the embedded default (SQLite, dialler.db here): validate the
# sample campaigns, import their lead lists (twice, to show that a re-import
# adds nothing), and show what is loaded.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
d=target/release/dialler
$d campaign validate campaigns/*.toml
for c in in-insurance-renewal us-home-solar uk-broadband; do
  $d leads import --campaign "$c" "campaigns/leads/$c.csv" --rejects "target/$c.rejects.csv"
done
$d leads import --campaign us-home-solar campaigns/leads/us-home-solar.csv --json
$d campaign list
$d leads stats --campaign in-insurance-renewal
