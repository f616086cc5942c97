#!/usr/bin/env bash
# Runs the stack locally without Docker, in the foreground, until Ctrl-C;
# stops everything it started.
#
#   scripts/stack.sh http   # oauth-server :8080 + mcp-server :8000, plain HTTP, in-memory stores
#   scripts/stack.sh tls    # the docker-compose topology: certificates if missing,
#                           # redis-server (when installed), oauth-server, two
#                           # mcp-server replicas and nginx (same template) on 8443/8001
#
# Binaries come from `cargo build` (done here; the dev profile already
# optimises the crypto crates, and it shares the test build; STACK_RELEASE=1
# for --release), or from STACK_BIN_DIR when the caller built them already
# (the Taskfile passes its one release build of the workspace, so `task up`
# and the run-* tasks share it). nginx/redis-server are looked up on PATH and
# in /usr/sbin.
set -euo pipefail

mode="${1:-http}"
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
say() { printf 'stack: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

run_dir="$(mktemp -d "${TMPDIR:-/tmp}/secure-mcp-stack.XXXXXX")"
pids=()
cleanup() {
  trap - INT TERM EXIT
  say "stopping"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  # Graceful first (in-flight requests finish), like `docker stop`; then KILL.
  for _ in $(seq 1 100); do
    alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      say "pid $pid did not stop within 10 s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$run_dir"
}
trap cleanup INT TERM EXIT

start() { # name, then the command; logs to the terminal with a prefix
  local name="$1"; shift
  # The prefixer ignores Ctrl-C/TERM (sent to the whole process group) and
  # ends when the process closes its output, so no log line is lost and no
  # process writes into a closed pipe while it shuts down.
  "$@" > >(trap '' INT TERM; exec sed -u "s/^/[$name] /") 2>&1 &
  pids+=("$!")
}

wait_http() { # host:port
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  die "nothing listens on $1"
}

if [ -n "${STACK_BIN_DIR:-}" ]; then
  bin="$STACK_BIN_DIR"
  [ -x "$bin/oauth-server" ] && [ -x "$bin/mcp-server" ] \
    || die "STACK_BIN_DIR=$bin holds no oauth-server/mcp-server (task build makes them)"
else
  if [ "${STACK_RELEASE:-0}" = 1 ]; then profile=release; else profile=debug; fi
  say "building the servers ($profile)"
  cargo build --quiet ${STACK_RELEASE:+--release} -p oauth-server -p mcp-server
  bin="${CARGO_TARGET_DIR:-$root/target}/$profile"
fi

case "$mode" in
  http)
    start oauth env OAUTH_BIND=127.0.0.1:8080 "$bin/oauth-server"
    wait_http 127.0.0.1:8080
    start mcp env MCP_BIND=127.0.0.1:8000 "$bin/mcp-server"
    wait_http 127.0.0.1:8000
    say "ready: issuer http://localhost:8080, MCP http://localhost:8000/mcp (Ctrl-C stops)"
    say "metrics: http://127.0.0.1:9101/metrics (oauth-server), http://127.0.0.1:9102/metrics (mcp-server)"
    say "MCP hosts (Claude Code, VS Code, Inspector): connect to http://localhost:8000/mcp and sign in as alice / alice-dev-password (dev user)"
    ;;
  tls)
    nginx_bin="$(command -v nginx || true)"
    [ -n "$nginx_bin" ] || { [ -x /usr/sbin/nginx ] && nginx_bin=/usr/sbin/nginx; }
    [ -n "$nginx_bin" ] || die "nginx is not installed (Debian/Ubuntu: apt-get install nginx)"
    scripts/generate-local-certs.sh

    redis_env=()
    redis_bin="$(command -v redis-server || true)"
    redis_port="${REDIS_PORT:-6379}"
    if (exec 3<>"/dev/tcp/127.0.0.1/$redis_port") 2>/dev/null; then
      say "using the Redis already listening on 127.0.0.1:$redis_port"
      redis_env=(REDIS_URL="redis://127.0.0.1:$redis_port")
    elif [ -n "$redis_bin" ]; then
      start redis "$redis_bin" --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --dir "$run_dir"
      wait_http "127.0.0.1:$redis_port"
      redis_env=(REDIS_URL="redis://127.0.0.1:$redis_port")
    else
      say "redis-server not installed: in-memory stores (the replicas do not share rate budgets or revocations)"
    fi

    common=(OAUTH_ISSUER=https://localhost:8443 TRUSTED_PROXIES=127.0.0.1/32 "${redis_env[@]}")
    start oauth env "${common[@]}" OAUTH_BIND=127.0.0.1:8080 OAUTH_METRICS_BIND=127.0.0.1:9101 \
      OAUTH_RESOURCES=https://localhost:8001/mcp "$bin/oauth-server"
    wait_http 127.0.0.1:8080
    mcp_env=("${common[@]}" MCP_RESOURCE_URL=https://localhost:8001/mcp OAUTH_JWKS_URL=http://127.0.0.1:8080/jwks)
    start mcp-1 env "${mcp_env[@]}" MCP_BIND=127.0.0.1:8000 MCP_METRICS_BIND=127.0.0.1:9102 "$bin/mcp-server"
    start mcp-2 env "${mcp_env[@]}" MCP_BIND=127.0.0.1:8002 MCP_METRICS_BIND=127.0.0.1:9103 "$bin/mcp-server"
    wait_http 127.0.0.1:8000
    wait_http 127.0.0.1:8002

    # Render nginx/secure-mcp.conf.template exactly as the nginx image would.
    conf="$(cat nginx/secure-mcp.conf.template)"
    declare -A vars=(
      [NGINX_OAUTH_LISTEN]=127.0.0.1:8443 [NGINX_MCP_LISTEN]=127.0.0.1:8001
      [NGINX_OAUTH_UPSTREAM]=127.0.0.1:8080
      [NGINX_MCP_UPSTREAM_1]=127.0.0.1:8000 [NGINX_MCP_UPSTREAM_2]=127.0.0.1:8002
      [NGINX_TLS_CERT]="$root/certs/server.pem" [NGINX_TLS_KEY]="$root/certs/server-key.pem"
    )
    for name in "${!vars[@]}"; do conf="${conf//\$\{$name\}/${vars[$name]}}"; done
    mkdir -p "$run_dir/nginx/logs" "$run_dir/nginx/tmp"
    printf '%s\n' "$conf" >"$run_dir/nginx/secure-mcp.conf"
    cat >"$run_dir/nginx/nginx.conf" <<CONF
daemon off;
master_process off;
pid $run_dir/nginx/nginx.pid;
error_log stderr notice;
events { worker_connections 512; }
http {
    access_log off;
    client_body_temp_path $run_dir/nginx/tmp/body;
    proxy_temp_path $run_dir/nginx/tmp/proxy;
    fastcgi_temp_path $run_dir/nginx/tmp/fastcgi;
    uwsgi_temp_path $run_dir/nginx/tmp/uwsgi;
    scgi_temp_path $run_dir/nginx/tmp/scgi;
    include $run_dir/nginx/secure-mcp.conf;
}
CONF
    start nginx "$nginx_bin" -p "$run_dir/nginx" -e stderr -c "$run_dir/nginx/nginx.conf"
    wait_http 127.0.0.1:8443
    wait_http 127.0.0.1:8001
    say "ready: issuer https://localhost:8443, MCP https://localhost:8001/mcp (trust certs/ca.pem; Ctrl-C stops)"
    say "metrics (loopback only, not behind nginx): http://127.0.0.1:9101/metrics (oauth-server), http://127.0.0.1:9102/metrics and http://127.0.0.1:9103/metrics (mcp-1, mcp-2)"
    say "try: scripts/run-client-with-mkcert.sh openai-client tools"
    say "MCP hosts: https://localhost:8001/mcp (trust certs/ca.pem), sign in as alice / alice-dev-password (dev user)"
    ;;
  *)
    die "usage: scripts/stack.sh http|tls"
    ;;
esac

# Until Ctrl-C, or until one of the processes dies.
wait -n "${pids[@]}" || true
say "a process exited"
