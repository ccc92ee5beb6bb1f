#!/usr/bin/env bash
# Installs every package the build, the tests and the demo need: Debian packages and
# the browser test's npm package. Idempotent, and fast when everything is there.
# Run as root (or with sudo available).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

packages=(
  build-essential cmake ninja-build pkg-config git
  libboost1.81-dev libboost-url1.81-dev libboost-system1.81-dev libboost-json1.81-dev
  libgtest-dev libgmock-dev googletest libbenchmark-dev
  libcli11-dev
  libhiredis-dev libssl-dev redis-server redis-tools openssl
  libpq-dev postgresql-15
  librdkafka-dev
  libnats-dev nats-server
  liburing-dev
  chromium
  clang-format
)
# Node.js may come from elsewhere (e.g. NodeSource); take Debian's only if it is absent.
command -v node >/dev/null 2>&1 || packages+=(nodejs)
command -v npm >/dev/null 2>&1 || packages+=(npm)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} > 0)); then
  sudo_cmd=()
  if [[ $(id -u) -ne 0 ]]; then
    sudo_cmd=(sudo)
  fi
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The browser test drives Debian's Chromium with playwright-core (which never
# downloads a browser of its own).
if [[ ! -d $root/tests/browser/node_modules/playwright-core ]]; then
  echo "install-deps: installing the browser test's npm packages"
  (cd "$root/tests/browser" && npm ci --no-audit --no-fund --loglevel=error)
fi
