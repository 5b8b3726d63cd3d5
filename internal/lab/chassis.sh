#!/bin/sh
# chassis_control program for ipmi_sim driving one QEMU machine (package lab).
#   chassis.sh <ipmidir> get power|boot ...      prints power:1|0, boot:<dev>
#   chassis.sh <ipmidir> set <what> <value> ...  power 1|0, boot <dev>, reset 1, shutdown 1
# ipmi_sim is single-threaded and reads our output to EOF: answer at once
# and leave no child holding stdout (QEMU is started daemonized, its stdio
# redirected). The machine's settings are in machine.env next to this file.
M=$(dirname "$0")
. "$M/machine.env"
shift

running() {
	[ -s "$M/qemu.pid" ] && kill -0 "$(cat "$M/qemu.pid")" 2>/dev/null
}

note() {
	echo "$(date +%s.%N) $*" >> "$M/chassis.log"
}

stop() {
	if running; then
		pid=$(cat "$M/qemu.pid")
		kill -9 "$pid" 2>/dev/null
		i=0
		while kill -0 "$pid" 2>/dev/null && [ $i -lt 200 ]; do
			sleep 0.01
			i=$((i + 1))
		done
		note stopped
	fi
	rm -f "$M/qemu.pid"
}

start() {
	running && return 0
	boot=$(cat "$M/boot" 2>/dev/null)
	order=order=c
	# IPMI's boot device is for the next boot only: PXE once, then the
	# disk (a reboot by the guest lands on the disk too).
	[ "$boot" = pxe ] && order=once=n,order=c
	if [ -n "$KERNEL" ]; then
		set -- -kernel "$KERNEL" -initrd "$INITRD" -append "$APPEND"
	else
		set --
	fi
	# The firmware the machine is set to (SetFirmware): OVMF with its own
	# variable store, kept across power cycles as NVRAM is, or SeaBIOS.
	fw=$(cat "$M/firmware" 2>/dev/null)
	if [ "$fw" = uefi ]; then
		[ -e "$M/ovmf-vars.fd" ] || cp "$OVMF_VARS" "$M/ovmf-vars.fd" || return 1
		set -- "$@" -drive "if=pflash,format=raw,unit=0,readonly=on,file=$OVMF_CODE" \
			-drive "if=pflash,format=raw,unit=1,file=$M/ovmf-vars.fd"
	fi
	# OVMF ignores -boot, and SeaBIOS puts disks with a boot index before
	# it: a PXE boot there is the NIC first in QEMU's boot order.
	if [ "$boot" = pxe ] && { [ "$fw" = uefi ] || [ -n "$BOOTINDEX" ]; }; then
		set -- "$@" -global virtio-net-pci.bootindex=0
	fi
	# shellcheck disable=SC2086 # QEMU_ARGS and EXTRA_ARGS are split on purpose
	"$QEMU" $QEMU_ARGS $EXTRA_ARGS "$@" -boot "$order" -daemonize -pidfile "$M/qemu.pid" \
		</dev/null >/dev/null 2>>"$M/qemu.err" || return 1
	[ "$boot" = pxe ] && echo default > "$M/boot"
	note started "$order"
	if [ -n "$OWNER" ]; then
		# QEMU is nobody's child: should the process owning the machine
		# die without cleaning up (a test binary's timeout panic), a
		# watchdog kills it. It holds none of our stdio.
		qpid=$(cat "$M/qemu.pid")
		(
			while kill -0 "$OWNER" 2>/dev/null && kill -0 "$qpid" 2>/dev/null; do
				sleep 1
			done
			kill -0 "$OWNER" 2>/dev/null || kill -9 "$qpid" 2>/dev/null
		) </dev/null >/dev/null 2>&1 &
	fi
}

op=$1
shift
case "$op" in
get)
	for k in "$@"; do
		case "$k" in
		power) if running; then echo power:1; else echo power:0; fi ;;
		boot) echo "boot:$(cat "$M/boot" 2>/dev/null || echo none)" ;;
		esac
	done
	;;
set)
	while [ $# -ge 2 ]; do
		v=$(echo "$2" | tr -d '"')
		note set "$1" "$v"
		case "$1" in
		power) if [ "$v" = 1 ]; then start || exit 1; else stop; fi ;;
		reset) stop; start || exit 1 ;;
		shutdown) stop ;;
		boot) echo "$v" > "$M/boot" ;;
		esac
		shift 2
	done
	;;
*)
	exit 1
	;;
esac
exit 0
