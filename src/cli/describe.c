/* Words for rules and layers, shared by `nestls check` and `nestls explain`
 * so both describe a policy the same way. */
#include <arpa/inet.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

const char *nl_cli_addr_str(const struct nl_addr_match *addr, char *buf, size_t len)
{
    char ip[INET6_ADDRSTRLEN];
    switch (addr->kind) {
    case NL_ADDR_HOST:
        snprintf(buf, len, "%s", addr->host ? addr->host : "?");
        break;
    case NL_ADDR_CIDR:
        if (inet_ntop(addr->family, addr->addr, ip, sizeof(ip)) == NULL) {
            snprintf(buf, len, "?");
            break;
        }
        if (addr->prefix == (addr->family == AF_INET ? 32 : 128))
            snprintf(buf, len, "%s", ip);
        else
            snprintf(buf, len, "%s/%d", ip, addr->prefix);
        break;
    default:
        snprintf(buf, len, "any");
        break;
    }
    return buf;
}

static void print_addresses(FILE *out, const struct nl_rule *rule)
{
    char buf[300];
    if (rule->n_addrs == 0) {
        fputs("any", out);
        return;
    }
    for (size_t i = 0; i < rule->n_addrs; i++)
        fprintf(out, "%s%s", i ? ", " : "", nl_cli_addr_str(&rule->addrs[i], buf, sizeof(buf)));
}

static void print_ports(FILE *out, const struct nl_rule *rule)
{
    if (rule->n_ports == 0) {
        fputs("any", out);
        return;
    }
    for (size_t i = 0; i < rule->n_ports; i++) {
        const struct nl_port_range *r = &rule->ports[i];
        fputs(i ? ", " : "", out);
        if (r->lo == r->hi)
            fprintf(out, "%u", (unsigned)r->lo);
        else
            fprintf(out, "%u-%u", (unsigned)r->lo, (unsigned)r->hi);
    }
}

void nl_cli_print_match(FILE *out, const struct nl_rule *rule, const char *indent)
{
    if (rule->role == NL_ROLE_ANY && rule->n_addrs == 0 && rule->n_ports == 0 &&
        rule->program == NULL) {
        fprintf(out, "%smatch:    any connection\n", indent);
        return;
    }
    fprintf(out, "%srole:     %s\n", indent,
            rule->role == NL_ROLE_ANY ? "any (client and server)" : nl_role_name(rule->role));
    fprintf(out, "%saddress:  ", indent);
    print_addresses(out, rule);
    fprintf(out, "\n%sport:     ", indent);
    print_ports(out, rule);
    fprintf(out, "\n%sprogram:  %s\n", indent, rule->program ? rule->program : "any");
}

void nl_cli_print_starttls(FILE *out, const struct nl_rule *rule, const char *indent)
{
    if (rule->starttls == NL_STARTTLS_NONE)
        return;
    fprintf(out, "%sstarttls: %s (its plaintext prelude on the wire before layer 1)\n", indent,
            nl_starttls_name(rule->starttls));
}

const char *nl_cli_layer_position(size_t index, size_t n)
{
    if (n == 1)
        return "only layer";
    if (index == 0)
        return "outermost";
    if (index == n - 1)
        return "innermost";
    return "middle";
}

/* The loader keeps paths as policy dir + what the file says ("dir/../x");
 * show the file a person would open. Paths that cannot be resolved are
 * shown as they are. */
const char *nl_cli_show_path(const char *path, struct nl_shown_path *buf)
{
    if (path == NULL || realpath(path, buf->path) == NULL)
        return path;
    return buf->path;
}

bool nl_cli_ca_is_system(const char *ca)
{
    return ca == NULL || strcmp(ca, "system") == 0;
}

static void print_versions(FILE *out, const struct nl_layer *layer, const char *in)
{
    const char *lo = nl_tls_version_name(layer->min_version);
    const char *hi = nl_tls_version_name(layer->max_version);
    if (layer->min_version == layer->max_version)
        fprintf(out, "%sversions:    %s only\n", in, lo);
    else
        fprintf(out, "%sversions:    %s to %s\n", in, lo, hi);
}

static void print_client_side(FILE *out, const struct nl_layer *layer,
                              const char *client_name, const char *in)
{
    if (client_name != NULL)
        fprintf(out, "%sserver name: %s\n", in, client_name);
    else if (layer->server_name != NULL)
        fprintf(out, "%sserver name: %s (SNI and verification)\n", in, layer->server_name);
    else
        fprintf(out, "%sserver name: (resolved name)\n", in);
    struct nl_shown_path a, b;
    fprintf(out, "%strusts:      %s\n", in,
            nl_cli_ca_is_system(layer->ca) ? "system" : nl_cli_show_path(layer->ca, &a));
    if (layer->verify)
        fprintf(out, "%sverify:      on\n", in);
    else
        fprintf(out, "%sverify:      off - INSECURE: any server certificate is accepted\n", in);
    if (layer->cert != NULL)
        fprintf(out, "%sclient cert: %s (key %s)\n", in, nl_cli_show_path(layer->cert, &a),
                nl_cli_show_path(layer->key ? layer->key : layer->cert, &b));
    if (layer->ocsp == NL_OCSP_REQUIRE)
        fprintf(out, "%socsp:        required: a good, current, signed staple for the "
                     "server's certificate\n", in);
    else if (layer->ocsp == NL_OCSP_PREFER)
        fprintf(out, "%socsp:        asked for: a staple saying revoked is refused\n", in);
}

/* certs: one line per certificate, with the names it is chosen for. */
static void print_sni_certs(FILE *out, const struct nl_layer *layer, const char *in)
{
    struct nl_shown_path a, b;
    for (size_t i = 0; i < layer->n_certs; i++) {
        const struct nl_sni_cert *e = &layer->certs[i];
        fprintf(out, "%scertificate: %s (key %s) for ", in, nl_cli_show_path(e->cert, &a),
                nl_cli_show_path(e->key, &b));
        if (e->n_names == 0)
            fprintf(out, "the names in the certificate");
        for (size_t k = 0; k < e->n_names; k++)
            fprintf(out, "%s%s", k ? ", " : "", e->names[k]);
        fprintf(out, "%s\n", i == 0 ? "; the default" : "");
    }
}

static void print_server_side(FILE *out, const struct nl_layer *layer, const char *in)
{
    struct nl_shown_path a, b;
    if (layer->n_certs > 0)
        print_sni_certs(out, layer, in);
    else if (layer->cert != NULL)
        fprintf(out, "%scertificate: %s (key %s)\n", in, nl_cli_show_path(layer->cert, &a),
                nl_cli_show_path(layer->key ? layer->key : layer->cert, &b));
    else
        fprintf(out, "%scertificate: none\n", in);
    if (layer->client_ca != NULL && layer->verify)
        fprintf(out, "%sclients:     mTLS required, trusted CA %s\n", in,
                nl_cli_show_path(layer->client_ca, &a));
    else
        fprintf(out, "%sclients:     no client certificate asked for\n", in);
    if (layer->ocsp_staple != NULL)
        fprintf(out, "%sstaples:     OCSP response %s\n", in, nl_cli_show_path(layer->ocsp_staple, &a));
    if (layer->sni_required)
        fprintf(out, "%ssni:         required: a client whose server name no certificate is "
                     "for is refused\n", in);
}

void nl_cli_print_layer(FILE *out, const struct nl_layer *layer, size_t index, size_t n,
                        enum nl_role role, const char *client_name, const char *indent)
{
    char in[64], sub[64];
    snprintf(in, sizeof(in), "%s  ", indent);
    snprintf(sub, sizeof(sub), "%s    ", indent);

    fprintf(out, "%slayer %zu (%s), line %d\n", indent, index + 1, nl_cli_layer_position(index, n),
            layer->pos.line);
    if (role == NL_ROLE_ANY) {
        fprintf(out, "%sas client:\n", in);
        print_client_side(out, layer, client_name, sub);
        fprintf(out, "%sas server:\n", in);
        print_server_side(out, layer, sub);
    } else if (role == NL_ROLE_CLIENT) {
        print_client_side(out, layer, client_name, in);
    } else {
        print_server_side(out, layer, in);
    }
    print_versions(out, layer, in);
    struct nl_shown_path crl;
    if (layer->crl != NULL)
        fprintf(out, "%srevoked:     the %s's certificate must not be in CRL %s\n", in,
                role == NL_ROLE_CLIENT ? "server" : role == NL_ROLE_SERVER ? "client" : "peer",
                nl_cli_show_path(layer->crl, &crl));
    if (layer->padding != 0)
        fprintf(out, "%spadding:     every record sent padded to a multiple of %u bytes\n", in,
                layer->padding);
    if (layer->ciphers != NULL)
        fprintf(out, "%sciphers:     %s\n", in, layer->ciphers);
    if (layer->ciphersuites != NULL)
        fprintf(out, "%ssuites:      %s\n", in, layer->ciphersuites);
    if (layer->groups != NULL)
        fprintf(out, "%sgroups:      %s\n", in, layer->groups);
    if (layer->n_alpn > 0) {
        fprintf(out, "%salpn:        ", in);
        for (size_t i = 0; i < layer->n_alpn; i++)
            fprintf(out, "%s%s", i ? ", " : "", layer->alpn[i]);
        fputc('\n', out);
    }
}
