/* Certificate facts as text, the same in log lines, `check` and `probe`. */
#include "policy/policy.h"

#include <stdio.h>
#include <time.h>

#include <openssl/x509.h>

const char *nl_tls_time_text(const ASN1_TIME *t, char *buf, size_t len)
{
    struct tm tm;
    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1 ||
        strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(buf, len, "?");
    return buf;
}

const char *nl_tls_name_text(const X509_NAME *name, char *buf, size_t len)
{
    buf[0] = '\0';
    BIO *mem = BIO_new(BIO_s_mem());
    if (mem == NULL)
        return buf;
    /* RFC 2253, most specific first ("CN=localhost,O=..."); bytes beyond
     * ASCII are escaped, so the text is safe on a terminal and in JSON. */
    if (X509_NAME_print_ex(mem, name, 0, XN_FLAG_RFC2253) >= 0) {
        int n = BIO_read(mem, buf, (int)len - 1);
        buf[n > 0 ? n : 0] = '\0';
    }
    BIO_free(mem);
    return buf;
}

const char *nl_tls_subject_text(X509 *cert, char *buf, size_t len)
{
    return nl_tls_name_text(X509_get_subject_name(cert), buf, len);
}
