#!/usr/bin/env bash
# CI check of the README's Task flow, as a new user meets it: a fresh clone
# with no .env, `task up` in the background, then
#   task run-openai-client -- tools    must list the four tools, and
#   task run-server -- healthcheck     (after it) must compile nothing and
#                                      find the running mcp-server healthy.
# Everything started here is stopped again (its own process group); ports
# 8080/8000 must be free before and after. Exits non-zero with one clear
# line on any failure.
#
# The clone is of the committed HEAD of this checkout (uncommitted changes
# are not tested). It shares CARGO_TARGET_DIR with the caller (default: this
# checkout's target/), so CI pays for one release build of the workspace.
# Time limits (seconds): CHECK_BUILD_TIMEOUT (3600) for that build,
# CHECK_STEP_TIMEOUT (180) for every other step.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
say() { printf 'check-task-flow: %s\n' "$*" >&2; }
build_timeout="${CHECK_BUILD_TIMEOUT:-3600}"
step_timeout="${CHECK_STEP_TIMEOUT:-180}"
ports=(8080 8000)
tools=(get_customer_info get_recent_customers create_support_ticket calculate_account_value)

task_bin="$(command -v task || true)"
[ -n "$task_bin" ] || { [ -x "$root/.tools/venv/bin/task" ] && task_bin="$root/.tools/venv/bin/task"; }
if [ -z "$task_bin" ]; then
  say "FAIL: task is not installed (scripts/install-ci-tools.sh puts it into .tools/venv/bin)"
  exit 1
fi

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
case "$CARGO_TARGET_DIR" in /*) ;; *) CARGO_TARGET_DIR="$root/$CARGO_TARGET_DIR" ;; esac
export CARGO_TERM_COLOR=never NO_COLOR=1
# The fresh clone must get its values from config/dev.env, not from here.
unset OAUTH_CLIENT_ID OAUTH_CLIENT_SECRET OAUTH_CLIENT_KEY_FILE OAUTH_ISSUER MCP_SERVER_URL \
  OAUTH_TOKEN_URL OAUTH_SCOPES MCP_BIND OAUTH_BIND

listening() { # port → 0 when something listens on it
  if command -v ss >/dev/null 2>&1; then
    ss -ltnH "( sport = :$1 )" 2>/dev/null | grep -q .
  else
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
  fi
}

healthy() { # port → 0 when GET /health answers 200
  local reply
  reply="$(
    exec 2>/dev/null
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf 'GET /health HTTP/1.1\r\nHost: localhost:%s\r\nConnection: close\r\n\r\n' "$1" >&3
    timeout 5 head -n 1 <&3
  )" || return 1
  [[ "$reply" == "HTTP/1.1 200"* ]]
}

for port in "${ports[@]}"; do
  if listening "$port"; then
    say "FAIL: port $port is already in use before the check; stop what listens there:"
    ss -ltnp "( sport = :$port )" >&2 2>/dev/null || true
    exit 1
  fi
done

work="$(mktemp -d "${TMPDIR:-/tmp}/check-task-flow.XXXXXX")"
up_pid=""
stop_up() {
  [ -n "$up_pid" ] || return 0
  # `task up` runs in its own session: its pid is the process group of task,
  # scripts/stack.sh, the servers and their log prefixers.
  kill -TERM -- "-$up_pid" 2>/dev/null || true
  for _ in $(seq 1 150); do
    kill -0 -- "-$up_pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 -- "-$up_pid" 2>/dev/null; then
    say "task up did not stop within 15 s of SIGTERM; killing its process group"
    kill -KILL -- "-$up_pid" 2>/dev/null || true
  fi
  wait "$up_pid" 2>/dev/null || true
  up_pid=""
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_up
  if [ "$rc" != 0 ] && [ -s "$work/up.log" ]; then
    say "last lines of task up:"
    tail -n 30 "$work/up.log" >&2
  fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
fail() { say "FAIL: $*"; exit 1; }

head_commit="$(git -C "$root" rev-parse HEAD)"
if [ -n "$(git -C "$root" status --porcelain --untracked-files=no)" ]; then
  say "note: uncommitted changes in $root are not part of the check (it clones HEAD)"
fi
say "fresh clone of $head_commit into $work/repo (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
git clone --quiet --no-checkout "$root" "$work/repo"
git -C "$work/repo" checkout --quiet --detach "$head_commit"
cd "$work/repo"
[ ! -e .env ] || fail "the fresh clone has a .env"

say "task build (release build of the workspace; no-op when the target dir is current)"
if ! timeout "$build_timeout" "$task_bin" build >"$work/build.log" 2>&1; then
  tail -n 30 "$work/build.log" >&2
  fail "task build failed (or took over ${build_timeout}s)"
fi
say "$(grep -c '^ *Compiling ' "$work/build.log" || true) crates compiled by task build"

say "task up (background)"
setsid "$task_bin" up >"$work/up.log" 2>&1 </dev/null &
up_pid=$!
deadline=$((SECONDS + step_timeout))
for port in "${ports[@]}"; do
  until healthy "$port"; do
    kill -0 "$up_pid" 2>/dev/null || fail "task up exited before :$port was healthy"
    [ "$SECONDS" -lt "$deadline" ] || fail "no healthy server on :$port within ${step_timeout}s of task up"
    sleep 0.5
  done
  say "ok: GET http://127.0.0.1:$port/health answers 200"
done

say "task run-openai-client -- tools"
if ! timeout "$step_timeout" "$task_bin" run-openai-client -- tools >"$work/tools.out" 2>"$work/tools.err"; then
  cat "$work/tools.out" "$work/tools.err" >&2
  fail "task run-openai-client -- tools failed"
fi
for tool in "${tools[@]}"; do
  grep -q "$tool" "$work/tools.out" || { cat "$work/tools.out" "$work/tools.err" >&2; fail "tool $tool is not listed"; }
done
say "ok: the four tools are listed:"
sed 's/^/    /' "$work/tools.out" >&2
if grep -q '^ *Compiling ' "$work/tools.err"; then
  grep '^ *Compiling ' "$work/tools.err" >&2
  fail "task run-openai-client recompiled crates after task build"
fi

say "task run-server -- healthcheck (after run-openai-client: must compile nothing)"
if ! timeout "$step_timeout" "$task_bin" run-server -- healthcheck >"$work/server.out" 2>&1; then
  cat "$work/server.out" >&2
  fail "task run-server -- healthcheck failed"
fi
if grep -q '^ *Compiling ' "$work/server.out"; then
  grep '^ *Compiling ' "$work/server.out" >&2
  fail "task run-server recompiled $(grep -c '^ *Compiling ' "$work/server.out") crates after task run-openai-client"
fi
grep -q '^ *Finished ' "$work/server.out" || { cat "$work/server.out" >&2; fail "task run-server did not run the build step"; }
say "ok: task run-server compiled nothing ($(grep '^ *Finished ' "$work/server.out" | sed 's/^ *//'))"

say "stopping task up"
stop_up
for port in "${ports[@]}"; do
  for _ in $(seq 1 50); do listening "$port" || break; sleep 0.1; done
  if listening "$port"; then
    ss -ltnp "( sport = :$port )" >&2 2>/dev/null || true
    fail "port $port is still in use after stopping task up"
  fi
done
say "ok: ports ${ports[*]} are free again"
say "PASS"
