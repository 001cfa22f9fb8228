#!/usr/bin/env bash
# Installs the real OCI clients that test/interop drives (skopeo, podman, containerd/ctr)
# plus CNCF Distribution as a reference peer. Safe to run repeatedly: when everything is
# present it returns without touching apt.
set -euo pipefail

# Rootful podman with the vfs driver needs neither uidmap nor fuse-overlayfs; runc/crun,
# conmon and the containers-common config files come in as hard dependencies.
# openssl makes the throwaway certificates of the TLS tests (test/auth/tls.test.ts).
# chromium is the headless browser the web UI tests drive through playwright-core (test/ui).
packages=(skopeo podman containerd docker-registry openssl chromium)
binaries=(skopeo podman containerd ctr docker-registry openssl chromium)

missing=0
for bin in "${binaries[@]}"; do
  command -v "$bin" >/dev/null 2>&1 || missing=1
done
[ "$missing" -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "install-clients: need root to apt-get install ${packages[*]}" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
# apt chatters on stderr even with -qq (debconf notes); keep it unless something fails.
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${packages[@]}"; } >"$log" 2>&1; then
  cat "$log" >&2
  exit 1
fi

# Debian's docker-registry package enables a system service on port 5000; the tests start
# their own instances, so keep the packaged one from squatting on a port if systemd runs.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  systemctl disable --now docker-registry >/dev/null 2>&1 || true
  systemctl disable --now containerd >/dev/null 2>&1 || true
fi

for bin in "${binaries[@]}"; do
  command -v "$bin" >/dev/null 2>&1 || { echo "install-clients: $bin still missing" >&2; exit 1; }
done
