#!/usr/bin/env bats
# --json for check, explain and probe: one document that python3 -m json.tool
# accepts, with the members docs/json.md lists (exactly those: a member
# added or renamed fails here until the page says so), and an "error"
# member with the usual exit status when something fails.

load helpers/common
load helpers/peers

setup() {
    need_cli
    need_cmd python3
    cd "$BATS_TEST_TMPDIR"
}

# json_ok: the last output parses as JSON.
json_ok() {
    python3 -m json.tool <<<"$output" >/dev/null || fail "not JSON:
$output"
}

# json_is EXPR EXPECTED: the Python expression EXPR over the parsed last
# output (as d), printed as JSON (sort_keys), is EXPECTED.
json_is() {
    local got
    got=$(python3 -c 'import json, sys
d = json.loads(sys.stdin.read())
print(json.dumps(eval(sys.argv[1]), sort_keys=True))' "$1" <<<"$output") || fail "cannot evaluate $1 on:
$output"
    [[ $got == "$2" ]] || fail "$1: expected $2, got $got"
}

# json_keys EXPR KEY...: the object EXPR has exactly the members KEY...
json_keys() {
    local expr=$1
    shift
    json_is "sorted($expr)" "$(python3 -c 'import json, sys; print(json.dumps(sorted(sys.argv[1:])))' "$@")"
}

LAYER_KEYS=(index line position server_name ca verify cert key client_ca min_version max_version
    ciphers ciphersuites groups alpn crl padding certs sni_required ocsp ocsp_staple)
RULE_HEAD_KEYS=(index name line match action starttls)

# ------------------------------------------------------------------ check

@test "check --json: parses, with the documented members and values" {
    run --separate-stderr "$NESTLS" check --json "$REPO/policy/demo.yaml"
    assert_ok
    json_ok
    json_keys 'd' error policies
    json_is 'd["error"]' null
    json_keys 'd["policies"][0]' file valid error path settings rules
    json_is 'd["policies"][0]["valid"]' true
    json_is 'd["policies"][0]["path"]' "\"$REPO/policy/demo.yaml\""
    json_keys 'd["policies"][0]["settings"]' log_level log_file default_action \
        handshake_timeout_ms linger_ms keylog_file allow_io_uring insecure_allow_unhookable reload
    json_is 'd["policies"][0]["settings"]["handshake_timeout_ms"]' 10000
    json_is 'd["policies"][0]["settings"]["keylog_file"]' null
    json_keys 'd["policies"][0]["rules"][0]' "${RULE_HEAD_KEYS[@]}" layers
    json_keys 'd["policies"][0]["rules"][0]["match"]' role addresses ports program
    json_is '[r["name"] for r in d["policies"][0]["rules"]]' '["demo-server", "demo-client"]'
    json_is 'd["policies"][0]["rules"][0]["match"]' \
        '{"addresses": ["127.0.0.1", "::1"], "ports": [], "program": null, "role": "server"}'
    json_keys 'd["policies"][0]["rules"][0]["layers"][0]' "${LAYER_KEYS[@]}"
    json_is 'd["policies"][0]["rules"][0]["layers"][0]["client_ca"]' "\"$CERTS/outer-ca.pem\""
    json_is '[l["position"] for l in d["policies"][0]["rules"][1]["layers"]]' '["outermost", "innermost"]'
    json_is 'd["policies"][0]["rules"][1]["layers"][1]["server_name"]' '"localhost"'
}

@test "check --json: ports are low/high pairs and ALPN a list" {
    write_policy policy.yaml <<'EOF'
version: 1
rules:
  - name: web
    match:
      role: client
      port: [443, "8000-8999"]
    layers:
      - ca: system
        alpn: [h2, http/1.1]
EOF
    run --separate-stderr "$NESTLS" check --json -p policy.yaml
    assert_ok
    json_is 'd["policies"][0]["rules"][0]["match"]["ports"]' \
        '[{"high": 443, "low": 443}, {"high": 8999, "low": 8000}]'
    json_is 'd["policies"][0]["rules"][0]["layers"][0]["alpn"]' '["h2", "http/1.1"]'
    json_is 'd["policies"][0]["rules"][0]["layers"][0]["ca"]' '"system"'
}

@test "check --json: an invalid policy is valid: false with its FILE:LINE:COL error, the others still described, exit 1" {
    write_policy policy.yaml <<'EOF'
version: 1
rules:
  - name: typo
    match:
      rol: client
EOF
    run --separate-stderr "$NESTLS" check --json "$REPO/policy/client-one-layer.yaml" policy.yaml
    assert_failure 1
    json_ok
    json_is 'd["policies"][0]["valid"]' true
    json_keys 'd["policies"][1]' file valid error
    json_is 'd["policies"][1]["valid"]' false
    json_is 'd["policies"][1]["error"].startswith("policy.yaml:5:7: ")' true
    json_is 'd["error"] == d["policies"][1]["error"]' true
    [[ $stderr =~ ^nestls:\ policy\.yaml:5:7: ]] || fail "stderr: $stderr"
}

@test "check --json and explain --json: a rule's starttls is its protocol, else null" {
    write_policy policy.yaml <<'EOF'
version: 1
rules:
  - name: mail
    match: {role: client, port: [25]}
    starttls: smtp
    layers:
      - ca: @CERTS@/outer-ca.pem
  - name: db
    match: {role: client, port: [5432]}
    layers:
      - ca: @CERTS@/outer-ca.pem
EOF
    run --separate-stderr "$NESTLS" check --json policy.yaml
    assert_ok
    json_ok
    json_is '[r["starttls"] for r in d["policies"][0]["rules"]]' '["smtp", null]'
    run --separate-stderr "$NESTLS" explain --json -p policy.yaml client 127.0.0.1:25
    assert_ok
    json_ok
    json_is 'd["decisions"][0]["rule"]["starttls"]' '"smtp"'
}

@test "check --json: strings with quotes, backslashes, tabs and UTF-8 come through intact" {
    printf 'version: 1\nrules:\n  - name: "say \\"hi\\" \\\\ to\\tcaf\\u00e9 \\u2603"\n    action: passthrough\n' >policy.yaml
    run --separate-stderr "$NESTLS" check --json policy.yaml
    assert_ok
    json_ok
    json_is 'd["policies"][0]["rules"][0]["name"] == "say \"hi\" \\ to\tcaf\u00e9 \u2603"' true
}

# ---------------------------------------------------------------- explain

@test "explain --json: parses, with the documented members (client by address)" {
    run --separate-stderr "$NESTLS" explain --json -p "$REPO/policy/client-two-layer.yaml" \
        client 127.0.0.1:9000
    assert_ok
    json_ok
    json_keys 'd' error policy query decisions
    json_is 'd["error"]' null
    json_keys 'd["query"]' role host host_name address resolved port program
    json_is 'd["query"]' '{"address": "127.0.0.1", "host": "127.0.0.1", "host_name": null, "port": 9000, "program": null, "resolved": false, "role": "client"}'
    json_is 'len(d["decisions"])' 1
    json_keys 'd["decisions"][0]' basis address rule default_action action layers
    json_is 'd["decisions"][0]["basis"]' '"address"'
    json_keys 'd["decisions"][0]["rule"]' "${RULE_HEAD_KEYS[@]}"
    json_is 'd["decisions"][0]["rule"]["name"]' '"loopback-two-layers"'
    json_keys 'd["decisions"][0]["layers"][0]' "${LAYER_KEYS[@]}" verify_name
    json_keys 'd["decisions"][0]["layers"][0]["verify_name"]' name source sni verified
    json_is 'd["decisions"][0]["layers"][0]["verify_name"]' \
        '{"name": "localhost", "sni": true, "source": "server_name", "verified": true}'
}

@test "explain --json: a host named by the rule is decided by name alone, unresolved" {
    write_policy policy.yaml <<'EOF'
version: 1
rules:
  - name: internal
    match:
      role: client
      address: ["*.internal"]
    layers:
      - ca: @CERTS@/outer-ca.pem
EOF
    run --separate-stderr "$NESTLS" explain -p policy.yaml --json client db.example.internal:5432
    assert_ok
    json_ok
    json_is 'd["query"]["resolved"]' false
    json_is 'd["query"]["address"]' null
    json_is '[o["basis"] for o in d["decisions"]]' '["host_name"]'
    json_is 'd["decisions"][0]["rule"]["name"]' '"internal"'
    json_is 'd["decisions"][0]["layers"][0]["verify_name"]' \
        '{"name": "db.example.internal", "sni": true, "source": "host_name", "verified": true}'
}

@test "explain --json: the server role and a default action" {
    run --separate-stderr "$NESTLS" explain --json "$REPO/policy/demo.yaml" server 127.0.0.1:9000
    assert_ok
    json_is 'd["decisions"][0]["layers"][0]["verify_name"]' null
    json_is 'd["decisions"][0]["rule"]["name"]' '"demo-server"'
    run --separate-stderr "$NESTLS" explain --json "$REPO/policy/deny-by-default.yaml" client 192.0.2.1:80
    assert_ok
    json_is '[d["decisions"][0][k] for k in ("rule", "default_action", "action", "layers")]' \
        '[null, true, "deny", []]'
}

@test "explain --json: an invalid policy and an unresolvable name needed for the decision are JSON errors, exit 1" {
    write_policy policy.yaml <<'EOF'
version: 1
rules:
  - name: typo
    match:
      role: client
    layers:
      - servr_name: localhost
EOF
    run --separate-stderr "$NESTLS" explain --json policy.yaml client 127.0.0.1:9000
    assert_failure 1
    json_ok
    json_keys 'd' error
    json_is 'd["error"].startswith("policy.yaml:7:9: ")' true
    run --separate-stderr "$NESTLS" explain --json "$REPO/policy/client-one-layer.yaml" \
        client no-such-host.invalid:443
    assert_failure 1
    json_ok
    json_is '"cannot resolve no-such-host.invalid" in d["error"]' true
}

# ------------------------------------------------------------------ probe

@test "probe --json: a two-layer stunnel chain parses, with the documented members, every layer verified" {
    start_stunnel_chain
    client_policy client.yaml "$PORT" outer inner
    run --separate-stderr "$NESTLS" probe --json -p "$POLICY" "127.0.0.1:$PORT"
    assert_ok
    json_ok
    json_keys 'd' error verified target source policy rule timeout_ms connect_ms layers
    json_is '[d["error"], d["verified"], d["source"]]' '[null, true, "policy"]'
    json_keys 'd["target"]' host host_name port address
    json_keys 'd["rule"]' "${RULE_HEAD_KEYS[@]}"
    json_is 'isinstance(d["connect_ms"], float)' true
    json_is 'len(d["layers"])' 2
    json_keys 'd["layers"][0]' index position state error protocol cipher group sni verification \
        alpn resumed ocsp handshake_ms chain
    json_keys 'd["layers"][0]["verification"]' enabled name name_type certificate_received ok code result
    json_keys 'd["layers"][0]["ocsp"]' status detail
    json_keys 'd["layers"][0]["chain"][0]' depth subject issuer san not_before not_after
    json_is '[(l["state"], l["verification"]["ok"], l["verification"]["result"]) for l in d["layers"]]' \
        '[["up", true, "ok"], ["up", true, "ok"]]'
    json_is '[l["chain"][0]["issuer"] for l in d["layers"]]' \
        '["CN=nestls demo outer CA", "CN=nestls demo inner CA"]'
    json_is '[l["verification"]["name"] for l in d["layers"]]' '["127.0.0.1", "127.0.0.1"]'
    json_is 'all(l["protocol"].startswith("TLSv1.") and l["cipher"] and l["group"] for l in d["layers"])' true
    json_is '[l["ocsp"]["status"] for l in d["layers"]]' '["none", "none"]'
    json_is '"IP:127.0.0.1" in d["layers"][1]["chain"][0]["san"]' true
}

@test "probe --json: a wrong inner CA sets error naming layer 2, exit 1" {
    start_stunnel_chain
    run --separate-stderr "$NESTLS" probe --json --layer "ca=$CERTS/outer-ca.pem" \
        --layer "ca=$CERTS/outer-ca.pem" "127.0.0.1:$PORT"
    assert_failure 1
    json_ok
    json_is 'd["error"]' "\"layer 2: certificate verify failed: unable to get local issuer certificate (the server's certificate is not from a CA in this layer's 'ca')\""
    json_is '[d["verified"], d["source"], d["policy"], d["rule"]]' '[false, "layers", null, null]'
    json_is '[l["state"] for l in d["layers"]]' '["up", "failed"]'
    json_is 'd["layers"][1]["verification"]["code"]' 20
    json_is 'd["layers"][1]["chain"][0]["subject"]' '"CN=localhost"'
}

@test "probe --json: nothing listening is a JSON report with error, layers not started, exit 1" {
    PORT=$(free_port)
    run --separate-stderr "$NESTLS" probe --json --layer "ca=$CERTS/outer-ca.pem" "127.0.0.1:$PORT"
    assert_failure 1
    json_ok
    json_is 'd["error"].startswith("TCP connect to 127.0.0.1 port ")' true
    json_is '[d["connect_ms"], d["layers"][0]["state"], d["layers"][0]["handshake_ms"]]' \
        '[null, "not_started", null]'
}

@test "probe --json: an invalid policy is a JSON error, exit 78" {
    printf 'version: 2\n' >policy.yaml
    run --separate-stderr "$NESTLS" probe --json -p policy.yaml 127.0.0.1:9
    assert_failure 78
    json_ok
    json_keys 'd' error
}

# ------------------------------------------------------------ usage errors

@test "--json usage errors are a JSON document with error, exit 2, for check, explain and probe" {
    local cmd
    for cmd in check explain probe; do
        # the unknown option comes before --json: still JSON
        run --separate-stderr "$NESTLS" "$cmd" --frobnicate --json
        assert_failure 2
        json_ok
        json_is 'd' "{\"error\": \"$cmd: unknown option '--frobnicate'\"}"
        # and without --json, nothing on stdout
        run --separate-stderr "$NESTLS" "$cmd" --frobnicate
        assert_failure 2
        assert_output ''
    done
    run --separate-stderr "$NESTLS" explain --json -p "$REPO/policy/demo.yaml" peer 127.0.0.1:9000
    assert_failure 2
    json_is 'd["error"]' '"explain: the role must be client or server: peer"'
    run --separate-stderr "$NESTLS" probe --json --layer ca=system
    assert_failure 2
    json_is 'd["error"]' '"probe: no HOST:PORT given"'
}
