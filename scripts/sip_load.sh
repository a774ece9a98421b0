#!/usr/bin/env bash
# The SIP load figures: `dialler sip load` against SIPp playing
# sipp/provider.xml on loopback. SIPp is stopped on exit.
#   CPS=200 CALLS=8000 scripts/sip_load.sh [extra dialler args, e.g. --json]
set -euo pipefail
cd "$(dirname "$0")/.."
CPS="${CPS:-200}"
CALLS="${CALLS:-8000}"
PORT="${PORT:-5090}"
command -v sipp >/dev/null || { echo "sipp is missing (apt-get install sip-tester)" >&2; exit 1; }
cargo build --release -q
log="$(mktemp -d)"
# Outcome mix of a typical list; ring 1-5 s, talk 12 s mean: about 12 s a
# call, so 200 calls/s keeps well over 2,000 calls in flight.
sipp -sf sipp/provider.xml -i 127.0.0.1 -p "$PORT" -mp "$((PORT + 2))" -t u1 -nostdin \
  -max_socket 5000 -set p_busy 0.15 -set p_noanswer 0.1 -set p_reject 0.05 -set p_unavailable 0.05 -set p_machine 0 \
  -set ring_min 1000 -set ring_max 5000 -set talk_mean 12000 >"$log/sipp.out" 2>&1 &
sipp_pid=$!
trap 'kill "$sipp_pid" 2>/dev/null || true' EXIT
sleep 1
target/release/dialler sip load "sip:+15550100000@127.0.0.1:$PORT" --cps "$CPS" --calls "$CALLS" "$@"
read -r -a f < <(sed 's/.*) //' "/proc/$sipp_pid/stat")
echo "SIPp CPU: $(( (f[11] + f[12]) / 100 )) s"
