#!/usr/bin/env bash
# Installs the system packages ironfleet's tests and dev fleet need, when they
# are missing, from Debian's archive: as root directly, otherwise through sudo.
# Usage: scripts/ensure-deps.sh [group...]   groups: test (default), run, e2e
set -euo pipefail

declare -A need=()
want() { command -v "$1" >/dev/null 2>&1 || need["$2"]=1; }
# want_py <module> <package>: a module of Debian's python3 (not a virtualenv's).
want_py() { /usr/bin/python3 -c "import $1" >/dev/null 2>&1 || need["$2"]=1; }

groups=("${@:-test}")
for g in "${groups[@]}"; do
  case "$g" in
    run)  want redis-server redis-server
          want redis-cli redis-tools
          want curl curl
          want setsid util-linux ;;
    test) want redis-server redis-server
          want redis-sentinel redis-sentinel
          want ipmi_sim openipmi
          want ipmitool ipmitool
          want socat socat
          want tftp tftp-hpa
          want ip iproute2
          want unshare util-linux
          want losetup mount
          want qemu-img qemu-utils   # the agent tests build qcow2 images
          want curl curl
          # the real clients the compat tests drive (internal/fleet/compat_test.go)
          want baremetal python3-ironicclient
          want_py openstack python3-openstacksdk
          # the real browser the web console's test drives (internal/fleet/ui_test.go)
          want chromium chromium
          # Prometheus and promtool, which check the dashboard and the alerting
          # rules (deployments/prometheus_test.go); only the binaries are run,
          # never the packaged service
          want prometheus prometheus
          want promtool prometheus ;;
    e2e)  want redis-server redis-server
          want ipmi_sim openipmi
          want ipmitool ipmitool
          want socat socat
          want dpkg-deb dpkg
          want qemu-system-x86_64 qemu-system-x86
          [ -e /usr/lib/ipxe/qemu/efi-virtio.rom ] || need[ipxe-qemu]=1
          [ -e /usr/lib/syslinux/modules/bios/ldlinux.c32 ] || need[syslinux-common]=1
          want syslinux syslinux
          want mcopy mtools
          want mkfs.vfat dosfstools
          [ -e /usr/lib/SYSLINUX.EFI/efi64/syslinux.efi ] || need[syslinux-efi]=1
          [ -e /usr/share/OVMF/OVMF_CODE_4M.fd ] || need[ovmf]=1
          [ -e /usr/lib/ipxe/snponly.efi ] || need[ipxe]=1
          want qemu-img qemu-utils ;;
    *) echo "ensure-deps: unknown group '$g'" >&2; exit 2 ;;
  esac
done

[ ${#need[@]} -eq 0 ] && exit 0
pkgs=("${!need[@]}")
echo "ensure-deps: installing missing packages: ${pkgs[*]}"

if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  sudo=(sudo -n)
else
  echo "ensure-deps: cannot install ${pkgs[*]}: not root and no password-less sudo." >&2
  echo "ensure-deps: install them yourself (apt-get install ${pkgs[*]}) and run again." >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-deps: no apt-get here; install ${pkgs[*]} with your system's package manager." >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
echo "ensure-deps: installed ${pkgs[*]}"
