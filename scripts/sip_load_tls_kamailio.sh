#!/usr/bin/env bash
# Issue 17's TLS figure: `dialler sip load` over TLS through Kamailio as a
# carrier edge (the tests' edge: tests/kamailio/edge.cfg, record-routing,
# TLS towards the dialler, UDP towards a SIPp callee behind it,
# sipp/answer_now.xml, which answers at once and echoes Record-Route), on
# loopback. Each rate runs RUNS times (default 3) for RATE seconds' worth of
# calls (default 10 s); a rate is sustained when no call failed in any run
# at it or at any lower rate tried. A call failed when it was not answered
# or its hang-up was not confirmed (our BYE got no 2xx).
# SIPp is not run beside it here: Debian's sip-tester is built without TLS.
#   RATES="200 500 1000 1500 2000" scripts/sip_load_tls_kamailio.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RATES="${RATES:-200 500 1000}"
RUNS="${RUNS:-3}"
SECONDS_PER_RUN="${SECONDS_PER_RUN:-10}"
UAS_PORT="${UAS_PORT:-5290}"
UDP_PORT="${UDP_PORT:-5291}"
TLS_PORT="${TLS_PORT:-5292}"
for tool in sipp openssl /usr/sbin/kamailio /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "$tool is missing (apt-get install sip-tester openssl kamailio kamailio-tls-modules time)" >&2; exit 1; }
done
mods=""
for d in /usr/lib/x86_64-linux-gnu/kamailio/modules /usr/lib/aarch64-linux-gnu/kamailio/modules /usr/lib/kamailio/modules; do
  [ -e "$d/tls.so" ] && mods="$d" && break
done
[ -n "$mods" ] || { echo "Kamailio's TLS module is missing (apt-get install kamailio-tls-modules)" >&2; exit 1; }
BIN="${DIALLER_BIN:-target/release/dialler}"
[ -n "${DIALLER_BIN:-}" ] || cargo build --release -q
work="$(mktemp -d)"
pids=()
trap 'for p in "${pids[@]}"; do kill -- "-$p" 2>/dev/null || kill "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT

# A CA and a certificate for the edge, valid for 127.0.0.1 (the URI's host).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj "/CN=dialler load CA" -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -subj "/CN=carrier.test" -keyout "$work/server.key" -out "$work/server.csr" 2>/dev/null
printf 'subjectAltName=DNS:carrier.test,IP:127.0.0.1\n' >"$work/san.ext"
openssl x509 -req -in "$work/server.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" \
  -CAcreateserial -days 2 -extfile "$work/san.ext" -out "$work/server.pem" 2>/dev/null
sed -e "s|@KEY@|$work/server.key|" -e "s|@CERT@|$work/server.pem|" tests/kamailio/tls.cfg >"$work/tls.cfg"
sed -e "s|@UDP_PORT@|$UDP_PORT|" -e "s|@TLS_PORT@|$TLS_PORT|" \
  -e "s|@UAS_A@|$UAS_PORT|g" -e "s|@UAS_B@|$UAS_PORT|g" \
  -e "s|@MODULES@|$mods|" -e "s|@TLS_CFG@|$work/tls.cfg|" tests/kamailio/edge.cfg >"$work/edge.cfg"

setsid sipp -sf sipp/answer_now.xml -i 127.0.0.1 -p "$UAS_PORT" -t u1 -nostdin -max_socket 10000 >"$work/uas.out" 2>&1 &
pids+=($!)
setsid /usr/sbin/kamailio -f "$work/edge.cfg" -DD -E -m 512 -M 32 -Y "$work" -P "$work/kamailio.pid" -w "$work" \
  >"$work/kamailio.log" 2>&1 </dev/null &
pids+=($!)
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$TLS_PORT") 2>/dev/null && break
  sleep 0.1
done
(exec 3<>"/dev/tcp/127.0.0.1/$TLS_PORT") 2>/dev/null || { echo "Kamailio did not start:" >&2; cat "$work/kamailio.log" >&2; exit 1; }

echo "== dialler sip load over TLS through Kamailio ($RUNS runs of ${SECONDS_PER_RUN} s per rate)"
sustained=0
broken=""
for cps in $RATES; do
  calls=$((cps * SECONDS_PER_RUN))
  clean=0
  for run in $(seq "$RUNS"); do
    /usr/bin/time -f "%e %U %S %M" -o "$work/d.time" \
      "$BIN" sip load "sips:+15550100000@127.0.0.1:$TLS_PORT" --tls-ca "$work/ca.pem" \
      --cps "$cps" --calls "$calls" --max-talk 0 --max-channels 100000 --json >"$work/d.json" || true
    failed="$(python3 - "$work/d.json" "$work/d.time" "$calls" "$cps" "$run" <<'PY'
import json, sys
try:
    r = json.load(open(sys.argv[1]))
except Exception:
    print(-1); sys.exit(0)
t = open(sys.argv[2]).read().splitlines()[-1].split(); calls = int(sys.argv[3])
cpu = float(t[1]) + float(t[2])
failed = sum(n for o, n in r["outcomes"].items() if o != "answered") + r["unconfirmed_hangups"]
others = ", ".join([f"{o} {n}" for o, n in r["outcomes"].items() if o != "answered"]
                   + ([f"hang-up unconfirmed {r['unconfirmed_hangups']}"] if r["unconfirmed_hangups"] else []))
print(f"{sys.argv[4]}/s run {sys.argv[5]}: {r['achieved_cps']:.0f}/s achieved, failed {failed}"
      f"{' (' + others + ')' if others else ''}, CPU {1000*cpu/calls:.3f} s per 1,000 calls, "
      f"peak RSS {int(t[3])/1024:.1f} MiB, 200->ACK p99 {r['ack_ms']['p99']:.2f} ms", file=sys.stderr)
print(failed)
PY
)"
    [ "$failed" = "0" ] && clean=$((clean + 1))
  done
  echo "$cps/s: $clean of $RUNS runs with no failed call"
  if [ "$clean" = "$RUNS" ]; then
    [ -z "$broken" ] && sustained="$cps"
  else
    broken="${broken:-$cps}"
  fi
done
echo "highest rate sustained over TLS through Kamailio (no failed call in $RUNS of $RUNS runs, there and below): $sustained calls/s${broken:+; first rate with a failed call: $broken calls/s}"
