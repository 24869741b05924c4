# A certificate authority's records for the revocation suites (load after
# common): an `openssl ca` database per name in the test's directory, in
# which the demo certificates are marked valid or revoked, and what a CA
# publishes from it: CRLs (openssl ca -gencrl) and OCSP responses from a
# real responder (openssl ocsp -index ... -port).

# ca_db NAME: the database db-NAME (index, CRL number, config); made once.
ca_db() {
    [[ -f db-$1/ca.cnf ]] && return 0
    mkdir -p "db-$1"
    : >"db-$1/index.txt"
    echo 1000 >"db-$1/crlnumber"
    printf '[ca]\ndefault_ca = d\n[d]\ndatabase = %s\ncrlnumber = %s\ndefault_md = sha256\ndefault_crl_days = 1\n' \
        "$PWD/db-$1/index.txt" "$PWD/db-$1/crlnumber" >"db-$1/ca.cnf"
}

# ca_mark NAME CA valid|revoke CERT: record certs/CERT.pem in db-NAME as
# valid, or revoked now, by the CA (outer or inner).
ca_mark() {
    local name=$1 ca=$2 how=$3 cert=$4
    ca_db "$name"
    openssl ca -config "db-$name/ca.cnf" -cert "$CERTS/$ca-ca.pem" -keyfile "$CERTS/$ca-ca.key" \
        "-$how" "$CERTS/$cert.pem" 2>/dev/null || fail "openssl ca -$how $cert failed"
}

# make_crl NAME CA [CERT...]: NAME.pem, a CRL signed by CA that revokes
# each certs/CERT.pem. CRL_DATES="-crl_lastupdate A -crl_nextupdate B"
# backdates it.
make_crl() {
    local name=$1 ca=$2 cert
    shift 2
    ca_db "$name"
    for cert in "$@"; do ca_mark "$name" "$ca" revoke "$cert"; done
    # shellcheck disable=SC2086 # CRL_DATES is a list of options
    openssl ca -config "db-$name/ca.cnf" -cert "$CERTS/$ca-ca.pem" -keyfile "$CERTS/$ca-ca.key" \
        -gencrl ${CRL_DATES:-} -out "$name.pem" 2>/dev/null || fail "openssl ca -gencrl failed"
}

# ocsp_response NAME CA CERT OUT: ask an OCSP responder for CA's database
# db-NAME (openssl ocsp, started for the one request, by PID) about
# certs/CERT.pem; its DER response in OUT (good, revoked, or unknown: as
# the database says).
ocsp_response() {
    local name=$1 ca=$2 cert=$3 out=$4 port
    ca_db "$name"
    port=$(free_port)
    start_bg "ocsp-$port" openssl ocsp -index "db-$name/index.txt" -port "$port" \
        -rsigner "$CERTS/$ca-ca.pem" -rkey "$CERTS/$ca-ca.key" -CA "$CERTS/$ca-ca.pem" \
        -nmin 60 -nrequest 1
    local responder=$BG_PID
    wait_for_port "$port"
    openssl ocsp -issuer "$CERTS/$ca-ca.pem" -cert "$CERTS/$cert.pem" -url "http://127.0.0.1:$port" \
        -CAfile "$CERTS/$ca-ca.pem" -respout "$out" >/dev/null 2>&1 || fail "no OCSP response for $cert"
    stop_bg "$responder"
    [[ -s $out ]] || fail "empty OCSP response for $cert"
}
