#!/usr/bin/env bash
# Installs the tools lifeboat is benchmarked against, from Debian's
# packages, without starting their services: the benchmark runs each one
# itself, inside a network namespace, and a daemon started by the package
# would bind ports on this machine's own network.
set -euo pipefail
pkgs=(dnsmasq-base kea-dhcp4-server kea-admin nginx-light tftpd-hpa cryptsetup-bin argon2 busybox-static curl)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "bench: installing ${missing[*]}"
ls /var/lib/apt/lists/*_Packages >/dev/null 2>&1 || apt-get update -qq
made=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod 755 /usr/sbin/policy-rc.d
  made=1
fi
trap '[ -n "$made" ] && rm -f /usr/sbin/policy-rc.d' EXIT
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
