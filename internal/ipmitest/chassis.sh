#!/bin/sh
# chassis_control program for ipmi_sim (see package ipmitest): records what
# the BMC was told in files of the harness directory and returns at once.
#   chassis.sh <dir> get power|boot ...      prints power:1|0, boot:<dev>
#   chassis.sh <dir> set <what> <value> ...  power 1|0, boot <dev>, reset 1, shutdown 1
# A count in <dir>/fail makes that many "set" calls fail (exit 1).
d=$1
op=$2
shift 2
echo "$op $*" >> "$d/calls.log"
case "$op" in
get)
	for k in "$@"; do
		case "$k" in
		power) echo "power:$(cat "$d/power" 2>/dev/null || echo 0)" ;;
		boot) echo "boot:$(cat "$d/boot" 2>/dev/null || echo none)" ;;
		esac
	done
	;;
set)
	if [ -s "$d/fail" ]; then
		n=$(cat "$d/fail")
		if [ "$n" -gt 0 ]; then
			echo $((n - 1)) > "$d/fail"
			exit 1
		fi
	fi
	while [ $# -ge 2 ]; do
		case "$1" in
		power) echo "$2" > "$d/power" ;;
		boot) echo "$2" > "$d/boot" ;;
		shutdown) echo 0 > "$d/power" ;;
		reset) ;;
		esac
		shift 2
	done
	;;
*)
	exit 1
	;;
esac
exit 0
