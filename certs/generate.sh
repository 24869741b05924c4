#!/usr/bin/env bash
# The nestls demo PKI: two independent CAs (outer, inner), server and client
# certificates under each, and negative material for tests (expired, wrong
# name, unknown CA, key that does not match its certificate).
#
# Usage: bash certs/generate.sh [--force]      (or: make certs)
#
# Writes into the directory this script lives in, from any working directory.
# Only the openssl command is used: ECDSA P-256 keys, SHA-256 signatures.
# Idempotent: when every output exists and no certificate that should be
# valid is near expiry, it does nothing. Otherwise everything is made afresh
# in a temporary directory and moved into place only when all of it worked,
# so a failed run never leaves a half-made set behind.
set -euo pipefail

DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DAYS=3650                  # demo material: long-lived, regenerated when near expiry
RENEW_SECONDS=$((30 * 86400))

# Certificates that must be valid now (the expired one, by design, is not).
VALID_CERTS=(outer-ca inner-ca unknown-ca
             outer-server inner-server outer-client inner-client
             wrongname-server unknown-server mismatch)
KEYS=(outer-ca inner-ca unknown-ca
      outer-server inner-server outer-client inner-client
      expired-server wrongname-server unknown-server mismatch)
CERTS=("${VALID_CERTS[@]}" expired-server)

up_to_date() {
    local name
    for name in "${CERTS[@]}"; do [[ -s $DIR/$name.pem ]] || return 1; done
    for name in "${KEYS[@]}"; do [[ -s $DIR/$name.key ]] || return 1; done
    for name in "${VALID_CERTS[@]}"; do
        openssl x509 -noout -checkend "$RENEW_SECONDS" -in "$DIR/$name.pem" \
            >/dev/null 2>&1 || return 1
    done
}

if [[ ${1:-} != --force ]] && up_to_date; then
    echo "certs: up to date in $DIR"
    exit 0
fi

command -v openssl >/dev/null || { echo "certs: openssl not found" >&2; exit 1; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/nestls-certs.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
OUT=$TMP/out
mkdir "$OUT"
umask 077

# One config for every certificate: each profile is an extension section.
cat >"$TMP/x509.cnf" <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[wrongname_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:wrong.example
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[client_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF

new_key() { # FILE
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null
}

make_ca() { # NAME CN
    new_key "$OUT/$1.key"
    openssl req -x509 -new -config "$TMP/x509.cnf" -extensions ca_ext -sha256 \
        -days "$DAYS" -key "$OUT/$1.key" -subj "/CN=$2" -out "$OUT/$1.pem"
    echo "certs: made $1.pem (CA \"$2\")"
}

# make_cert NAME CA CN PROFILE [KEYFILE]: a certificate for NAME.key (or
# KEYFILE) signed by CA; prints what it made.
make_cert() {
    local name=$1 ca=$2 cn=$3 profile=$4 key=${5:-$OUT/$1.key}
    [[ -s $key ]] || new_key "$key"
    openssl req -x509 -new -config "$TMP/x509.cnf" -extensions "$profile" -sha256 \
        -days "$DAYS" -key "$key" -subj "/CN=$cn" \
        -CA "$OUT/$ca.pem" -CAkey "$OUT/$ca.key" -out "$OUT/$name.pem"
    echo "certs: made $name.pem (CN $cn, $profile, signed by $ca)"
}

make_ca outer-ca "nestls demo outer CA"
make_ca inner-ca "nestls demo inner CA"
make_ca unknown-ca "nestls demo unknown CA"

make_cert outer-server outer-ca localhost server_ext
make_cert inner-server inner-ca localhost server_ext
make_cert outer-client outer-ca nestls-client-outer client_ext
make_cert inner-client inner-ca nestls-client-inner client_ext
make_cert wrongname-server outer-ca wrong.example wrongname_ext
make_cert unknown-server unknown-ca localhost server_ext

# mismatch.pem is a good certificate for a key that is thrown away;
# mismatch.key is another key, so the pair can never be loaded together.
make_cert mismatch outer-ca localhost server_ext "$TMP/mismatch-real.key"
new_key "$OUT/mismatch.key"
echo "certs: made mismatch.key (does not match mismatch.pem)"

# expired-server: `openssl x509 -req` and `req -x509` cannot backdate, so
# sign with `openssl ca`, whose -startdate/-enddate can, from a throwaway
# database. Validity: 30 days ago to 1 day ago.
mkdir "$TMP/ca"
: >"$TMP/ca/index.txt"
cat >"$TMP/ca.cnf" <<EOF
[ca]
default_ca = demo
[demo]
database = $TMP/ca/index.txt
new_certs_dir = $TMP/ca
serial = $TMP/ca/serial
default_md = sha256
policy = any_name
unique_subject = no
copy_extensions = none
[any_name]
commonName = supplied
EOF
openssl rand -hex 16 >"$TMP/ca/serial"
new_key "$OUT/expired-server.key"
openssl req -new -config "$TMP/x509.cnf" -key "$OUT/expired-server.key" \
    -subj "/CN=localhost" -out "$TMP/expired.csr"
openssl ca -config "$TMP/ca.cnf" -batch -notext -in "$TMP/expired.csr" \
    -cert "$OUT/outer-ca.pem" -keyfile "$OUT/outer-ca.key" \
    -extfile "$TMP/x509.cnf" -extensions server_ext \
    -startdate "$(date -u -d '30 days ago' +%Y%m%d%H%M%SZ)" \
    -enddate "$(date -u -d '1 day ago' +%Y%m%d%H%M%SZ)" \
    -out "$OUT/expired-server.pem" 2>/dev/null
echo "certs: made expired-server.pem (CN localhost, expired, signed by outer-ca)"

chmod 0600 "$OUT"/*.key
chmod 0644 "$OUT"/*.pem
mv -f "$OUT"/*.pem "$OUT"/*.key "$DIR"/
echo "certs: wrote ${#CERTS[@]} certificates and ${#KEYS[@]} keys in $DIR"
