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
# Without --api-only it also runs, on a fake-hardware node (Ironic's driver for
# client tests: every interface fake, no driver_info): node console, node
# trait, port group, node vif, allocation create, manage/provide/deploy/
# undeploy with --wait; on the sim node: inspect and node inventory save; and
# node history list on a node whose verification fails.
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
#   FAKE_WAIT        --wait timeout of the fake-hardware node's actions (default 60)
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
FAKE_WAIT="${FAKE_WAIT:-60}"

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
# run <what> <command…>: the command must succeed; a failure is counted and
# the script goes on.
run() {
	local what=$1 out
	shift
	if out=$("$@" 2>&1); then echo "   ok: $what"; else fail "$what: $out"; return 1; fi
}
# inventory_save <node>: `baremetal node inventory save` (python-ironicclient
# 5.1+). Debian bookworm's 5.0.1 lacks the command and speaks at most 1.78, so
# there the script makes the request the command makes: GET
# /v1/nodes/{node}/inventory at 1.81. Prints the body; fails on an error.
inventory_save() {
	if baremetal --help 2>/dev/null | grep -q "node inventory save"; then
		baremetal node inventory save "$1"
		return
	fi
	local auth=() out code
	[[ -n "${OS_USERNAME:-}" ]] && auth=(-u "$OS_USERNAME:${OS_PASSWORD:-}")
	out=$(curl -sS "${auth[@]}" -H 'X-OpenStack-Ironic-API-Version: 1.81' -w '\n%{http_code}' "$IRONIC_URL/v1/nodes/$1/inventory")
	code=${out##*$'\n'}
	echo "${out%$'\n'*}"
	[[ "$code" == 200 ]]
}
# jq_py <python expression over d>: reads JSON on stdin.
jq_py() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

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

# wait_console <True|False>: the console's flip is a conductor's task.
wait_console() {
	local want=$1 deadline=$((SECONDS + WAIT)) got
	while ((SECONDS < deadline)); do
		got=$(baremetal node console show "$NODE_NAME" -f value -c console_enabled 2>&1)
		[[ "$got" == "$want" ]] && { echo "   ok: console_enabled = $want"; return 0; }
		sleep 1
	done
	fail "console_enabled $got after ${WAIT}s, want $want (last_error: $(field last_error))"
	return 1
}

# serial_console: node console enable/show/disable on the node's own
# console interface (sim: the simulated machine's; ipmi: ipmitool-socat).
serial_console() {
	local ci url
	case "$DRIVER" in sim) ci=sim ;; ipmi) ci=ipmitool-socat ;; *) return 0 ;; esac
	step "serial console ($ci): enable, show, disable"
	run "console interface $ci" baremetal node set "$NODE_NAME" --console-interface "$ci" || return 1
	run "console enable" baremetal node console enable "$NODE_NAME" || return 1
	wait_console True || return 1
	url=$(baremetal node console show "$NODE_NAME" -f json 2>&1 | jq_py 'd["console_info"]["type"] + " " + d["console_info"]["url"]' 2>&1)
	[[ "$url" == "socat tcp://"* ]] && echo "   ok: console_info $url" || fail "console_info '$url', want socat tcp://…"
	run "console disable" baremetal node console disable "$NODE_NAME"
	wait_console False
	run "console interface back" baremetal node set "$NODE_NAME" --console-interface no-console
}

# fake_hardware: everything Ironic's client suites do on a fake-hardware node.
fake_hardware() {
	local fake="$NODE_NAME-fake" fuuid mac rc="compat-$$" vif=11111111-2222-4333-8444-$(printf '%012d' $$)
	mac=$(printf '52:54:01:%02x:%02x:%02x' $((RANDOM % 256)) $((RANDOM % 256)) $((RANDOM % 256)))
	step "fake-hardware: enroll $fake (no driver_info, console no-console)"
	fuuid=$(baremetal node create --driver fake-hardware --name "$fake" --resource-class "$rc" \
		--console-interface no-console -f value -c uuid) || { fail "node create --driver fake-hardware"; return 1; }
	run "port create" baremetal port create "$mac" --node "$fuuid"

	step "node console: show; enable and disable are refused without a console interface"
	# Ironic: GET …/states/console answers console_enabled false while it is
	# off (api/controllers/v1/node.py NodeConsoleController.get); PUT
	# validates the console interface first, and no-console fails it with
	# UnsupportedDriverExtension (conductor/manager.py set_console_mode,
	# drivers/modules/noop.py) — 400.
	expect_eq "console_enabled" "$(baremetal node console show "$fake" -f value -c console_enabled 2>&1)" False
	expect_fail "console enable" "does not support console" baremetal node console enable "$fake"
	expect_fail "console disable" "does not support console" baremetal node console disable "$fake"
	# The fake console (Ironic's FakeConsole) starts nothing; enabling and
	# disabling it is recorded at once.
	run "console interface fake" baremetal node set "$fake" --console-interface fake
	run "fake console enable" baremetal node console enable "$fake"
	expect_eq "fake console_enabled" "$(baremetal node console show "$fake" -f value -c console_enabled 2>&1)" True
	run "fake console disable" baremetal node console disable "$fake"
	expect_eq "fake console_enabled after disable" "$(baremetal node console show "$fake" -f value -c console_enabled 2>&1)" False
	run "console interface back" baremetal node set "$fake" --console-interface no-console

	step "node trait"
	run "add trait" baremetal node add trait "$fake" CUSTOM_COMPAT CUSTOM_GPU
	expect_eq "traits" "$(baremetal node trait list "$fake" -f value | sort | tr '\n' ' ')" "CUSTOM_COMPAT CUSTOM_GPU "
	run "remove trait" baremetal node remove trait "$fake" CUSTOM_GPU
	expect_eq "traits after remove" "$(baremetal node trait list "$fake" -f value | tr '\n' ' ')" "CUSTOM_COMPAT "
	# Ironic validates a trait against os-traits or CUSTOM_[A-Z0-9_]+ with a
	# JSON schema (api/controllers/v1/utils.py TRAITS_SCHEMA): 400.
	expect_fail "invalid trait" "is not valid under any of the given schemas" baremetal node add trait "$fake" not-a-trait

	step "port group"
	run "port group create" baremetal port group create --node "$fuuid" --name "$fake-pg" --address "$mac" --mode active-backup
	expect_eq "port group listed" "$(baremetal port group list --node "$fuuid" -f value -c Name 2>&1)" "$fake-pg"
	local pg
	if pg=$(baremetal port group show "$fake-pg" -f value -c uuid 2>&1); then
		# --port-group takes the group's UUID (Ironic's portgroup_uuid is a
		# UUID field; a name is refused).
		run "port set --port-group" baremetal port set "$(baremetal port list --node "$fuuid" -f value -c UUID)" --port-group "$pg"
		expect_eq "port's port group" "$(baremetal port list --node "$fuuid" --long -f value -c 'Portgroup UUID' 2>&1)" "$pg"
	else
		fail "port group show: $pg"
	fi

	step "node vif"
	# Recorded on a port as Ironic's flat and neutron interfaces do. Ironic's
	# noop network interface accepts a VIF and lists none
	# (drivers/modules/network/noop.py); ironfleet's noop records it rather
	# than accept and drop it (api/README.md).
	run "vif attach" baremetal node vif attach "$fake" "$vif"
	expect_eq "vif listed" "$(baremetal node vif list "$fake" -f value -c ID 2>&1)" "$vif"
	run "vif detach" baremetal node vif detach "$fake" "$vif"
	expect_eq "vif list after detach" "$(baremetal node vif list "$fake" -f value -c ID 2>&1)" ""

	step "fake-hardware: manage, provide with --wait $FAKE_WAIT"
	run "manage --wait" baremetal node manage "$fake" --wait "$FAKE_WAIT" || return 1
	run "provide --wait" baremetal node provide "$fake" --wait "$FAKE_WAIT" || return 1
	expect_eq "provision_state" "$(baremetal node show "$fake" -f value -c provision_state)" available
	step "node inventory save: none recorded for a node never inspected by an agent"
	# Ironic: 404 NodeInventoryNotFound (common/exception.py).
	expect_fail "inventory save" "could not be found" inventory_save "$fuuid"

	step "allocation create"
	# Ironic allocates only nodes whose power state is known
	# (conductor/allocations.py _candidate_nodes: with_power_state); a fake
	# node has none until its power is set.
	run "power off" baremetal node power off "$fake"
	local alloc
	if alloc=$(baremetal allocation create --resource-class "$rc" --trait CUSTOM_COMPAT --wait "$FAKE_WAIT" -f json 2>&1); then
		expect_eq "allocation state" "$(jq_py 'd["state"]' <<<"$alloc")" active
		expect_eq "allocated node" "$(jq_py 'd["node_uuid"]' <<<"$alloc")" "$fuuid"
		expect_eq "node's allocation" "$(baremetal node show "$fake" -f value -c allocation_uuid)" "$(jq_py 'd["uuid"]' <<<"$alloc")"
		run "allocation delete" baremetal allocation delete "$(jq_py 'd["uuid"]' <<<"$alloc")"
	else
		fail "allocation create: $alloc"
	fi
	# Ironic: the allocation is created, then fails (state error) with
	# conductor/allocations.py's reason, which --wait reports.
	expect_fail "allocation without a match" "no available nodes match the resource class $rc-none" \
		baremetal allocation create --resource-class "$rc-none" --wait "$FAKE_WAIT"

	step "fake-hardware: deploy and undeploy with --wait $FAKE_WAIT"
	run "deploy --wait" baremetal node deploy "$fake" --wait "$FAKE_WAIT" &&
		expect_eq "provision_state" "$(baremetal node show "$fake" -f value -c provision_state)" active
	run "undeploy --wait" baremetal node undeploy "$fake" --wait "$FAKE_WAIT" &&
		expect_eq "provision_state" "$(baremetal node show "$fake" -f value -c provision_state)" available
	run "delete" baremetal node delete "$fake"
}

# history: Ironic records a failed verification as a node history event
# (conductor/verify.py: event_type verify, error severity).
history() {
	local bad="$NODE_NAME-unverifiable" deadline
	step "node history list: a node whose verification fails"
	baremetal node create --driver "$DRIVER" --name "$bad" --driver-info sim_machine=no-such-machine >/dev/null ||
		{ fail "node create $bad"; return 1; }
	run "manage" baremetal node manage "$bad"
	deadline=$((SECONDS + 60))
	until [[ "$(baremetal node show "$bad" -f value -c target_provision_state)" == None ]]; do
		((SECONDS < deadline)) || { fail "verification of $bad did not finish"; break; }
		sleep 1
	done
	expect_eq "provision_state after failed verification" "$(baremetal node show "$bad" -f value -c provision_state)" enroll
	expect_eq "history event" "$(baremetal node history list "$bad" --long -f value -c 'Event Origin Type' -c Severity 2>&1 | head -1)" "ERROR verify"
	run "delete" baremetal node delete "$bad"
}

fake_hardware || true
history || true

step "manage"
baremetal node manage "$NODE_NAME" --wait "$WAIT"
wait_state manageable
step "inspect, then node inventory save"
if run "inspect --wait" baremetal node inspect "$NODE_NAME" --wait "$WAIT"; then
	if inv=$(inventory_save "$uuid" 2>&1); then
		expect_eq "inventory has the port's MAC" \
			"$(MAC=$PORT_MAC jq_py 'any(i["mac_address"] == __import__("os").environ["MAC"] for i in d["inventory"]["interfaces"])' <<<"$inv" 2>&1)" True
	else
		fail "inventory save: $inv"
	fi
fi
step "provide"
baremetal node provide "$NODE_NAME" --wait "$WAIT"
wait_state available
serial_console
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
