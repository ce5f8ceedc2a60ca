#!/usr/bin/env bash
# Installs the Debian packages Docket needs, when any is missing. Idempotent and quiet when
# everything is present; uses sudo when not root.
#   scripts/deps.sh        build and run
#   scripts/deps.sh test   also what the test suite uses: promtool (prometheus), node/npm
#                          (the OpenAPI validator, installed from npm by the test itself) and
#                          python3-yaml (tests/deploy/check.py), pgbouncer (the PgBouncer tests),
#                          faketime (the clock-skew test), iproute2 (ip netns and tc for the
#                          partition tests), chromium (the dashboard's browser test drives it
#                          headless with puppeteer-core from npm)
set -euo pipefail
mode=${1:-run}

packages=(
  build-essential cmake pkg-config
  libpqxx-dev libpq-dev libssl-dev libboost-dev libcpp-httplib-dev libspdlog-dev
  nlohmann-json3-dev libcli11-dev libtomlplusplus-dev prometheus-cpp-dev
  libgtest-dev libgmock-dev
  postgresql postgresql-contrib
  ca-certificates procps
)
if [ "$mode" = test ]; then
  packages+=(prometheus python3-yaml pgbouncer faketime iproute2 chromium)
  # Any node >= 18 will do; a machine may already have one from elsewhere (e.g. NodeSource).
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then packages+=(nodejs npm); fi
fi
if [ -n "${DOCKET_EXTRA_PACKAGES:-}" ]; then
  read -r -a extra <<<"$DOCKET_EXTRA_PACKAGES"
  packages+=("${extra[@]}")
fi

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "deps: not root and no sudo; install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
# Refresh the index only when it is missing or older than a day: apt-get update is the slow part.
if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mtime -1 2>/dev/null | head -1)" ]; then
  $sudo apt-get update -qq
fi
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "deps: done"
