#!/usr/bin/env bash
# Local TLS material for nginx (8443 → oauth-server, 8001 → mcp-server).
#
#   scripts/generate-local-certs.sh            # writes certs/ (git-ignored)
#   CERTS_DIR=/tmp/x scripts/generate-local-certs.sh
#
# With mkcert installed: a certificate from mkcert's local CA (`mkcert -install`
# makes browsers and the OS trust it). Otherwise openssl creates a local CA
# and a server certificate signed by it. Either way:
#   certs/ca.pem          the CA that signed server.pem: what clients trust
#                         (SSL_CERT_FILE / MCP_CA_CERT, scripts/run-client-with-mkcert.sh)
#   certs/server.pem      server certificate (+ chain) for nginx
#   certs/server-key.pem  its private key (0600)
#   certs/ca-key.pem      the local CA's private key (openssl mode only, 0600)
# SANs: localhost, 127.0.0.1, ::1, nginx, oauth, mcp (the compose service names).
#
# Idempotent: a present, valid set (signed by ca.pem, all SANs, > 30 days
# left) is kept as it is; otherwise the server certificate is re-issued (the
# CA is kept when it is still valid, so clients need not re-trust it).
# SECURE_MCP_CERTS_NO_MKCERT=1 forces the openssl path.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${CERTS_DIR:-$root/certs}"
names=(localhost 127.0.0.1 ::1 nginx oauth mcp)
days_server=397   # what browsers accept for a leaf
days_ca=3650
renew_before=$((30 * 24 * 3600))

say() { printf 'generate-local-certs: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

command -v openssl >/dev/null 2>&1 || die "openssl is required (apt-get install openssl)"
mkdir -p "$dir"
umask 077

ca="$dir/ca.pem" ca_key="$dir/ca-key.pem" cert="$dir/server.pem" key="$dir/server-key.pem"

# True when server.pem is signed by ca.pem, matches server-key.pem, carries
# every SAN and stays valid for a while.
valid_set() {
  [ -s "$ca" ] && [ -s "$cert" ] && [ -s "$key" ] || return 1
  openssl verify -CAfile "$ca" "$cert" >/dev/null 2>&1 || return 1
  openssl x509 -in "$cert" -noout -checkend "$renew_before" >/dev/null 2>&1 || return 1
  local san want
  san="$(openssl x509 -in "$cert" -noout -ext subjectAltName 2>/dev/null)" || return 1
  for want in DNS:localhost "IP Address:127.0.0.1" "IP Address:0:0:0:0:0:0:0:1" DNS:nginx DNS:oauth DNS:mcp; do
    grep -qF "$want" <<<"$san" || return 1
  done
  [ "$(openssl x509 -in "$cert" -noout -pubkey | openssl sha256)" = \
    "$(openssl pkey -in "$key" -pubout | openssl sha256)" ] || return 1
}

if valid_set; then
  chmod 600 "$key"; [ -f "$ca_key" ] && chmod 600 "$ca_key"
  say "certificates in $dir are present and valid; nothing to do"
  exit 0
fi

if [ "${SECURE_MCP_CERTS_NO_MKCERT:-0}" != 1 ] && command -v mkcert >/dev/null 2>&1; then
  say "using mkcert ($(mkcert -CAROOT))"
  mkcert -install >/dev/null 2>&1 || say "warning: 'mkcert -install' failed; the CA is not in the system trust store (clients can still use $ca)"
  mkcert -cert-file "$cert" -key-file "$key" "${names[@]}" >/dev/null 2>&1 \
    || die "mkcert could not issue the certificate"
  cp "$(mkcert -CAROOT)/rootCA.pem" "$ca"
  rm -f "$ca_key"
else
  # Keep a CA that is still good: clients that trust it keep working.
  if ! { [ -s "$ca" ] && [ -s "$ca_key" ] \
         && openssl x509 -in "$ca" -noout -checkend "$renew_before" >/dev/null 2>&1; }; then
    say "creating a local CA in $dir (openssl)"
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$ca_key" 2>/dev/null
    openssl req -x509 -new -key "$ca_key" -sha256 -days "$days_ca" \
      -subj "/O=secure-mcp local development/CN=secure-mcp local CA" \
      -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
      -addext "keyUsage=critical,keyCertSign,cRLSign" \
      -addext "subjectKeyIdentifier=hash" \
      -out "$ca"
  fi
  say "issuing the server certificate (SANs: ${names[*]})"
  ext="$(mktemp)" csr="$(mktemp)"
  trap 'rm -f "$ext" "$csr"' EXIT
  san="DNS:localhost,IP:127.0.0.1,IP:::1,DNS:nginx,DNS:oauth,DNS:mcp"
  printf '%s\n' \
    "basicConstraints=critical,CA:FALSE" \
    "keyUsage=critical,digitalSignature" \
    "extendedKeyUsage=serverAuth" \
    "subjectKeyIdentifier=hash" \
    "authorityKeyIdentifier=keyid" \
    "subjectAltName=$san" >"$ext"
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$key" 2>/dev/null
  openssl req -new -key "$key" -subj "/O=secure-mcp local development/CN=localhost" -out "$csr"
  openssl x509 -req -in "$csr" -CA "$ca" -CAkey "$ca_key" -CAcreateserial -CAserial "$dir/ca.srl" \
    -days "$days_server" -sha256 -extfile "$ext" -out "$cert" 2>/dev/null
fi

chmod 600 "$key"; [ -f "$ca_key" ] && chmod 600 "$ca_key"
chmod 644 "$ca" "$cert"
valid_set || die "the new certificate does not verify; remove $dir and retry"
say "done: $cert (key $key), trust $ca"
