#!/usr/bin/env bash
# Native local stack for development and CI (no Docker engine needed):
#   Redis (AOF on), Apache Kafka 4.4 (KRaft single node), Azurite (blob endpoint only),
#   Prometheus (Debian package; scrapes the pipeline processes, loads monitoring/alerts.yml).
#
# Usage: scripts/stack.sh {install|start|stop|status|topics|reset}
#   install  fetch what is missing: redis-server (apt), Kafka jars (Maven Central), Azurite (npm),
#            prometheus + promtool (apt; Debian's system service is kept stopped)
#   start    install what a service to launch lacks, start the services, wait until each answers, create the topics
#   stop     stop only the processes this script started (pid files under $STACK_DIR)
#   status   one line per service: running / external / stopped, pid, port (exit 3 if any stopped)
#   topics   create the pipeline topics idempotently (scripts/kafka/admin.py)
#   reset    stop, then delete the services' data (keeps the installed jars and node modules)
#
# Environment: STACK_DIR (default <repo>/.stack), STACK_SERVICES (default "redis kafka azurite prometheus"),
#   REDIS_PORT (6379), REDIS_MAXMEMORY (2gb), REDIS_APPENDFSYNC (everysec), KAFKA_PORT (9092), KAFKA_CONTROLLER_PORT (9093), AZURITE_PORT (10000),
#   PROMETHEUS_PORT (9090), PROMETHEUS_CONFIG (monitoring/prometheus-local.yml),
#   STACK_START_TIMEOUT seconds per service (120), KAFKA_HEAP_OPTS, PYTHON (python3).
# Everything binds to 127.0.0.1. Data and logs: see docs/local-stack.md.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STACK_DIR="${STACK_DIR:-$REPO_ROOT/.stack}"
STACK_SERVICES="${STACK_SERVICES:-redis kafka azurite prometheus}"
REDIS_PORT="${REDIS_PORT:-6379}"
# A memory budget: Redis refuses writes past it (noeviction: queued work is never evicted); the
# dispatcher's backpressure marks stay well below it (README "Backpressure").
REDIS_MAXMEMORY="${REDIS_MAXMEMORY:-2gb}"
# everysec: a host crash may lose ~1 s of acknowledged writes; "always" closes that window on
# Redis < 7.2, where the dispatcher cannot confirm fsync with WAITAOF (README "Durability").
REDIS_APPENDFSYNC="${REDIS_APPENDFSYNC:-everysec}"
KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
AZURITE_PORT="${AZURITE_PORT:-10000}"
PROMETHEUS_PORT="${PROMETHEUS_PORT:-9090}"
# What the local Prometheus scrapes: the pipeline processes on this host (README "Monitoring").
PROMETHEUS_CONFIG="${PROMETHEUS_CONFIG:-$REPO_ROOT/monitoring/prometheus-local.yml}"
AZURITE_VERSION="${AZURITE_VERSION:-3.37.0}"
STACK_START_TIMEOUT="${STACK_START_TIMEOUT:-120}"
STOP_TIMEOUT_SECONDS=20
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}"
# The helper scripts need confluent-kafka: prefer the project's .venv when run by hand.
if [[ -z ${PYTHON:-} ]]; then
  if [[ -x "$REPO_ROOT/.venv/bin/python" ]]; then PYTHON="$REPO_ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi
HOST=127.0.0.1
KAFKA_TEMPLATES="$REPO_ROOT/scripts/kafka"
KAFKA_ADMIN=("$PYTHON" "$KAFKA_TEMPLATES/admin.py")

mkdir -p "$STACK_DIR"
STACK_DIR="$(cd "$STACK_DIR" && pwd)"

log() { printf 'stack: %s\n' "$*"; }
die() { printf 'stack: ERROR: %s\n' "$*" >&2; exit 1; }
now() { date +%s; }
as_root() { if [[ $EUID -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

port_of() {
  case "$1" in
    redis) echo "$REDIS_PORT" ;; kafka) echo "$KAFKA_PORT" ;; azurite) echo "$AZURITE_PORT" ;;
    prometheus) echo "$PROMETHEUS_PORT" ;;
    *) die "unknown service '$1' (known: redis kafka azurite prometheus)" ;;
  esac
}
pid_file() { echo "$STACK_DIR/$1.pid"; }
log_files() {
  case "$1" in
    redis) echo "$STACK_DIR/redis/redis.log" ;;
    kafka) echo "$STACK_DIR/kafka/kafka.out $STACK_DIR/kafka/kafka.log" ;;
    azurite) echo "$STACK_DIR/azurite/azurite.log" ;;
    prometheus) echo "$STACK_DIR/prometheus/prometheus.log" ;;
  esac
}
# What the process's command line must contain for a pid file to count as ours (guards pid reuse).
cmd_marker() { case "$1" in redis) echo redis-server ;; kafka) echo kafka.Kafka ;; azurite) echo azurite-blob ;; prometheus) echo prometheus ;; esac; }

# Prints the pid and succeeds when the service's pid file names a live process of that service.
owned_pid() {
  local file pid cmdline
  file="$(pid_file "$1")"
  [[ -s $file ]] || return 1
  pid="$(tr -dc '0-9' <"$file")"
  [[ -n $pid && -r /proc/$pid/cmdline ]] || return 1
  cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
  [[ $cmdline == *"$(cmd_marker "$1")"* ]] || return 1
  echo "$pid"
}

port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/$HOST/$1" 2>/dev/null; }

# Succeeds when the service on its port answers like the real thing.
probe() {
  local headers
  case "$1" in
    redis) [[ "$(timeout 3 redis-cli -h "$HOST" -p "$REDIS_PORT" ping 2>/dev/null)" == PONG ]] ;;
    kafka) "${KAFKA_ADMIN[@]}" ready --bootstrap "$HOST:$KAFKA_PORT" --timeout 3 2>/dev/null ;;
    prometheus) [[ "$(curl -sS -m 3 "http://$HOST:$PROMETHEUS_PORT/-/ready" 2>/dev/null)" == *"Ready"* ]] ;;
    azurite)  # any HTTP status will do; the Server header says who answered
      headers="$(curl -sS -m 3 -o /dev/null -D - "http://$HOST:$AZURITE_PORT/devstoreaccount1?comp=list" 2>/dev/null)" || return 1
      [[ ${headers,,} == *"server: azurite-blob"* ]] ;;
  esac
}

show_logs() {
  local f
  for f in $(log_files "$1"); do
    [[ -s $f ]] && { printf -- '----- last lines of %s -----\n' "$f" >&2; tail -n 40 "$f" >&2; }
  done
  return 0
}

# ---------------------------------------------------------------- install
install_redis() {
  command -v redis-server >/dev/null && command -v redis-cli >/dev/null && { log "redis: installed"; return; }
  log "redis: installing the Debian package redis-server"
  as_root apt-get update -qq
  # RUNLEVEL=1 keeps the package's init script from starting a system-wide Redis on 6379.
  as_root env RUNLEVEL=1 DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server
}

install_kafka() {
  local libs="$STACK_DIR/kafka/libs" stamp want tmp
  want="$(sha256sum "$KAFKA_TEMPLATES/pom.xml" | cut -c1-16)"
  stamp="$libs/.installed"
  if [[ -f $stamp && "$(cat "$stamp")" == "$want" ]]; then log "kafka: jars present ($libs)"; return; fi
  command -v java >/dev/null || as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless
  command -v mvn >/dev/null || as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq maven
  log "kafka: resolving kafka_2.13 and its runtime dependencies from Maven Central"
  tmp="$STACK_DIR/kafka/libs.tmp"
  rm -rf "$tmp" && mkdir -p "$tmp"
  mvn -q -B -Dstyle.color=never -f "$KAFKA_TEMPLATES/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$tmp" >"$STACK_DIR/kafka/mvn.log" 2>&1 || {
    tail -n 40 "$STACK_DIR/kafka/mvn.log" >&2
    die "kafka: mvn could not resolve the Kafka jars (is Maven Central reachable?)"
  }
  echo "$want" >"$tmp/.installed"
  rm -rf "$libs" && mv "$tmp" "$libs"
  log "kafka: $(find "$libs" -name '*.jar' | wc -l) jars in $libs"
}

# Debian's package (prometheus + promtool). Its own system service would listen on 0.0.0.0:9090:
# a policy-rc.d that refuses every start keeps it stopped during the install, and it is disabled
# at boot; `start` runs our own instance on 127.0.0.1 instead.
install_prometheus() {
  command -v prometheus >/dev/null && command -v promtool >/dev/null && { log "prometheus: installed"; return; }
  log "prometheus: installing the Debian package prometheus (its system service stays stopped)"
  local policy=/usr/sbin/policy-rc.d created=""
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null && as_root chmod +x "$policy" && created=1
  fi
  as_root apt-get update -qq
  as_root env RUNLEVEL=1 DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus \
    || { [[ -n $created ]] && as_root rm -f "$policy"; die "prometheus: apt-get install failed"; }
  [[ -n $created ]] && as_root rm -f "$policy"
  if [[ -d /run/systemd/system ]]; then as_root systemctl disable --now prometheus >/dev/null 2>&1 || true; fi
}

install_azurite() {
  local dir="$STACK_DIR/azurite"
  if [[ -x $dir/node_modules/.bin/azurite-blob ]]; then log "azurite: installed ($dir)"; return; fi
  command -v npm >/dev/null || as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm
  log "azurite: npm install azurite@$AZURITE_VERSION"
  mkdir -p "$dir"
  npm install --prefix "$dir" --prefer-offline --no-audit --no-fund --loglevel=error \
    "azurite@$AZURITE_VERSION" >/dev/null || die "azurite: npm install failed (is the npm registry reachable?)"
}

install_one() {
  local t0; t0=$(now)
  "install_$1"
  log "$1: install step took $(( $(now) - t0 )) s"
}

cmd_install() {
  local svc
  for svc in $STACK_SERVICES; do install_one "$svc"; done
}

# ---------------------------------------------------------------- start
# Runs "$@" detached in its own session, recording its pid in $1's pid file; output to $2.
spawn() {
  local svc="$1" out="$2"; shift 2
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$(pid_file "$svc")" "$@" </dev/null >>"$out" 2>&1 &
  local i; for i in $(seq 50); do [[ -s $(pid_file "$svc") ]] && return; sleep 0.1; done
}

launch_redis() {
  mkdir -p "$STACK_DIR/redis"
  redis-server --bind "$HOST" --port "$REDIS_PORT" --protected-mode yes --dir "$STACK_DIR/redis" \
    --appendonly yes --appendfsync "$REDIS_APPENDFSYNC" --daemonize yes --pidfile "$(pid_file redis)" \
    --maxmemory "$REDIS_MAXMEMORY" --maxmemory-policy noeviction \
    --logfile "$STACK_DIR/redis/redis.log" || { show_logs redis; die "redis: redis-server refused to start"; }
}

launch_kafka() {
  local dir="$STACK_DIR/kafka" libs="$STACK_DIR/kafka/libs" props cluster_id
  port_open "$KAFKA_CONTROLLER_PORT" && die "kafka: controller port $KAFKA_CONTROLLER_PORT is already in use"
  "$PYTHON" -c 'import confluent_kafka' 2>/dev/null \
    || die "kafka: $PYTHON cannot import confluent_kafka (the readiness probe needs it); run 'make venv' or set PYTHON"
  mkdir -p "$dir/data"
  props="$dir/server.properties"
  sed -e "s|@KAFKA_PORT@|$KAFKA_PORT|g" -e "s|@CONTROLLER_PORT@|$KAFKA_CONTROLLER_PORT|g" \
      -e "s|@DATA_DIR@|$dir/data|g" "$KAFKA_TEMPLATES/server.properties.template" >"$props"
  # log4j2 must not stop in its own shutdown hook, or the broker's shutdown is not logged.
  local java_props=(-Dkafka.logs.dir="$dir" -Dlog4j2.configurationFile="$KAFKA_TEMPLATES/log4j2.properties"
    -Dlog4j2.shutdownHookEnabled=false)
  if [[ ! -f $dir/data/meta.properties ]]; then
    [[ -s $dir/cluster.id ]] || java -cp "$libs/*" kafka.tools.StorageTool random-uuid >"$dir/cluster.id" 2>>"$dir/kafka.out"
    cluster_id="$(tr -d '[:space:]' <"$dir/cluster.id")"
    log "kafka: formatting $dir/data (cluster id $cluster_id)"
    java "${java_props[@]}" -cp "$libs/*" kafka.tools.StorageTool format -t "$cluster_id" -c "$props" \
      >>"$dir/kafka.out" 2>&1 || { show_logs kafka; die "kafka: formatting the log directory failed"; }
  fi
  # shellcheck disable=SC2086  # KAFKA_HEAP_OPTS is a list of JVM flags
  spawn kafka "$dir/kafka.out" java $KAFKA_HEAP_OPTS -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true "${java_props[@]}" \
    -cp "$libs/*" kafka.Kafka "$props"
}

launch_prometheus() {
  local dir="$STACK_DIR/prometheus"
  mkdir -p "$dir/data"
  spawn prometheus "$dir/prometheus.log" prometheus --config.file="$PROMETHEUS_CONFIG" \
    --storage.tsdb.path="$dir/data" --storage.tsdb.retention.time=7d \
    --web.listen-address="$HOST:$PROMETHEUS_PORT" --web.enable-lifecycle
}

# --disableTelemetry: Azurite otherwise tries to reach a telemetry endpoint (no network here) and
# then lingers for 20 s after SIGTERM.
launch_azurite() {
  local dir="$STACK_DIR/azurite"
  mkdir -p "$dir/data"
  spawn azurite "$dir/azurite.log" "$dir/node_modules/.bin/azurite-blob" --blobHost "$HOST" \
    --blobPort "$AZURITE_PORT" --location "$dir/data" --skipApiVersionCheck --silent --disableTelemetry
}

wait_ready() {
  local svc="$1" t0 deadline
  t0=$(now); deadline=$(( t0 + STACK_START_TIMEOUT ))
  while ! probe "$svc"; do
    if ! owned_pid "$svc" >/dev/null && [[ $svc != redis || $(( $(now) - t0 )) -gt 5 ]]; then
      show_logs "$svc"; die "$svc: the process exited before it became ready"
    fi
    (( $(now) < deadline )) || { show_logs "$svc"; die "$svc: not ready after $STACK_START_TIMEOUT s"; }
    sleep 0.5
  done
  log "$svc: ready on $HOST:$(port_of "$svc") after $(( $(now) - t0 )) s"
}

# Starts one service unless it is already up; appends it to LAUNCHED when this call launched it.
LAUNCHED=()
start_one() {
  local svc="$1" port pid
  port="$(port_of "$svc")"
  if pid="$(owned_pid "$svc")"; then log "$svc: already running (pid $pid, port $port)"; return; fi
  rm -f "$(pid_file "$svc")"
  if port_open "$port"; then
    probe "$svc" || die "$svc: port $port is in use by a process this script did not start, and it does not answer like $svc"
    log "$svc: port $port is served by a process this script did not start; it answers correctly, reusing it"
    if [[ $svc == redis && "$(redis-cli -h "$HOST" -p "$port" config get appendonly | tail -n 1)" != yes ]]; then
      log "redis: WARNING: the reused Redis has appendonly=no; tasks are not durable across its restart"
    fi
    return
  fi
  install_one "$svc"
  "launch_$svc"
  LAUNCHED+=("$svc")
}

cmd_start() {
  local svc t0
  t0=$(now)
  for svc in $STACK_SERVICES; do start_one "$svc"; done
  for svc in "${LAUNCHED[@]}"; do wait_ready "$svc"; done
  if [[ " $STACK_SERVICES " == *" kafka "* ]]; then cmd_topics; fi
  log "start took $(( $(now) - t0 )) s"
  cmd_status || true
}

cmd_topics() {
  probe kafka || die "kafka: no broker answers on $HOST:$KAFKA_PORT; run scripts/stack.sh start"
  "${KAFKA_ADMIN[@]}" topics --bootstrap "$HOST:$KAFKA_PORT" || die "kafka: topic creation failed"
}

# ---------------------------------------------------------------- stop / status / reset
stop_one() {
  local svc="$1" pid waited=0
  if ! pid="$(owned_pid "$svc")"; then
    rm -f "$(pid_file "$svc")"
    log "$svc: not running under this script (nothing to stop)"
    return
  fi
  kill -TERM "$pid" 2>/dev/null || true
  while owned_pid "$svc" >/dev/null && (( waited < STOP_TIMEOUT_SECONDS * 10 )); do sleep 0.1; waited=$(( waited + 1 )); done
  if owned_pid "$svc" >/dev/null; then
    log "$svc: still running after ${STOP_TIMEOUT_SECONDS} s, sending KILL to pid $pid"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.5
  fi
  rm -f "$(pid_file "$svc")"
  log "$svc: stopped (pid $pid)"
}

cmd_stop() {
  local svc order=""
  for svc in $STACK_SERVICES; do order="$svc $order"; done  # reverse of start order
  for svc in $order; do stop_one "$svc"; done
}

cmd_status() {
  local svc pid port state rc=0
  for svc in $STACK_SERVICES; do
    port="$(port_of "$svc")"
    if pid="$(owned_pid "$svc")"; then state=running
    elif port_open "$port"; then state=external; pid="-"
    else state=stopped; pid="-"; rc=3
    fi
    printf '%-8s %-9s pid %-8s port %s\n' "$svc" "$state" "$pid" "$port"
  done
  return "$rc"
}

cmd_reset() {
  cmd_stop
  rm -rf "$STACK_DIR/redis" "$STACK_DIR/kafka/data" "$STACK_DIR/kafka/cluster.id" "$STACK_DIR/azurite/data" "$STACK_DIR/prometheus/data"
  log "data removed; installed jars and node modules kept (delete $STACK_DIR for a full reset)"
}

main() {
  local svc
  for svc in $STACK_SERVICES; do port_of "$svc" >/dev/null; done
  case "${1:-}" in
    install) cmd_install ;; start) cmd_start ;; stop) cmd_stop ;; status) cmd_status ;;
    topics) cmd_topics ;; reset) cmd_reset ;;
    *) echo "usage: $0 {install|start|stop|status|topics|reset}" >&2; exit 2 ;;
  esac
}

main "$@"
