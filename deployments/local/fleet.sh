#!/usr/bin/env bash
# A real multi-process ironfleet fleet on this machine: 3 nats-server
# processes (one JetStream cluster, deployments/nats), a redis-server with
# AOF (deployments/redis/redis.conf), `ironfleet api` and two (FLEET_CONDUCTORS)
# `ironfleet conductor` processes, each its own process with a pid file and a log under
# the state directory; optionally `ironfleet sim` with simulated machines.
#
#   deployments/local/fleet.sh up       (make up)   start, wait until each is healthy
#   deployments/local/fleet.sh down     (make down) stop in reverse order
#   deployments/local/fleet.sh status   which processes run
#
# Environment (defaults in brackets):
#   FLEET_DIR [.fleet]             state: pid/, log/, data of nats, redis, tftp
#   IRONFLEET [bin/ironfleet]      the ironfleet binary
#   NATS_SERVER [bin/nats-server]  nats-server (make up builds it from the Go module)
#   REDIS_SERVER [redis-server]    redis-server
#   FLEET_PORT_OFFSET [0]          added to every port below and to the NATS configs
#                                  (4222-4224 clients, 6222-6224 routes, 8222-8224 monitor),
#                                  to run beside another fleet (the deployments test does)
#   FLEET_REDIS_PORT [6390]        Redis port (not 6379: leave a system Redis alone)
#   FLEET_API [127.0.0.1:6385]     API listen address
#   FLEET_CONDUCTORS [2]           conductor processes; conductor i (from 1) has TFTP on
#                                  UDP 6968+i and metrics on 9385+i (6969, 9386, ...)
#   FLEET_HEARTBEAT_TIMEOUT [30s]  heartbeat timeout the API gives agents
#   FLEET_SIM_NODES [0]            start `ironfleet sim --enroll` with this many machines
#   FLEET_SIM_ENROLL [1]           0: sim does not enroll them; its log then holds one JSON
#                                  line per machine, for a client that enrolls them itself
#                                  (scripts/scaleout-bench.sh)
#   FLEET_WAIT [60]                seconds to wait for each process to be healthy
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
state=${FLEET_DIR:-.fleet}
ironfleet=${IRONFLEET:-bin/ironfleet}
nats_server=${NATS_SERVER:-bin/nats-server}
redis_server=${REDIS_SERVER:-redis-server}
off=${FLEET_PORT_OFFSET:-0}
redis_port=${FLEET_REDIS_PORT:-$((6390 + off))}
api=${FLEET_API:-127.0.0.1:$((6385 + off))}
hb=${FLEET_HEARTBEAT_TIMEOUT:-30s}
sim_nodes=${FLEET_SIM_NODES:-0}
sim_enroll=${FLEET_SIM_ENROLL:-1}
conductors=${FLEET_CONDUCTORS:-2}
[[ "$conductors" =~ ^[1-9][0-9]*$ ]] || { echo "fleet: FLEET_CONDUCTORS=$conductors: want 1 or more" >&2; exit 2; }
wait_s=${FLEET_WAIT:-60}
nats_urls=nats://127.0.0.1:$((4222 + off)),nats://127.0.0.1:$((4223 + off)),nats://127.0.0.1:$((4224 + off))
redis_url=redis://127.0.0.1:${redis_port}/0
# Start order; down stops in reverse.
procs=(nats-1 nats-2 nats-3 redis api)
for ((i = 1; i <= conductors; i++)); do procs+=("conductor-$i"); done
procs+=(sim)

log() { printf 'fleet: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

pidfile() { echo "$state/pid/$1.pid"; }

# alive NAME: the process of NAME's pid file runs (and is the one we
# started: its command line names the binary we gave it).
alive() {
  local f pid
  f=$(pidfile "$1")
  [ -f "$f" ] || return 1
  pid=$(cat "$f")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  grep -qa -- "$(cat "$state/pid/$1.bin" 2>/dev/null || echo /nonexistent)" "/proc/$pid/cmdline" 2>/dev/null
}

# start NAME CMD...: run CMD in the background, detached from this shell's
# session, output to NAME's log, pid to NAME's pid file.
start() {
  local name=$1; shift
  mkdir -p "$state/pid" "$state/log"
  printf '%s' "$1" >"$state/pid/$name.bin"
  setsid "$@" >>"$state/log/$name.log" 2>&1 </dev/null &
  echo $! >"$(pidfile "$name")"
  log "started $name (pid $!): $*"
}

# healthy NAME CHECK...: wait until CHECK succeeds, failing if NAME dies.
healthy() {
  local name=$1; shift
  local deadline=$((SECONDS + wait_s))
  until "$@" >/dev/null 2>&1; do
    alive "$name" || { tail -n 30 "$state/log/$name.log" >&2 || true; die "$name exited; log: $state/log/$name.log"; }
    [ $SECONDS -lt $deadline ] || { tail -n 30 "$state/log/$name.log" >&2 || true; die "$name not healthy after ${wait_s}s; log: $state/log/$name.log"; }
    sleep 0.2
  done
  log "$name healthy"
}

http_ok() { curl -fsS --max-time 2 -o /dev/null "$1"; }

# running PID: the process exists and is not a zombie waiting to be reaped
# (our processes outlive the shell that started them).
running() {
  local st
  st=$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$st" ] && [ "$st" != Z ]
}

stop() {
  local name=$1 pid t0=$SECONDS
  alive "$name" || { rm -f "$(pidfile "$name")" "$state/pid/$name.bin"; return 0; }
  pid=$(cat "$(pidfile "$name")")
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 150); do
    running "$pid" || break
    sleep 0.1
  done
  if running "$pid"; then
    log "$name (pid $pid) ignored SIGTERM for 15s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$(pidfile "$name")" "$state/pid/$name.bin"
  log "stopped $name ($((SECONDS - t0))s)"
}

up() {
  for p in "${procs[@]}"; do
    alive "$p" && die "$p is already running (pid $(cat "$(pidfile "$p")")): run make down first"
  done
  [ -x "$ironfleet" ] || die "$ironfleet not found: run make build"
  [ -x "$nats_server" ] || command -v "$nats_server" >/dev/null || die "$nats_server not found: make up builds it"
  command -v "$redis_server" >/dev/null || [ -x "$redis_server" ] || die "$redis_server not found: scripts/ensure-deps.sh run"
  command -v curl >/dev/null || die "curl not found: scripts/ensure-deps.sh run"
  trap 'rc=$?; if [ $rc -ne 0 ]; then log "up failed: stopping what started"; down; fi' EXIT

  for i in 1 2 3; do
    # The deployments' config with the store under the state directory and
    # every port moved by the offset.
    mkdir -p "$state/nats-$i"
    awk -v off="$off" -v sd="$(cd "$state/nats-$i" && pwd)" '
      $1 == "store_dir:" { print "  store_dir: \"" sd "\""; next }
      { out = ""
        while (match($0, /127\.0\.0\.1:[0-9]+/)) {
          out = out substr($0, 1, RSTART - 1) "127.0.0.1:" (substr($0, RSTART + 10, RLENGTH - 10) + off)
          $0 = substr($0, RSTART + RLENGTH)
        }
        print out $0 }' "deployments/nats/nats-$i.conf" >"$state/nats-$i.conf"
    start "nats-$i" "$nats_server" -c "$state/nats-$i.conf"
  done
  # A JetStream cluster is ready once its meta group and every stream
  # (after a restart: each R3 stream elects anew) have a leader, which needs
  # a quorum: wait for all three together.
  for i in 1 2 3; do
    healthy "nats-$i" nats_ready "$((8221 + i + off))"
  done

  mkdir -p "$state/redis"
  start redis "$redis_server" deployments/redis/redis.conf --port "$redis_port" \
    --dir "$(cd "$state/redis" && pwd)" --daemonize no --logfile ""
  healthy redis redis_ping

  start api "$ironfleet" api --listen "$api" --nats "$nats_urls" --redis "$redis_url" \
    --replicas 3 --heartbeat-timeout "$hb" --host api-1
  healthy api http_ok "http://$api/readyz"

  for ((i = 1; i <= conductors; i++)); do
    mkdir -p "$state/tftp-$i"
    start "conductor-$i" "$ironfleet" conductor --host "conductor-$i" --nats "$nats_urls" \
      --redis "$redis_url" --replicas 3 --tftp-root "$state/tftp-$i" \
      --tftp-listen "127.0.0.1:$((6968 + i + off))" --metrics-listen "127.0.0.1:$((9385 + i + off))" \
      --api-url "http://$api"
  done
  for ((i = 1; i <= conductors; i++)); do
    healthy "conductor-$i" conductor_registered "conductor-$i"
  done

  if [ "$sim_nodes" -gt 0 ]; then
    # A second of boot lets the conductor finish its step before the agent
    # looks itself up (as on hardware, where it takes far longer).
    local enroll=(--enroll) ready=sim_enrolled
    if [ "$sim_enroll" = 0 ]; then enroll=() ready=sim_listed; fi
    # The agents refuse a relative target path (FLEET_DIR is .fleet).
    mkdir -p "$state/disks"
    start sim "$ironfleet" sim --nodes "$sim_nodes" "${enroll[@]}" --api-url "http://$api" --disk-dir "$(cd "$state/disks" && pwd)" \
      --boot-time 1s --lookup-conflict-pause 2s
    healthy sim "$ready"
  fi
  trap - EXIT
  cat <<EOT

ironfleet is up: 3 NATS servers, Redis, the API and $conductors conductor(s), each its own process.
  API        http://$api   (noauth)     metrics http://$api/metrics
  conductors metrics $(for ((i = 1; i <= conductors; i++)); do printf 'http://127.0.0.1:%d/metrics ' $((9385 + i + off)); done)
  NATS       $nats_urls   monitor :$((8222 + off))-$((8224 + off))
  Redis      $redis_url
  logs       $state/log/   pids $state/pid/
Try:
  curl -s http://$api/v1/nodes | head
  $ironfleet sim --nodes 5 --enroll --api-url http://$api      # simulated machines
  $ironfleet watch --api http://$api
Stop with: make down
EOT
}

# nats_ready PORT: the server's view of the cluster has a meta leader and a
# leader for every stream.
nats_ready() {
  local j
  j=$(curl -fsS --max-time 2 "http://127.0.0.1:$1/jsz?streams=true" | tr -d ' \n') || return 1
  grep -q '"meta_cluster":{[^}]*"leader":"' <<<"$j" || return 1
  [ "$(grep -o '"raft_group":"S-[^"]*"' <<<"$j" | wc -l)" = "$(grep -o '"raft_group":"S-[^"]*","leader":"' <<<"$j" | wc -l)" ]
}

redis_ping() { [ "$(redis-cli -p "$redis_port" ping)" = PONG ]; }

conductor_registered() {
  curl -fsS --max-time 2 "http://$api/v1/conductors" -H 'X-OpenStack-Ironic-API-Version: latest' | grep -q "\"$1\""
}

sim_enrolled() { grep -q '"uuid"' "$state/log/sim.log"; }

# sim_listed: sim printed its last machine (without --enroll).
sim_listed() { [ "$(grep -c '"driver_info"' "$state/log/sim.log")" -ge "$sim_nodes" ]; }

# started: every process with a pid file, in start order, including
# conductors beyond FLEET_CONDUCTORS (an up with more than this down's).
started() {
  local p f
  for p in nats-1 nats-2 nats-3 redis api; do echo "$p"; done
  for f in "$state"/pid/conductor-*.pid; do
    [ -e "$f" ] && basename "$f" .pid
  done | sort -t- -k2 -n
  echo sim
}

down() {
  local i all
  mapfile -t all < <(started)
  for ((i = ${#all[@]} - 1; i >= 0; i--)); do
    stop "${all[i]}"
  done
}

status() {
  for p in "${procs[@]}"; do
    if alive "$p"; then echo "$p running (pid $(cat "$(pidfile "$p")"))"; else echo "$p stopped"; fi
  done
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
