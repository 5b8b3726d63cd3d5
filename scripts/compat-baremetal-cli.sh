#!/usr/bin/env bash
# compat-baremetal-cli.sh — drive ironfleet with the real `baremetal` CLI
# (Debian's python3-ironicclient) through enroll → manage → provide → deploy →
# undeploy → delete, and exit non-zero on any difference from what Ironic does.
#
# Usage: IRONIC_URL=http://127.0.0.1:6385 scripts/compat-baremetal-cli.sh [--api-only]
#
#   --api-only   only what needs no conductor: create, show, list, set, ports,
#                version negotiation, error messages, 202 on manage, delete.
#
# Environment (all optional):
#   IRONIC_URL       API base URL (default http://127.0.0.1:6385)
#   NODE_NAME        node to enroll (default compat-<pid>)
#   DRIVER           hardware type (default sim)
#   SIM_MACHINE      driver_info sim_machine (default NODE_NAME); for ipmi set DRIVER_INFO
#   DRIVER_INFO      extra --driver-info k=v pairs, space-separated
#   PORT_MAC         MAC of the node's port (default 52:54:00:<random>)
#   IMAGE_SOURCE     instance_info image_source (default http://127.0.0.1:8080/image.raw)
#   IMAGE_CHECKSUM   instance_info image_checksum (default: none)
#   WAIT             seconds to wait for each state (default 600)
#   OS_USERNAME / OS_PASSWORD   for an API in http_basic mode
set -euo pipefail

API_ONLY=0
[[ "${1:-}" == "--api-only" ]] && API_ONLY=1

IRONIC_URL="${IRONIC_URL:-http://127.0.0.1:6385}"
NODE_NAME="${NODE_NAME:-compat-$$}"
DRIVER="${DRIVER:-sim}"
SIM_MACHINE="${SIM_MACHINE:-$NODE_NAME}"
PORT_MAC="${PORT_MAC:-$(printf '52:54:00:%02x:%02x:%02x' $((RANDOM % 256)) $((RANDOM % 256)) $((RANDOM % 256)))}"
IMAGE_SOURCE="${IMAGE_SOURCE:-http://127.0.0.1:8080/image.raw}"
WAIT="${WAIT:-600}"

if ! command -v baremetal >/dev/null 2>&1; then
	echo "== installing python3-ironicclient (the baremetal CLI) with apt-get"
	if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; else SUDO=; fi
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-ironicclient >/dev/null
fi

export OS_ENDPOINT="$IRONIC_URL"
if [[ -n "${OS_USERNAME:-}" ]]; then
	export OS_AUTH_TYPE=http_basic
else
	export OS_AUTH_TYPE=none
fi
unset OS_CLOUD OS_AUTH_URL

FAILED=0
step() { echo "== $*"; }
fail() {
	echo "FAIL: $*" >&2
	FAILED=$((FAILED + 1))
}
# expect_eq <what> <got> <want>
expect_eq() {
	if [[ "$2" != "$3" ]]; then fail "$1: got '$2', want '$3'"; else echo "   ok: $1 = $3"; fi
}
# expect_fail <what> <substring of the error> <command…>: the command must fail
# and print the substring (the decoded faultstring).
expect_fail() {
	local what=$1 want=$2
	shift 2
	local out
	if out=$("$@" 2>&1); then
		fail "$what: succeeded, want an error containing '$want'"
	elif [[ "$out" != *"$want"* ]]; then
		fail "$what: error '$out' does not contain '$want'"
	else
		echo "   ok: $what refused: $want"
	fi
}
field() { baremetal node show "$NODE_NAME" -f value -c "$1"; }
# wait_state <state>: poll as --wait does, giving up after WAIT seconds.
wait_state() {
	local want=$1 deadline=$((SECONDS + WAIT)) got
	while ((SECONDS < deadline)); do
		got=$(field provision_state)
		[[ "$got" == "$want" ]] && { echo "   ok: provision_state = $want"; return 0; }
		[[ "$got" == *failed || "$got" == error ]] && { fail "provision_state $got (last_error: $(field last_error))"; return 1; }
		sleep 1
	done
	fail "provision_state $(field provision_state) after ${WAIT}s, want $want"
	return 1
}

step "API at $IRONIC_URL; baremetal $(baremetal --version 2>&1)"
# The CLI asks for 1.78 and must get it (or negotiate): any call proves it.
baremetal driver list -f value -c "Supported driver(s)" | grep -qx "$DRIVER" || fail "driver list lacks $DRIVER"

step "enroll $NODE_NAME"
info=(--driver-info "sim_machine=$SIM_MACHINE")
for kv in ${DRIVER_INFO:-}; do info+=(--driver-info "$kv"); done
uuid=$(baremetal node create --driver "$DRIVER" --name "$NODE_NAME" "${info[@]}" -f value -c uuid)
[[ "$uuid" =~ ^[0-9a-f-]{36}$ ]] || fail "node create printed '$uuid', want a UUID"
expect_eq "provision_state after create" "$(field provision_state)" enroll
expect_eq "reservation after create" "$(field reservation)" None
expect_fail "duplicate name" "already exists" baremetal node create --driver "$DRIVER" --name "$NODE_NAME"
expect_fail "unknown driver" "No valid host was found" baremetal node create --driver nosuch
baremetal port create "$PORT_MAC" --node "$uuid" >/dev/null
expect_fail "duplicate MAC" "already exists" baremetal port create "$PORT_MAC" --node "$uuid"
expect_eq "port listed" "$(baremetal port list --node "$uuid" -f value -c Address)" "$PORT_MAC"
baremetal node set "$NODE_NAME" --instance-info "image_source=$IMAGE_SOURCE" --extra compat=yes
[[ -n "${IMAGE_CHECKSUM:-}" ]] && baremetal node set "$NODE_NAME" --instance-info "image_checksum=$IMAGE_CHECKSUM"
expect_eq "extra after set" "$(baremetal node show "$NODE_NAME" -f json -c extra | python3 -c 'import json,sys; print(json.load(sys.stdin)["extra"]["compat"])')" yes
baremetal node list -f value -c UUID | grep -qx "$uuid" || fail "node list lacks $uuid"
expect_fail "deploy from enroll" "can not be performed on node" baremetal node deploy "$NODE_NAME"
expect_fail "unknown node" "could not be found" baremetal node show 00000000-0000-0000-0000-000000000000

if ((API_ONLY)); then
	step "manage is accepted (no conductor: the node stays enroll)"
	baremetal node manage "$NODE_NAME"
	out=$(baremetal node power on "$NODE_NAME" 2>&1) && fail "power on while the manage task holds the lock succeeded" ||
		{ [[ "$out" == *"is locked by host"* ]] && echo "   ok: NodeLocked: $out" || fail "power on: '$out', want NodeLocked"; }
	step "delete once the manage task's unclaimed lock is free again (its claim timeout)"
	deadline=$((SECONDS + WAIT + 60))
	until baremetal node delete "$NODE_NAME" >/dev/null 2>&1; do
		((SECONDS < deadline)) || { fail "delete still refused after $((WAIT + 60))s"; break; }
		sleep 2
	done
	expect_fail "show after delete" "could not be found" baremetal node show "$NODE_NAME"
	echo "== api-only: $FAILED failure(s)"
	exit $((FAILED > 0))
fi

step "manage"
baremetal node manage "$NODE_NAME" --wait "$WAIT"
wait_state manageable
step "provide"
baremetal node provide "$NODE_NAME" --wait "$WAIT"
wait_state available
step "power on, then off"
baremetal node power on "$NODE_NAME" --power-timeout 60 || fail "power on"
baremetal node power off "$NODE_NAME" --power-timeout 60 || fail "power off"
step "deploy"
baremetal node deploy "$NODE_NAME" --wait "$WAIT"
wait_state active
expect_fail "delete while active" "Can not delete node" baremetal node delete "$NODE_NAME"
step "undeploy"
baremetal node undeploy "$NODE_NAME" --wait "$WAIT"
wait_state available
step "delete"
baremetal node delete "$NODE_NAME"
expect_fail "show after delete" "could not be found" baremetal node show "$NODE_NAME"

echo "== $FAILED failure(s)"
exit $((FAILED > 0))
