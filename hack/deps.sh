#!/usr/bin/env bash
# Installs what lifeboat's build, tests and demo need on a Debian machine.
# Idempotent: installs only what is missing.
set -euo pipefail
pkgs=(qemu-system-x86 ipxe-qemu ipxe ovmf cryptsetup-bin kmod cpio zstd e2fsprogs fdisk
      openssh-client iproute2 xz-utils ca-certificates dnsmasq-base dosfstools mtools systemd-boot-efi curl chromium perl-base
      debootstrap ssh-audit)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
# apt-get download (the kernel package) and apt-cache need package lists.
if [ ${#missing[@]} -gt 0 ] || ! ls /var/lib/apt/lists/*_Packages >/dev/null 2>&1; then
  apt-get update -qq
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
go mod download
