#!/usr/bin/env bash
# Runs the MCP conformance suite against the stack: the server scenarios
# against mcp-server with authentication ON, and the authorization-server
# scenarios against oauth-server, the login form submitted by a script.
#
#   scripts/conformance.sh            # build, start both servers, run, stop
#   scripts/conformance.sh --install-only   # only step 1 (CI does this early)
#   KEEP_RESULTS=1 scripts/conformance.sh   # keep the results folder
#
# 1. Installs the pinned @modelcontextprotocol/conformance and Node 22 (the
#    npm `node` package ships the binary) into .tools/conformance (git-ignored).
# 2. Builds and starts a real oauth-server and mcp-server on free loopback ports.
# 3. Starts scripts/conformance/proxy.mjs, which gets a client_credentials
#    token for mcp-secure-client and adds it to every request (the suite
#    cannot send tokens; the server never gets an auth-off switch).
# 4. Runs every server scenario listed below at its protocol revision, with
#    the per-check baseline scripts/conformance/baseline.yml; exits non-zero
#    on any unexpected failure (or stale baseline entry).
# 5. Runs the authorization-server scenarios (authorization-server-metadata-
#    endpoint, authorization-code-grant) at every revision in AS_VERSIONS for
#    the public dev client claude-desktop-client (PKCE, no secret) and the
#    resource below. The suite prints an authorization URL and waits on a
#    loopback callback; scripts/conformance/login.mjs plays the person: it
#    signs in as the dev user alice, approves, and follows the redirect to
#    the callback. No baseline: every check must be SUCCESS (a WARNING or
#    SKIPPED fails the run too).
#
# Which scenarios run, and why the others do not, is in docs/conformance.md.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

TOOLS="$ROOT/.tools/conformance"
SPEC="$ROOT/scripts/conformance"
NODE="$TOOLS/node_modules/node/bin/node"
SUITE="$TOOLS/node_modules/@modelcontextprotocol/conformance/dist/index.js"

# scenario@revision: each scenario runs at the wire version of its revision
# (2025-11-25: initialize + Mcp-Session-Id; 2026-07-28: stateless, per-request _meta).
SCENARIOS=(
  server-initialize@2025-11-25
  server-session-lifecycle@2025-11-25
  ping@2025-11-25
  tools-list@2025-11-25
  resources-list@2025-11-25
  prompts-list@2025-11-25
  server-sse-multiple-streams@2025-11-25
  dns-rebinding-protection@2025-11-25
  server-stateless@2026-07-28
  tools-list@2026-07-28
  resources-list@2026-07-28
  prompts-list@2026-07-28
  server-sse-multiple-streams@2026-07-28
  dns-rebinding-protection@2026-07-28
  caching@2026-07-28
  http-header-validation@2026-07-28
  sep-2164-resource-not-found@2026-07-28
)

# Revisions the authorization-server scenarios run at: every one the suite
# lists for them. Earlier revisions check a subset (the CIMD-metadata check
# starts at 2025-11-25), and the server answers all of them alike.
AS_VERSIONS=(2025-03-26 2025-06-18 2025-11-25 2026-07-28)
AS_SCENARIOS=(authorization-server-metadata-endpoint authorization-code-grant)
# The public dev client and user (config/clients.toml, config/users.toml).
AS_CLIENT="claude-desktop-client"
AS_USER=(alice alice-dev-password)

log() { printf '[conformance] %s\n' "$*" >&2; }

# --- 1. pinned tools -------------------------------------------------------
install_tools() {
  mkdir -p "$TOOLS"
  if ! cmp -s "$SPEC/package-lock.json" "$TOOLS/package-lock.json" || [[ ! -x "$NODE" || ! -f "$SUITE" ]]; then
    log "installing the pinned conformance suite and Node into .tools/conformance"
    cp "$SPEC/package.json" "$SPEC/package-lock.json" "$TOOLS/"
    (cd "$TOOLS" && npm ci --no-audit --no-fund --loglevel=error >&2)
  fi
  local v
  v="$("$NODE" --version)"
  [[ "$v" == v22.* ]] || { log "expected Node 22 in $TOOLS, found $v"; exit 1; }
}

free_port() {
  "$NODE" -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

PIDS=()
WORK=""
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  if [[ -n "$WORK" && -z "${KEEP_RESULTS:-}" ]]; then
    rm -rf "$WORK"
  elif [[ -n "$WORK" ]]; then
    log "results and logs kept in $WORK"
  fi
}
trap cleanup EXIT

wait_healthy() { # name binary env-assignment...
  local name="$1" bin="$2"
  shift 2
  for _ in $(seq 1 100); do
    if env "$@" "$bin" healthcheck >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.1
  done
  log "$name did not become healthy; its log:"
  cat "$WORK/$name.log" >&2 || true
  exit 1
}

install_tools
if [[ "${1:-}" == "--install-only" ]]; then
  exit 0
fi

# --- 2. servers --------------------------------------------------------------
log "building oauth-server and mcp-server"
cargo build --quiet -p oauth-server -p mcp-server --bins
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/secure-mcp-conformance.XXXXXX")"
OAUTH_PORT="$(free_port)"
MCP_PORT="$(free_port)"
PROXY_PORT="$(free_port)"
ISSUER="http://127.0.0.1:$OAUTH_PORT"
# The audience the server requires; the dev clients may get tokens for it.
RESOURCE="http://localhost:8000/mcp"

OAUTH_ENV=(
  OAUTH_BIND="127.0.0.1:$OAUTH_PORT" OAUTH_ISSUER="$ISSUER" OAUTH_KEYS_DIR="$WORK/keys"
  OAUTH_CLIENTS_FILE="$ROOT/config/clients.toml" OAUTH_USERS_FILE="$ROOT/config/users.toml"
  OAUTH_RESOURCES="$RESOURCE" OAUTH_METRICS_BIND= RUST_LOG=warn
)
# The suite sends hundreds of requests as one client within seconds: lift
# the per-client budget out of its way (rate limiting has its own tests).
MCP_ENV=(
  MCP_BIND="127.0.0.1:$MCP_PORT" MCP_RESOURCE_URL="$RESOURCE" OAUTH_ISSUER="$ISSUER" MCP_METRICS_BIND= RUST_LOG=warn
  RATE_LIMIT_PER_MINUTE=6000000 RATE_LIMIT_BURST=100000
  RATE_LIMIT_AUTH_FAILURES_PER_MINUTE=6000000 RATE_LIMIT_AUTH_FAILURES_BURST=100000
)
# Neither the caller's environment nor a .env in the checkout may leak in
# (e.g. a REDIS_URL): empty environment, working directory $WORK.
cd "$WORK"
env -i PATH="$PATH" "${OAUTH_ENV[@]}" "$BIN/oauth-server" >"$WORK/oauth-server.log" 2>&1 &
PIDS+=($!)
wait_healthy oauth-server "$BIN/oauth-server" -i PATH="$PATH" "${OAUTH_ENV[@]}"
env -i PATH="$PATH" "${MCP_ENV[@]}" "$BIN/mcp-server" >"$WORK/mcp-server.log" 2>&1 &
PIDS+=($!)
wait_healthy mcp-server "$BIN/mcp-server" -i PATH="$PATH" "${MCP_ENV[@]}"
cd "$ROOT"

# Auth is on: the same request without a token is refused.
status="$("$NODE" -e '
fetch(process.argv[1], {method: "POST", headers: {"content-type": "application/json", accept: "application/json, text/event-stream"},
  body: JSON.stringify({jsonrpc: "2.0", id: 1, method: "tools/list"})}).then(r => console.log(r.status), e => { console.error(e); process.exit(1) })
' "http://127.0.0.1:$MCP_PORT/mcp")"
[[ "$status" == 401 ]] || { log "expected 401 without a token, got $status"; exit 1; }

# --- 3. token-injecting proxy ------------------------------------------------
PROXY_PORT="$PROXY_PORT" UPSTREAM="127.0.0.1:$MCP_PORT" TOKEN_URL="$ISSUER/token" \
  CLIENT_ID="mcp-secure-client" CLIENT_SECRET="secure-client-secret-change-in-production" \
  RESOURCE="$RESOURCE" "$NODE" "$SPEC/proxy.mjs" >"$WORK/proxy.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do
  grep -q "proxy ready" "$WORK/proxy.log" 2>/dev/null && break
  if ! kill -0 "${PIDS[-1]}" 2>/dev/null; then
    log "proxy failed:"
    cat "$WORK/proxy.log" >&2
    exit 1
  fi
  sleep 0.1
done
grep -q "proxy ready" "$WORK/proxy.log" || { log "proxy did not start"; cat "$WORK/proxy.log" >&2; exit 1; }

# --- 4. scenarios ------------------------------------------------------------
URL="http://localhost:$PROXY_PORT/mcp"
FAILED=()
for entry in "${SCENARIOS[@]}"; do
  scenario="${entry%@*}"
  version="${entry#*@}"
  log "$scenario ($version)"
  if ! "$NODE" "$SUITE" server --url "$URL" --scenario "$scenario" --spec-version "$version" \
      --expected-failures "$SPEC/baseline.yml" -o "$WORK/results" >"$WORK/$scenario-$version.txt" 2>&1; then
    FAILED+=("$entry")
    cat "$WORK/$scenario-$version.txt" >&2
  fi
  grep -E "^(Passed|Total)|passed, .* failed" "$WORK/$scenario-$version.txt" | tail -1 | sed 's/^/    /' >&2 || true
done

# --- 5. authorization-server scenarios ----------------------------------------
# Every check of every scenario must be SUCCESS; prints one line per check.
as_results_ok() { # results-dir scenario...
  "$NODE" -e '
const fs = require("fs"), path = require("path");
const [dir, ...scenarios] = process.argv.slice(1);
const runs = fs.existsSync(dir) ? fs.readdirSync(dir) : [];
let ok = true;
for (const s of scenarios) {
  const found = runs.filter((n) => n.startsWith(`authorization-server-${s}-`));
  if (found.length !== 1) {
    console.error(`    ${s}: no results`);
    ok = false;
    continue;
  }
  for (const c of JSON.parse(fs.readFileSync(path.join(dir, found[0], "checks.json"), "utf8"))) {
    console.error(`    ${c.status} ${s}: ${c.id}${c.errorMessage ? ` (${c.errorMessage})` : ""}`);
    if (c.status !== "SUCCESS") ok = false;
  }
}
process.exit(ok ? 0 : 1);
' "$@"
}

# Both scenarios in one run of the suite: authorization-code-grant reads the
# metadata the first one fetched (given alone with --scenario it fails with
# "Invalid authorization server metadata").
for version in "${AS_VERSIONS[@]}"; do
  log "authorization server: ${AS_SCENARIOS[*]} ($version)"
  out="$WORK/authorization-$version.txt"
  : >"$out"
  "$NODE" "$SUITE" authorization --url "$ISSUER" --client-id "$AS_CLIENT" --resource "$RESOURCE" \
    -p "$(free_port)" --spec-version "$version" -o "$WORK/results-as-$version" >"$out" 2>&1 &
  suite=$!
  PIDS+=("$suite")
  ok=1
  if ! LOGIN_PASSWORD="${AS_USER[1]}" "$NODE" "$SPEC/login.mjs" --output "$out" \
      --username "${AS_USER[0]}" --pid "$suite" >"$WORK/login-$version.txt" 2>&1; then
    ok=0
    kill "$suite" 2>/dev/null || true # it would wait 5 minutes for the callback
  fi
  wait "$suite" || ok=0
  as_results_ok "$WORK/results-as-$version" "${AS_SCENARIOS[@]}" || ok=0
  if ((!ok)); then
    FAILED+=("authorization@$version")
    cat "$out" "$WORK/login-$version.txt" >&2
  fi
done

if ((${#FAILED[@]})); then
  log "FAILED: ${FAILED[*]}"
  log "server logs: $WORK (set KEEP_RESULTS=1 to keep them)"
  exit 1
fi
log "${#SCENARIOS[@]} server scenario runs and $((${#AS_VERSIONS[@]} * ${#AS_SCENARIOS[@]})) authorization-server scenario runs passed, 0 failed"
