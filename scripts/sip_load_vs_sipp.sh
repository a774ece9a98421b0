#!/usr/bin/env bash
# Issue 17's load figure: `dialler sip load` and SIPp's own UAC
# (`sipp -sn uac`), one after the other in the same run, against the same
# `sipp -sn uas` on loopback, at the same rate and call count. For each:
# calls that failed, CPU seconds per 1,000 calls, peak RSS.
#   CPS=2000 CALLS=20000 scripts/sip_load_vs_sipp.sh
# NETNS=1 runs it in a private network namespace of its own (as root:
# util-linux unshare -n, iproute2 ip), so no other traffic shares its
# loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${NETNS:-0}" = 1 ] && [ -z "${DIALLER_IN_NETNS:-}" ]; then
  cargo build --release -q
  exec unshare -n env DIALLER_IN_NETNS=1 bash -c 'ip link set lo up && exec "$0"' "$PWD/scripts/sip_load_vs_sipp.sh"
fi
CPS="${CPS:-200}"
CALLS="${CALLS:-4000}"
PORT="${PORT:-5190}"
command -v sipp >/dev/null || { echo "sipp is missing (apt-get install sip-tester)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "/usr/bin/time is missing (apt-get install time)" >&2; exit 1; }
[ -n "${DIALLER_IN_NETNS:-}" ] || cargo build --release -q
work="$(mktemp -d)"
sipp -sn uas -i 127.0.0.1 -p "$PORT" -t u1 -nostdin -max_socket 10000 -bg >"$work/uas.out" 2>&1 || true
sleep 1
uas_pid="$(pgrep -n -f "sipp -sn uas -i 127.0.0.1 -p $PORT")"
trap 'kill "$uas_pid" 2>/dev/null || true; rm -rf "$work"' EXIT

echo "== dialler sip load: $CALLS calls at $CPS/s"
/usr/bin/time -f "%e s wall, %U s user, %S s sys, %M KiB peak RSS" -o "$work/d.time" \
  target/release/dialler sip load "sip:+15550100000@127.0.0.1:$PORT" --cps "$CPS" --calls "$CALLS" \
  --max-talk 0 --max-channels 100000 --json >"$work/d.json"
python3 - "$work/d.json" "$work/d.time" "$CALLS" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); t = open(sys.argv[2]).read().splitlines()[-1].split()
calls = int(sys.argv[3]); cpu = float(t[3]) + float(t[6])
failed = sum(n for o, n in r["outcomes"].items() if o != "answered") + r["unconfirmed_hangups"]
print(f"dialler: {r['achieved_cps']:.0f} calls/s achieved, failed {failed}, "
      f"CPU {cpu:.2f} s = {1000*cpu/calls:.3f} s per 1,000 calls, peak RSS {int(t[9])/1024:.1f} MiB, "
      f"200->ACK p99 {r['ack_ms']['p99']:.2f} ms")
if failed:
    print("  outcomes:", ", ".join(f"{o} {n}" for o, n in r["outcomes"].items()),
          f"; hang-ups not confirmed: {r['unconfirmed_hangups']}")
PY

echo "== sipp -sn uac: $CALLS calls at $CPS/s"
status=0
/usr/bin/time -f "%e s wall, %U s user, %S s sys, %M KiB peak RSS" -o "$work/s.time" \
  sipp -sn uac "127.0.0.1:$PORT" -i 127.0.0.1 -p "$((PORT + 1))" -t u1 -r "$CPS" -m "$CALLS" \
  -nostdin -max_socket 10000 -trace_stat -stf "$work/uac.csv" >"$work/uac.out" 2>&1 || status=$?
python3 - "$work/s.time" "$CALLS" "$status" "$work/uac.csv" <<'PY'
import csv, sys
t = open(sys.argv[1]).read().splitlines()[-1].split(); calls = int(sys.argv[2]); cpu = float(t[3]) + float(t[6])
rows = list(csv.reader(open(sys.argv[4]), delimiter=';'))
head, last = rows[0], rows[-1]
failed = last[head.index("FailedCall(C)")]
print(f"sipp: exit {sys.argv[3]}, failed {failed}, CPU {cpu:.2f} s = {1000*cpu/calls:.3f} s per 1,000 calls, "
      f"peak RSS {int(t[9])/1024:.1f} MiB")
PY
