#!/usr/bin/env bash
# Quick start on the embedded default (SQLite, dialler.db here): validate the
# sample campaigns, import their lead lists (twice, to show that a re-import
# adds nothing) and sample do-not-call registries, then screen a few numbers.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
d=target/release/dialler
$d campaign validate campaigns/*.toml
for c in in-insurance-renewal us-home-solar uk-broadband; do
  $d leads import --campaign "$c" "campaigns/leads/$c.csv" --rejects "target/$c.rejects.csv"
done
$d leads import --campaign us-home-solar campaigns/leads/us-home-solar.csv --json
$d dnd import --campaign in-insurance-renewal --registry national --format ncpr campaigns/dnd/in-ncpr-sample.csv
$d dnd import --campaign us-home-solar --registry national campaigns/dnd/us-dnc-sample.txt
$d dnd import --campaign uk-broadband --registry national campaigns/dnd/uk-tps-sample.txt
$d campaign list
$d leads stats --campaign in-insurance-renewal
# A number in the US sample registry, then one that is not, at 15:00 in New York
# on a Wednesday; then the same number at 21:30 (outside calling hours).
week=$(date -u -d 'next wednesday' +%F)
$d check "(619) 555-0189" --campaign us-home-solar --at "${week}T23:00:00Z" || true
$d check "(212) 555-0101" --campaign us-home-solar --at "${week}T20:00:00Z" || true
$d check "(212) 555-0101" --campaign us-home-solar --at "${week}T02:30:00Z" || true
