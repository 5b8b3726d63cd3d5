#!/usr/bin/env bash
# Issue 18's scaling out: the same workload on `make up` fleets with 1, 2 and
# 4 conductor processes. For each count, deployments/local/fleet.sh starts a
# fresh fleet (3 NATS, Redis, the API, N conductors, and `ironfleet sim` with
# the machines behind IPMI BMCs, not enrolled), then the lifecycle clients of
# `ironfleet bench fleet --lifecycle --target` enroll every machine and take
# it to active through the API; the fleet is stopped before the next count.
# It prints nodes/s (active nodes over the time to the last one seen active:
# a stuck node would otherwise count the clients' wait until the timeout),
# CPU per node and each conductor's share of the tasks (from each
# conductor's metrics endpoint).
#
#   scripts/scaleout-bench.sh          (make build build-nats first)
#
# Environment (defaults in brackets):
#   SCALE_CONDUCTORS ["1 2 4"]     the conductor counts, in order
#   BENCH_NODES [1000]             machines and nodes; BENCH_CLIENTS [8] clients
#   BENCH_TIMEOUT [20m]            per count
#   FLEET_HEARTBEAT_TIMEOUT [5s]   what the API tells agents (they beat every 30–60 %)
#   FLEET_PORT_OFFSET [0]          as fleet.sh (to run beside another fleet)
#   BENCH_OUT [.bench/scaleout]    each count's JSON, fleet state and the table
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
ironfleet=${IRONFLEET:-bin/ironfleet}
counts=${SCALE_CONDUCTORS:-1 2 4}
nodes=${BENCH_NODES:-1000}
clients=${BENCH_CLIENTS:-8}
timeout=${BENCH_TIMEOUT:-20m}
off=${FLEET_PORT_OFFSET:-0}
out=${BENCH_OUT:-.bench/scaleout}
export FLEET_HEARTBEAT_TIMEOUT=${FLEET_HEARTBEAT_TIMEOUT:-5s}

log() { printf 'scaleout-bench: %s\n' "$*" >&2; }
[ -x "$ironfleet" ] || { log "$ironfleet not found: run make build"; exit 1; }
mkdir -p "$out"
state=
down() { [ -z "$state" ] || FLEET_DIR=$state deployments/local/fleet.sh down || true; }
trap down EXIT

for n in $counts; do
  state=$out/fleet-$n
  rm -rf "$state"
  log "$n conductor(s): make up with $nodes simulated machines"
  FLEET_DIR=$state FLEET_CONDUCTORS=$n FLEET_SIM_NODES=$nodes FLEET_SIM_ENROLL=0 FLEET_WAIT=300 \
    deployments/local/fleet.sh up >"$out/up-$n.log" 2>&1 || { tail -n 30 "$out/up-$n.log" >&2; exit 1; }
  pids=$(cat "$state"/pid/*.pid | paste -sd, -)
  metrics=$(for ((i = 1; i <= n; i++)); do printf 'http://127.0.0.1:%d/metrics\n' $((9385 + i + off)); done | paste -sd, -)
  load=$(cut -d' ' -f1-3 /proc/loadavg)
  log "$n conductor(s): $nodes nodes, $clients clients (load average $load)"
  "$ironfleet" bench fleet --lifecycle --json --nodes "$nodes" --clients "$clients" --timeout "$timeout" \
    --target "http://127.0.0.1:$((6385 + off))" --machines "$state/log/sim.log" \
    --target-pids "$pids" --conductor-metrics "$metrics" >"$out/conductors-$n.json" || log "$n conductor(s): run failed (JSON kept)"
  echo "$load" >"$out/load-$n"
  # Where the nodes ended, read before the fleet stops.
  # (the newest microversion: before 1.2 Ironic shows available as null)
  curl -fsS -H 'X-OpenStack-Ironic-API-Version: latest' "http://127.0.0.1:$((6385 + off))/v1/nodes?limit=1000" | python3 -c '
import collections, json, sys
print(dict(collections.Counter(n["provision_state"] for n in json.load(sys.stdin)["nodes"])))' >"$out/states-$n" || true
  down
  state=
done

python3 - "$out" $counts <<'EOF' | tee "$out/table.md"
import json, sys
out, counts = sys.argv[1], sys.argv[2:]
rows = []
for n in counts:
    r = json.load(open(f"{out}/conductors-{n}.json"))
    load = open(f"{out}/load-{n}").read().strip()
    states = open(f"{out}/states-{n}").read().strip()
    rows.append((n, r, load, states))
base = rows[0][1]["target"]["active_nodes_per_second"] or float("nan")
print("| conductors | active / stuck | s to the last active | nodes/s | × first | CPU-s/node | cores busy | tasks (done / other) | each conductor's share | load average at start | nodes' states at the end |")
print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | --- | --- | --- | --- |")
for n, r, load, states in rows:
    o = r.get("task_outcomes") or {}
    done = o.get("done", 0)
    other = sum(v for k, v in o.items() if k != "done")
    shares = " / ".join(f"{100*c['share']:.0f} %" for c in r["target"].get("conductors", []))
    t = r["target"]
    print(f"| {n} | {r['active']} / {r['stuck']} | {t['active_seconds']:.1f} | {t['active_nodes_per_second']:.1f} | "
          f"{t['active_nodes_per_second']/base:.2f} | {r['cpu_s_per_node']:.4f} | {r['cores_busy']:.2f} | {done} / {other} | {shares} | {load} | {states} |")
EOF
