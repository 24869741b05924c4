#!/usr/bin/env python3
"""testssl_findings.py FILE.json: judge testssl.sh's flat JSON findings
(--jsonfile) for a server that nestls wraps with default settings.

Fails (exit 1, one "FAIL: ..." line per problem) when
  - any finding has severity HIGH or CRITICAL, or its text says
    "VULNERABLE" or "NOT ok" -- except the findings named in CERT_FACTS,
    which describe the demo certificate (certs/generate.sh), not a setting
    nestls chooses; they are listed as "not judged";
  - the scan itself had trouble: a FATAL finding, or a WARN (a check that
    could not be made) on anything judged here (JUDGED below). Other WARNs
    are printed as notes: e.g. the session resumption probe, whose
    `s_client </dev/null` may exit before a slow server's (ASan build)
    TLS 1.3 ticket arrives, or the note on the local openssl's engines;
  - SSLv2, SSLv3, TLS 1.0 or TLS 1.1 is offered, or TLS 1.2 / 1.3 is not;
  - any cipher offered is not forward secret (key exchange other than
    ECDHE/DHE; every TLS 1.3 suite is), or no cipher was listed at all;
  - a section did not run: each of REQUIRED must be present.
Prints a summary of what was checked either way."""
import json
import re
import sys
from collections import Counter

# Properties of the demo certificate, not of nestls: ten years of validity
# and no CRL or OCSP URL (certs/generate.sh makes a throw-away test PKI).
CERT_FACTS = {
    "cert_validityPeriod": "the demo certificate is valid for ten years",
    "cert_revocation": "the demo certificate names no CRL or OCSP URL",
}

PROTOCOLS_OFF = ["SSLv2", "SSLv3", "TLS1", "TLS1_1"]
PROTOCOLS_ON = ["TLS1_2", "TLS1_3"]
VULNERABILITIES = ["heartbleed", "CCS", "ticketbleed", "ROBOT", "secure_renego",
                   "secure_client_renego", "CRIME_TLS", "POODLE_SSL", "fallback_SCSV",
                   "SWEET32", "FREAK", "DROWN", "LOGJAM", "BEAST", "LUCKY13", "RC4"]
# One id per section asked for: protocols (-p), cipher categories (-s),
# forward secrecy (-f), server preferences (-P), server defaults (-S),
# vulnerabilities (-U); each cipher (-e) is checked by count below.
REQUIRED = (PROTOCOLS_OFF + PROTOCOLS_ON + VULNERABILITIES +
            ["cipherlist_NULL", "cipherlist_aNULL", "cipherlist_EXPORT", "cipherlist_LOW",
             "cipherlist_3DES_IDEA", "PFS", "cipher_order", "protocol_negotiated",
             "TLS_extensions", "cert_chain_of_trust", "cert_trust"])
# What a WARN must not hide: the protocol, cipher and vulnerability checks.
JUDGED = set(REQUIRED) - {"TLS_extensions"}


def main():
    if len(sys.argv) != 2:
        print(__doc__.splitlines()[0])
        return 2
    with open(sys.argv[1]) as f:
        findings = json.load(f)
    problems = []
    by_id = {}
    for x in findings:
        by_id.setdefault(x["id"], x)

    for name in REQUIRED:
        if name not in by_id:
            problems.append("no '%s' finding: that part of the scan did not run" % name)

    not_judged = []
    notes = []
    for x in findings:
        sev, fid, text = x["severity"], x["id"], x["finding"]
        alarming = (sev in ("HIGH", "CRITICAL")
                    or re.search(r"(?<!not )\bVULNERABLE\b", text)
                    or "NOT ok" in text)
        if fid in CERT_FACTS and sev != "CRITICAL":
            if alarming:
                not_judged.append("%s %s (%s): %s" % (fid, sev, text, CERT_FACTS[fid]))
            continue
        if alarming:
            problems.append("%s %s: %s" % (fid, sev, text))
        elif sev == "FATAL" or (sev == "WARN" and (fid in JUDGED or fid.startswith("cipher"))):
            problems.append("the scan had trouble: %s %s: %s" % (fid, sev, text))
        elif sev == "WARN":
            notes.append("%s: %s" % (fid, text))

    for name in PROTOCOLS_OFF:
        text = by_id.get(name, {}).get("finding", "")
        if name in by_id and not text.startswith("not offered"):
            problems.append("%s is %s" % (name, text))
    for name in PROTOCOLS_ON:
        text = by_id.get(name, {}).get("finding", "")
        if name in by_id and not text.startswith("offered"):
            problems.append("%s is %s (expected offered)" % (name, text))

    # -e: one "cipher_xHEX" finding per suite the server accepted:
    # "x1302   TLS_AES_256_GCM_SHA384   ECDH 253   AESGCM   256   TLS_AES_256_GCM_SHA384"
    ciphers = []
    for x in findings:
        if not re.match(r"^cipher_x[0-9a-f]+$", x["id"]):
            continue
        cols = x["finding"].split()
        hexcode, name, kx, rfc = cols[0], cols[1], cols[2], cols[-1]
        tls13 = rfc.startswith("TLS_") and "_WITH_" not in rfc
        forward_secret = tls13 or (kx in ("ECDH", "DH") and re.match(r"^TLS_(ECDHE|DHE)_", rfc))
        ciphers.append(name)
        if not forward_secret:
            problems.append("cipher %s %s (%s, key exchange %s) is not forward secret"
                            % (hexcode, name, rfc, kx))
    if not ciphers:
        problems.append("no cipher listed: the per-cipher scan (-e) did not run")

    counts = Counter(x["severity"] for x in findings)
    print("testssl.sh: %d findings: %s" % (
        len(findings), ", ".join("%d %s" % (n, s) for s, n in counts.most_common())))
    print("protocols offered: %s; not offered: %s" % (
        " ".join(p for p in PROTOCOLS_ON + PROTOCOLS_OFF
                 if by_id.get(p, {}).get("finding", "").startswith("offered")),
        " ".join(p for p in PROTOCOLS_ON + PROTOCOLS_OFF
                 if by_id.get(p, {}).get("finding", "").startswith("not offered"))))
    print("ciphers offered (%d): %s" % (len(ciphers), " ".join(ciphers)))
    print("vulnerabilities checked: %d of %d present" % (
        sum(1 for v in VULNERABILITIES if v in by_id), len(VULNERABILITIES)))
    if "scanTime" in by_id:
        print("scan time: %s s" % by_id["scanTime"]["finding"])
    for line in notes:
        print("scan note (WARN, not judged): %s" % line)
    for line in not_judged:
        print("not judged (certificate, not nestls): %s" % line)
    for p in problems:
        print("FAIL: %s" % p)
    print("%s: %d problem(s)" % ("FAIL" if problems else "PASS", len(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
