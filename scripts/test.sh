#!/usr/bin/env bash
# The whole test suite. Installs the system packages the tests need when they
# are missing (SIPp from Debian's sip-tester, headless Chromium for the
# dashboard test, dnsmasq as the DNS server of the RFC 3263 tests, Kamailio
# as the carrier edge of the TLS, registration and forking tests), makes
# sure the local
# PostgreSQL is up, then runs every cargo test target (unit, behaviour, and
# the benches in their quick test mode).
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v sipp >/dev/null 2>&1 || missing+=(sip-tester)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
[ -x /usr/sbin/dnsmasq ] || missing+=(dnsmasq-base)
[ -x /usr/sbin/kamailio ] || missing+=(kamailio)
[ -e /usr/lib/x86_64-linux-gnu/kamailio/modules/tls.so ] || [ -e /usr/lib/aarch64-linux-gnu/kamailio/modules/tls.so ] || missing+=(kamailio-tls-modules)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The store suite runs on PostgreSQL too (127.0.0.1:5432, user postgres,
# database test; override with DIALLER_TEST_PG_URL). Start the local cluster
# if it is installed but stopped; under CI=true the tests fail if it is
# still unreachable.
if command -v pg_isready >/dev/null 2>&1 && ! pg_isready -q -h 127.0.0.1 -p 5432; then
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    for v in /etc/postgresql/*; do
      as_root pg_ctlcluster --skip-systemctl-redirect "$(basename "$v")" main start || true
    done
  fi
fi

cargo test --all-targets "$@"
