#!/usr/bin/env bash
# Issue 18's side-by-side: OpenStack Ironic (Debian's ironic-api and
# ironic-conductor, 21.4 on bookworm) and ironfleet, measured on this machine
# by the same lifecycle clients in one run: N nodes, C clients, enroll →
# manageable → available → active.
#
#   scripts/ironic-bench.sh            (make build first: it runs bin/ironfleet)
#
# Ironic runs as issue 18 recorded it: API and conductor split into two
# processes talking JSON-RPC (no RabbitMQ), noauth, sqlite, fake-hardware with
# fake interfaces, no cleaning. Both run from a private config in a temporary
# directory, not as system services, and are stopped at exit. Then
# `ironfleet bench fleet --lifecycle` (an in-process fleet, instant machines)
# runs with the same N and C, and a table of both and their ratio is printed.
#
# Environment (defaults in brackets):
#   IRONFLEET [bin/ironfleet]     the ironfleet binary
#   BENCH_NODES [200]             nodes, BENCH_CLIENTS [8] clients, BENCH_TIMEOUT [10m] per run
#   IRONIC_PORT [16385]           ironic-api's port; IRONIC_RPC_PORT [18089] the
#                                 conductor's JSON-RPC port (both on 127.0.0.1)
#   IRONIC_KEEP [0]               1 keeps the temporary directory (config, logs, sqlite)
#   BENCH_OUT [.bench/ironic]      where both runs' JSON and the table are written
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
ironfleet=${IRONFLEET:-bin/ironfleet}
nodes=${BENCH_NODES:-200}
clients=${BENCH_CLIENTS:-8}
port=${IRONIC_PORT:-16385}
rpc_port=${IRONIC_RPC_PORT:-18089}
out=${BENCH_OUT:-.bench/ironic}
timeout=${BENCH_TIMEOUT:-10m}

log() { printf 'ironic-bench: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

[ -x "$ironfleet" ] || die "$ironfleet not found: run make build"
if ! command -v ironic-api >/dev/null || ! command -v ironic-conductor >/dev/null; then
  log "installing Debian's ironic-api and ironic-conductor"
  # policy-rc.d or not, the packaged services are not what is measured:
  # they are stopped below if the package started them.
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y ironic-api ironic-conductor >&2
fi
version=$(dpkg-query -W -f '${Version}' ironic-conductor 2>/dev/null || echo unknown)
command -v curl >/dev/null || die "curl not found: scripts/ensure-deps.sh run"
for p in "$port" "$rpc_port"; do
  if curl -s --max-time 1 -o /dev/null "http://127.0.0.1:$p/"; then die "port $p is taken: set IRONIC_PORT / IRONIC_RPC_PORT"; fi
done

dir=$(mktemp -d /tmp/ironic-bench.XXXXXX)
pids=()
cleanup() {
  local rc=$? pid
  for pid in "${pids[@]}"; do
    # Each was started with setsid: its process group is its own, and holds
    # the API's forked workers.
    kill -TERM -- "-$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  done
  if [ "${IRONIC_KEEP:-0}" = 1 ] || [ $rc -ne 0 ]; then log "kept $dir (config, logs, sqlite)"; else rm -rf "$dir"; fi
}
trap cleanup EXIT

# The config: every option named here is Ironic 21.4's (stable/2023.1),
# ironic/conf/*.py and ironic_lib/json_rpc/__init__.py of the installed
# packages.
cat >"$dir/ironic.conf" <<EOT
[DEFAULT]
# ironic/conf/default.py (auth_strategy): no Keystone in front of the API
auth_strategy = noauth
# ironic/conf/default.py: JSON-RPC instead of oslo.messaging, so the API and
# the conductor are two processes without a message broker. The conductor's
# host is the address the API's JSON-RPC client connects to
# (ironic_lib/json_rpc/client.py builds http://<host>:<port>).
rpc_transport = json-rpc
host = 127.0.0.1
enabled_hardware_types = fake-hardware
enabled_bios_interfaces = fake,no-bios
enabled_boot_interfaces = fake
enabled_console_interfaces = fake,no-console
enabled_deploy_interfaces = fake
enabled_inspect_interfaces = fake,no-inspect
enabled_management_interfaces = fake
enabled_network_interfaces = noop
enabled_power_interfaces = fake
enabled_raid_interfaces = fake,no-raid
enabled_rescue_interfaces = fake,no-rescue
enabled_storage_interfaces = fake,noop
enabled_vendor_interfaces = fake,no-vendor
use_stderr = false

[api]
host_ip = 127.0.0.1
port = $port

[conductor]
# ironic/conf/conductor.py: provide goes manageable → available without
# cleaning (the clients also enroll with automated_clean false)
automated_clean = false

[database]
connection = sqlite:///$dir/ironic.sqlite

[dhcp]
# ironic/conf/dhcp.py: no Neutron
dhcp_provider = none

[json_rpc]
auth_strategy = noauth
host_ip = 127.0.0.1
port = $rpc_port

[oslo_concurrency]
lock_path = $dir/lock
EOT

log "Ironic $version: schema, then ironic-api and ironic-conductor (config and logs in $dir)"
ironic-dbsync --config-file "$dir/ironic.conf" create_schema >"$dir/dbsync.log" 2>&1 || { cat "$dir/dbsync.log" >&2; die "ironic-dbsync failed"; }
setsid ironic-conductor --config-file "$dir/ironic.conf" --log-file "$dir/conductor.log" >"$dir/conductor.out" 2>&1 </dev/null &
pids+=($!)
conductor=$!
setsid ironic-api --config-file "$dir/ironic.conf" --log-file "$dir/api.log" >"$dir/api.out" 2>&1 </dev/null &
pids+=($!)
api=$!

# Ready once the API answers and a live conductor offers fake-hardware.
deadline=$((SECONDS + 120))
until curl -fsS --max-time 2 "http://127.0.0.1:$port/v1/drivers" 2>/dev/null | grep -q '"fake-hardware"'; do
  kill -0 "$api" 2>/dev/null || { tail -n 30 "$dir/api.log" "$dir/api.out" >&2 || true; die "ironic-api exited"; }
  kill -0 "$conductor" 2>/dev/null || { tail -n 30 "$dir/conductor.log" "$dir/conductor.out" >&2 || true; die "ironic-conductor exited"; }
  [ $SECONDS -lt $deadline ] || die "Ironic not ready after 120s; logs in $dir"
  sleep 0.5
done
log "Ironic ready: api pid $api, conductor pid $conductor"

mkdir -p "$out"
load0=$(cut -d' ' -f1-3 /proc/loadavg)
log "load average before: $load0"
log "measuring Ironic: $nodes nodes, $clients clients"
"$ironfleet" bench fleet --lifecycle --nodes "$nodes" --clients "$clients" --json \
  --timeout "$timeout" --target "http://127.0.0.1:$port" --driver fake-hardware --target-pids "$api,$conductor" >"$out/ironic.json"
load1=$(cut -d' ' -f1-3 /proc/loadavg)
log "measuring ironfleet (in-process fleet, instant machines): $nodes nodes, $clients clients"
"$ironfleet" bench fleet --lifecycle --nodes "$nodes" --clients "$clients" --json --timeout "$timeout" >"$out/ironfleet.json"
load2=$(cut -d' ' -f1-3 /proc/loadavg)

python3 - "$out/ironic.json" "$out/ironfleet.json" "$version" "$load0" "$load1" "$load2" <<'EOF' | tee "$out/table.md"
import json, sys
ironic, ours = (json.load(open(p)) for p in sys.argv[1:3])
version, loads = sys.argv[3], sys.argv[4:7]
def total(r):
    h = [h for h in r["hops"] if h["name"].startswith("total")][0]
    return h["p50_ms"], h["p99_ms"]
print(f"Ironic {version} (split API + conductor, JSON-RPC, fake-hardware, sqlite) and ironfleet "
      f"(bench fleet --lifecycle, in-process): {ironic['nodes']} nodes, {ironic['clients']} clients; "
      f"load average before / between / after: {loads[0]} / {loads[1]} / {loads[2]}")
print()
print("| measure | Ironic | ironfleet | ironfleet ÷ Ironic |")
print("| --- | ---: | ---: | ---: |")
def row(name, a, b, fmt, better_low=False):
    ratio = (a / b if better_low else b / a) if a and b else float("nan")
    print(f"| {name} | {fmt.format(a)} | {fmt.format(b)} | {ratio:.2f}× |")
print(f"| nodes active / stuck | {ironic['active']} / {ironic['stuck']} | {ours['active']} / {ours['stuck']} | |")
row("wall time, s", ironic["seconds"], ours["seconds"], "{:.1f}", better_low=True)
row("nodes/s", ironic["nodes_per_second"], ours["nodes_per_second"], "{:.1f}")
row("CPU-s per node (server + clients)", ironic["cpu_s_per_node"], ours["cpu_s_per_node"], "{:.4f}", better_low=True)
t = ironic["target"]
print(f"| CPU-s per node, server only | {t['cpu_seconds']/max(ironic['active'],1):.4f} ({t['processes']} processes) | n/a (one process) | |")
for p in t["by_process"]:
    print(f"| … of which {p['command'].split()[0]} (pid {p['pid']} and its children) | {p['cpu_seconds']/max(ironic['active'],1):.4f} | | |")
print(f"| cores busy | {ironic['cores_busy']:.2f} | {ours['cores_busy']:.2f} | |")
p50a, p99a = total(ironic); p50b, p99b = total(ours)
row("node POST → seen active, p50 ms", p50a, p50b, "{:.0f}", better_low=True)
row("node POST → seen active, p99 ms", p99a, p99b, "{:.0f}", better_low=True)
print(f"| client requests (409/503) | {ironic['requests']} ({ironic['conflicts']}) | {ours['requests']} ({ours['conflicts']}) | |")
print()
print("Ratios are ironfleet over Ironic where more is better (nodes/s), Ironic over ironfleet where less is.")
EOF
log "JSON of both runs and the table in $out/"
