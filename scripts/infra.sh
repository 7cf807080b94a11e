#!/usr/bin/env bash
# Makes sure a PostgreSQL server, a RabbitMQ broker and a Redis (the portal's
# waiting room) answer, in this order:
#   1. the ones named by DATABASE_URL, AMQP_URI and REDIS_URL, when set;
#   2. the local ones on 127.0.0.1 (started here if installed but stopped);
#   3. with a Docker engine, docker-compose.yml's;
# and otherwise says exactly what to install.
set -euo pipefail
cd "$(dirname "$0")/.."

answers() { timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }
hostport() { # URL default-port -> "host port"
  python3 - "$1" "$2" <<'PY'
import sys
from urllib.parse import urlsplit
u = urlsplit(sys.argv[1]); print(u.hostname or "127.0.0.1", u.port or int(sys.argv[2]))
PY
}
wait_for() { # name host port
  for _ in $(seq 1 60); do answers "$2" "$3" && return 0; sleep 1; done
  echo "error: $1 did not come up on $2:$3" >&2; return 1
}

db_url=${DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/postgres}
amqp_url=${AMQP_URI:-amqp://guest:guest@127.0.0.1:5672//}
redis_url=${REDIS_URL:-redis://127.0.0.1:6379/0}
read -r db_host db_port < <(hostport "$db_url" 5432)
read -r mq_host mq_port < <(hostport "$amqp_url" 5672)
read -r rd_host rd_port < <(hostport "$redis_url" 6379)

start_local_postgres() {
  command -v pg_ctlcluster >/dev/null || return 1
  local version; version=$(ls /etc/postgresql 2>/dev/null | head -1)
  [ -n "$version" ] || return 1
  echo "starting the local PostgreSQL $version"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
}
start_local_rabbitmq() {
  command -v rabbitmq-server >/dev/null || return 1
  echo "starting the local RabbitMQ"
  rabbitmq-server -detached || true
}
start_local_redis() {
  command -v redis-server >/dev/null || return 1
  echo "starting the local Redis"
  local dir=/var/lib/redis; [ -w "$dir" ] || dir=$(mktemp -d)
  redis-server --daemonize yes --bind 127.0.0.1 --port "$rd_port" --save "" --appendonly no --dir "$dir" || true
}
docker_engine() { command -v docker >/dev/null && docker info >/dev/null 2>&1; }

if ! answers "$db_host" "$db_port"; then
  if [ -z "${DATABASE_URL:-}" ] && start_local_postgres; then wait_for PostgreSQL "$db_host" "$db_port"
  elif docker_engine; then docker compose up -d postgres && wait_for PostgreSQL "$db_host" "$db_port"
  else
    cat >&2 <<MSG
error: no PostgreSQL answers on $db_host:$db_port.
  Install one:   sudo apt-get install postgresql   (Debian/Ubuntu; then allow local trust or set DATABASE_URL)
  or point at one: export DATABASE_URL=postgresql://user:password@host:5432/postgres
  or install a Docker engine, and this starts docker-compose.yml's.
MSG
    exit 1
  fi
fi
if ! answers "$mq_host" "$mq_port"; then
  if [ -z "${AMQP_URI:-}" ] && start_local_rabbitmq; then wait_for RabbitMQ "$mq_host" "$mq_port"
  elif docker_engine; then docker compose up -d rabbitmq && wait_for RabbitMQ "$mq_host" "$mq_port"
  else
    cat >&2 <<MSG
error: no RabbitMQ answers on $mq_host:$mq_port.
  Install one:   sudo apt-get install rabbitmq-server
  or point at one: export AMQP_URI=amqp://user:password@host:5672//
  or install a Docker engine, and this starts docker-compose.yml's.
MSG
    exit 1
  fi
fi
if ! answers "$rd_host" "$rd_port"; then
  if [ -z "${REDIS_URL:-}" ] && start_local_redis; then wait_for Redis "$rd_host" "$rd_port"
  elif docker_engine; then docker compose up -d redis && wait_for Redis "$rd_host" "$rd_port"
  else
    cat >&2 <<MSG
error: no Redis answers on $rd_host:$rd_port (the portal's waiting room keeps its queue there).
  Install one:   sudo apt-get install redis-server
  or point at one: export REDIS_URL=redis://host:6379/0
  or install a Docker engine, and this starts docker-compose.yml's.
MSG
    exit 1
  fi
fi
echo "PostgreSQL on $db_host:$db_port, RabbitMQ on $mq_host:$mq_port and Redis on $rd_host:$rd_port answer"
