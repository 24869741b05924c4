/* nlbench: command line. See nlb.h for the roles and the protocol.
 *
 *   nlbench serve    [--listen N] [TLS server options]
 *   nlbench bulk     --port P --bytes B [--conns N] [TLS client options]
 *   nlbench pingpong --port P --rounds R --seconds S [--conns N] [...]
 *   nlbench connrate (--port P... | --ports-file F) --seconds S [--resume] [...]
 *   nlbench hold     --port P [...]
 *
 * TLS server options: --tls --cert FILE --key FILE
 * TLS client options: --tls --ca FILE [--name NAME] (SNI and the name checked)
 * Results are printed as "key value" lines. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nlb.h"

static void usage(void)
{
    fprintf(stderr, "usage: nlbench serve|bulk|pingpong|connrate|hold [options]"
                    " (see tests/bench/main.c)\n");
    exit(2);
}

static void add_port(struct nlb_opts *o, const char *text)
{
    long p = strtol(text, NULL, 10);
    if (p < 1 || p > 65535)
        nlb_die("bad port '%s'", text);
    if (o->n_ports == NLB_MAX_PORTS)
        nlb_die("at most %d ports", NLB_MAX_PORTS);
    o->ports[o->n_ports++] = (int)p;
}

static void read_ports(struct nlb_opts *o, const char *file)
{
    FILE *f = fopen(file, "r");
    char line[32];
    if (f == NULL)
        nlb_die("cannot read %s", file);
    while (fgets(line, sizeof(line), f) != NULL)
        if (line[0] != '\n')
            add_port(o, line);
    fclose(f);
}

int main(int argc, char **argv)
{
    static struct nlb_opts o = {.host = "127.0.0.1", .conns = 1, .seconds = 5, .rounds = 10000};
    if (argc < 2)
        usage();
    const char *cmd = argv[1];
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool has_value = true;
        if (strcmp(a, "--tls") == 0)
            o.tls = true, has_value = false;
        else if (strcmp(a, "--resume") == 0)
            o.resume = true, has_value = false;
        else if (v == NULL)
            usage();
        else if (strcmp(a, "--host") == 0)
            o.host = v;
        else if (strcmp(a, "--port") == 0)
            add_port(&o, v);
        else if (strcmp(a, "--ports-file") == 0)
            read_ports(&o, v);
        else if (strcmp(a, "--ca") == 0)
            o.ca = v;
        else if (strcmp(a, "--cert") == 0)
            o.cert = v;
        else if (strcmp(a, "--key") == 0)
            o.key = v;
        else if (strcmp(a, "--name") == 0)
            o.name = v;
        else if (strcmp(a, "--conns") == 0)
            o.conns = atoi(v);
        else if (strcmp(a, "--bytes") == 0)
            o.bytes = strtoull(v, NULL, 10);
        else if (strcmp(a, "--rounds") == 0)
            o.rounds = atol(v);
        else if (strcmp(a, "--seconds") == 0)
            o.seconds = atof(v);
        else if (strcmp(a, "--listen") == 0)
            o.listen_n = atoi(v);
        else
            usage();
        i += has_value;
    }
    if (strcmp(cmd, "serve") == 0)
        return nlb_serve(&o);
    if (o.n_ports == 0)
        nlb_die("%s needs --port or --ports-file", cmd);
    if (o.conns < 1 || o.rounds < 1)
        nlb_die("--conns and --rounds must be at least 1");
    if (strcmp(cmd, "bulk") == 0)
        return o.bytes > 0 ? nlb_bulk(&o) : (nlb_die("bulk needs --bytes"), 1);
    if (strcmp(cmd, "pingpong") == 0)
        return nlb_pingpong(&o);
    if (strcmp(cmd, "connrate") == 0)
        return nlb_connrate(&o);
    if (strcmp(cmd, "hold") == 0)
        return nlb_hold(&o);
    usage();
}
