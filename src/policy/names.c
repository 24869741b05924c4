/* Names for the policy's enumerations, as the policy file spells them.
 * (nl_log_level_name lives in common/log.c, which needs it first.) */
#include "policy/policy.h"

const char *nl_role_name(enum nl_role role)
{
    switch (role) {
    case NL_ROLE_ANY:
        return "any";
    case NL_ROLE_CLIENT:
        return "client";
    case NL_ROLE_SERVER:
        return "server";
    }
    return "?";
}

const char *nl_action_name(enum nl_action action)
{
    switch (action) {
    case NL_ACTION_WRAP:
        return "wrap";
    case NL_ACTION_PASSTHROUGH:
        return "passthrough";
    case NL_ACTION_DENY:
        return "deny";
    }
    return "?";
}

const char *nl_starttls_name(enum nl_starttls_proto starttls)
{
    switch (starttls) {
    case NL_STARTTLS_NONE:
        return NULL;
    case NL_STARTTLS_SMTP:
        return "smtp";
    case NL_STARTTLS_IMAP:
        return "imap";
    case NL_STARTTLS_POP3:
        return "pop3";
    case NL_STARTTLS_FTP:
        return "ftp";
    case NL_STARTTLS_POSTGRES:
        return "postgres";
    }
    return "?";
}

const char *nl_tls_version_name(int version)
{
    switch (version) {
    case TLS1_2_VERSION:
        return "TLSv1.2";
    case TLS1_3_VERSION:
        return "TLSv1.3";
    }
    return "?";
}
