#!/usr/bin/env bash
# Runs a client against the TLS stack (nginx: 8443 → OAuth, 8001 → MCP),
# trusting the local CA that signed nginx's certificate.
#
#   scripts/run-client-with-mkcert.sh                          # openai-client (demo queries)
#   scripts/run-client-with-mkcert.sh anthropic-client tools
#   scripts/run-client-with-mkcert.sh openai-client call get_customer_info '{"customer_id":"12345"}'
#   DEBUG_SSL=1 scripts/run-client-with-mkcert.sh ...          # print what it uses
#
# CA: certs/ca.pem (written by scripts/generate-local-certs.sh in both its
# mkcert and openssl modes), else mkcert's CAROOT/rootCA.pem. It is ADDED to
# the public roots (SSL_CERT_FILE); verification is never switched off.
# URLs: MCP_SERVER_URL defaults to https://localhost:8001/mcp and OAUTH_ISSUER
# to https://localhost:8443 (the only server the client secret is sent to);
# the token endpoint is discovered from them (set OAUTH_TOKEN_URL to override).
# `openai-client`/`anthropic-client` run from PATH, target/release or
# target/debug, else through `cargo run`.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
say() { printf 'run-client-with-mkcert: %s\n' "$*" >&2; }

ca=""
if [ -s "$root/certs/ca.pem" ]; then
  ca="$root/certs/ca.pem"
elif command -v mkcert >/dev/null 2>&1 && [ -s "$(mkcert -CAROOT)/rootCA.pem" ]; then
  ca="$(mkcert -CAROOT)/rootCA.pem"
else
  say "no local CA found: run scripts/generate-local-certs.sh (or: task certs) first"
  exit 1
fi

export SSL_CERT_FILE="$ca"
export MCP_SERVER_URL="${MCP_SERVER_URL:-https://localhost:8001/mcp}"
# The client's secret goes only to this authorization server (the TLS one).
export OAUTH_ISSUER="${OAUTH_ISSUER:-https://localhost:8443}"

if [ $# -eq 0 ]; then
  set -- openai-client
fi

if [ "${DEBUG_SSL:-0}" = 1 ]; then
  export RUST_LOG="${RUST_LOG:-info,rustls=debug}"
  say "SSL_CERT_FILE=$SSL_CERT_FILE"
  if command -v openssl >/dev/null 2>&1; then
    openssl x509 -in "$ca" -noout -subject -enddate | sed 's/^/run-client-with-mkcert:   CA /' >&2
    hostport="$(sed -E 's#^https://([^/]+).*#\1#' <<<"$MCP_SERVER_URL")"
    case "$hostport" in *:*) ;; *) hostport="$hostport:443" ;; esac
    if verdict="$(openssl s_client -connect "$hostport" -servername "${hostport%:*}" -CAfile "$ca" -brief </dev/null 2>&1)"; then
      say "TLS to $hostport: $(grep -E 'Protocol version|Verification' <<<"$verdict" | tr '\n' ' ')"
    else
      say "TLS to $hostport failed: $(tail -n 2 <<<"$verdict" | tr '\n' ' ')"
    fi
  fi
  say "MCP_SERVER_URL=$MCP_SERVER_URL OAUTH_ISSUER=$OAUTH_ISSUER${OAUTH_TOKEN_URL:+ OAUTH_TOKEN_URL=$OAUTH_TOKEN_URL}"
  say "command: $*"
fi

cmd="$1"
case "$cmd" in
  openai-client | anthropic-client)
    shift
    if command -v "$cmd" >/dev/null 2>&1; then
      exec "$cmd" "$@"
    fi
    for profile in release debug; do
      if [ -x "$root/target/$profile/$cmd" ]; then
        exec "$root/target/$profile/$cmd" "$@"
      fi
    done
    exec cargo run --quiet --manifest-path "$root/Cargo.toml" -p "$cmd" -- "$@"
    ;;
  *)
    exec "$@"
    ;;
esac
