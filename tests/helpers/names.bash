# A second host name for 127.0.0.1, for the suites about which name a
# connection is for (load after common and peers). The tests run as root:
# the name is one marked line appended to /etc/hosts by setup_file and
# removed, exactly that line, by teardown_file.
#
# OTHER       the name: fresh for each run (nestls-HEX.test), so that runs
#             at the same time never share or remove each other's line
# OTHER_CERT  a certificate for OTHER only (no IP address, no localhost),
# OTHER_KEY   from the outer CA, in the suite's directory

HOSTS_FILE=/etc/hosts
HOSTS_LOCK=/tmp/nestls-etc-hosts.lock # serialises our own edits

# hosts_line: the exact line this suite adds.
hosts_line() {
    echo "127.0.0.1 $OTHER # nestls test suite, pid $$"
}

# other_name_add: set OTHER, add its line, make its certificate.
other_name_add() {
    export OTHER="nestls-$(openssl rand -hex 6).test"
    export OTHER_HOSTS_LINE
    OTHER_HOSTS_LINE=$(hosts_line)
    (
        flock 9
        # a last line without its newline would swallow ours
        [[ -z $(tail -c 1 "$HOSTS_FILE") ]] || echo >>"$HOSTS_FILE"
        echo "$OTHER_HOSTS_LINE" >>"$HOSTS_FILE"
    ) 9>"$HOSTS_LOCK"
    getent hosts "$OTHER" | grep -q '^127\.0\.0\.1 ' ||
        { echo "other_name_add: $OTHER does not resolve to 127.0.0.1" >&2; return 1; }
    other_cert "$BATS_FILE_TMPDIR/other"
}

# other_name_remove: remove exactly the line other_name_add added. The file
# is rewritten in place (its inode kept: it may be a bind mount).
other_name_remove() {
    [[ -n ${OTHER_HOSTS_LINE:-} ]] || return 0
    (
        flock 9
        local kept
        kept=$(grep -vxF -- "$OTHER_HOSTS_LINE" "$HOSTS_FILE" || true)
        printf '%s\n' "$kept" >"$HOSTS_FILE"
    ) 9>"$HOSTS_LOCK"
}

# other_cert BASE: BASE.pem (serverAuth, DNS:$OTHER only) and BASE.key.
other_cert() {
    local base=$1
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$base.key" 2>/dev/null
    printf '%s\n' '[req]' 'distinguished_name = dn' 'prompt = no' '[dn]' '[ext]' \
        'basicConstraints = critical, CA:FALSE' 'keyUsage = critical, digitalSignature' \
        'extendedKeyUsage = serverAuth' "subjectAltName = DNS:$OTHER" >"$base.cnf"
    openssl req -x509 -new -config "$base.cnf" -extensions ext -sha256 -days 2 \
        -key "$base.key" -subj "/CN=$OTHER" \
        -CA "$CERTS/outer-ca.pem" -CAkey "$CERTS/outer-ca.key" -out "$base.pem" 2>/dev/null
    export OTHER_CERT=$base.pem OTHER_KEY=$base.key
}

# start_s_server_other NAME PORT [OPENSSL ARGS...]: start_s_server with
# OTHER's certificate.
start_s_server_other() {
    local name=$1 port=$2
    shift 2
    start_bg "$name" sh -c 'cd "$0" && exec "$@"' "$BATS_TEST_TMPDIR" \
        openssl s_server -accept "127.0.0.1:$port" -cert "$OTHER_CERT" -key "$OTHER_KEY" "$@"
    wait_for_port "$port"
}
