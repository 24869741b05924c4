#!/usr/bin/env python3
"""ocsp_no_next.py CERT CA CA_KEY DAYS OUT: a DER OCSP response saying
"good" for CERT, signed by the CA itself, whose this update is DAYS days
ago and which has no next update (openssl ocsp cannot backdate one).
A response without a next update says nothing of when it goes stale;
the client decides how old is too old."""
import datetime
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp


def main():
    cert_path, ca_path, key_path, days, out = sys.argv[1:6]
    cert = x509.load_pem_x509_certificate(open(cert_path, "rb").read())
    ca = x509.load_pem_x509_certificate(open(ca_path, "rb").read())
    key = serialization.load_pem_private_key(open(key_path, "rb").read(), password=None)
    then = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=float(days))
    builder = ocsp.OCSPResponseBuilder().add_response(
        cert=cert, issuer=ca, algorithm=hashes.SHA1(), cert_status=ocsp.OCSPCertStatus.GOOD,
        this_update=then.replace(tzinfo=None), next_update=None, revocation_time=None,
        revocation_reason=None).responder_id(ocsp.OCSPResponderEncoding.HASH, ca).certificates([ca])
    response = builder.sign(key, hashes.SHA256())
    with open(out, "wb") as f:
        f.write(response.public_bytes(serialization.Encoding.DER))
    return 0


if __name__ == "__main__":
    sys.exit(main())
