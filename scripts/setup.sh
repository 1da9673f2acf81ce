#!/usr/bin/env bash
# Installs what the test suite needs beyond Go, idempotently: Debian
# packages (protoc for the generated-code check, tini for the PID 1
# comparison, inotify-tools for the fsevents benchmark, chromium for the
# browser tests) and the Node packages of e2e/ (the official client, the
# reference OT type, playwright-core).
# Safe to run again: it only installs what is missing or out of date.
set -euo pipefail
cd "$(dirname "$0")/.."

debs=(protobuf-compiler tini inotify-tools chromium)
missing=()
for pkg in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null ||
    { $sudo apt-get update >/dev/null && $sudo apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; }
fi

# Node packages: reinstall only when the lock file changed since the last
# install (npm ci removes node_modules first, so it is not cheap).
for dir in e2e web/ui; do
  stamp="$dir/node_modules/.conman-lock-sha"
  want=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "setup: npm ci in $dir"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
    echo "$want" > "$stamp"
  fi
done
