/* SPDX-License-Identifier: Apache-2.0 */
#include "agent/health.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/endpoint.h"
#include "common/str.h"

/* Node-local causes as builders and tools print them (Go says "no space left on device",
 * C tools "No space left on device": matched without case). */
static const struct {
    const char *needle;
    const char *cause;
} s_node_causes[] = {
    {"no space left on device", "No space left on device"},
    {"disk quota exceeded", "Disk quota exceeded"},
    {"read-only file system", "Read-only file system"},
    {"layer not known", "builder storage is broken (layer not known)"},
    {"cannot set up namespace", "the sandbox could not be set up (user namespace)"},
    {"slirp4netns failed", "the sandbox's network could not be set up (slirp4netns)"},
};

/* One line's node-local cause, or NULL. */
static const char *s_node_cause(const char *line)
{
    for (size_t i = 0; i < sizeof s_node_causes / sizeof s_node_causes[0]; i++)
        if (strcasestr(line, s_node_causes[i].needle))
            return s_node_causes[i].cause;
    return NULL;
}

/* A Dockerfile's failure as buildah says it: 'building at STEP "RUN false": ... exit
 * status 1', or a parse error. 1 with cause set, else 0. */
static int s_build_cause(char *cause, size_t len, const char *line)
{
    const char *p, *q, *st;
    int n;

    if ((p = strstr(line, "building at STEP \"")) != NULL) {
        p += strlen("building at STEP \"");
        /* the step may hold quotes itself: it ends at '": ' (buildah's next words) */
        if (!(q = strstr(p, "\": ")))
            q = strrchr(p, '"');
        n = q ? (int)(q - p) : (int)strlen(p);
        if (n > 120)
            n = 120;
        st = strstr(q ? q : p, "exit status ");
        if (st)
            farm_str_fmt_cut(cause, len, "step \"%.*s\" failed (exit status %d)", n, p,
                             atoi(st + strlen("exit status ")));
        else
            farm_str_fmt_cut(cause, len, "step \"%.*s\" failed", n, p);
        return 1;
    }
    if ((p = strcasestr(line, "dockerfile parse error")) != NULL ||
        (p = strcasestr(line, "parse error")) != NULL ||
        (p = strcasestr(line, "unknown instruction")) != NULL) {
        farm_str_fmt_cut(cause, len, "Dockerfile syntax error: %.160s", p);
        return 1;
    }
    return 0;
}

farm_fault_t farm_health_classify(char *cause, size_t len, const char *error,
                                  const char *const *lines, size_t n)
{
    const char *node = error ? s_node_cause(error) : NULL;

    cause[0] = '\0';
    for (size_t i = 0; !node && i < n; i++)
        node = lines[i] ? s_node_cause(lines[i]) : NULL;
    if (node) {
        farm_str_fmt_cut(cause, len, "%s", node);
        return FARM_FAULT_NODE;
    }
    return farm_health_classify_build(cause, len, error, lines, n);
}

farm_fault_t farm_health_classify_build(char *cause, size_t len, const char *error,
                                        const char *const *lines, size_t n)
{
    int build = 0;

    cause[0] = '\0';
    /* the last step that failed is the one that ended the build */
    for (size_t i = n; !build && i > 0; i--)
        build = lines[i - 1] && s_build_cause(cause, len, lines[i - 1]);
    if (!build && error)
        build = s_build_cause(cause, len, error);
    return build ? FARM_FAULT_BUILD : FARM_FAULT_UNKNOWN;
}

void farm_health_error(char *out, size_t len, const char *cause, const char *node,
                       const char *error)
{
    if (cause && cause[0])
        farm_str_fmt_cut(out, len, "%s on node %s (%s)", cause, node, error);
    else
        farm_str_fmt_cut(out, len, "%s", error);
}

int farm_health_verdict(char *cause, size_t len, const farm_check_report_t *r, int sandbox)
{
    cause[0] = '\0';
    for (size_t i = 0; i < r->n; i++) {
        const farm_check_item_t *it = &r->items[i];
        if (it->level != FARM_CHECK_FAIL)
            continue;
        if ((sandbox && it->essential) || strncmp(it->what, "disk", 4) == 0 ||
            strcmp(it->what, "builder") == 0) {
            farm_str_fmt_cut(cause, len, "%s: %s%s%s", it->what, it->detail,
                             it->fix[0] ? "; fix: " : "", it->fix);
            return 1;
        }
    }
    return 0;
}

int farm_health_check(char *cause, size_t len, const farm_agent_opts_t *opts)
{
    farm_check_report_t *r = calloc(1, sizeof *r);
    farm_check_host_t host;
    int sick;

    if (!r) {
        farm_str_fmt_cut(cause, len, "out of memory running the health checks");
        return 1;
    }
    farm_check_host_default(&host);
    farm_check_run(r, opts, NULL, NULL, &host, FARM_CHECK_PROBE);
    sick = farm_health_verdict(cause, len, r,
                               !opts->builder.isolation || strcmp(opts->builder.isolation, "oci") == 0);
    free(r);
    return sick;
}

/* curl's and the kernel's words for a registry this host cannot reach at all (not an
 * answer it did not like). */
static const char *const s_unreachable[] = {
    "Failed to connect", "Couldn't connect", "Could not resolve", "Connection refused",
    "Connection timed out", "Timeout was reached", "No route to host", "Network is unreachable",
};

int farm_health_registry(const char *error, const char *registry)
{
    char prefix[300];
    const char *at;

    if (!error || !registry || !registry[0] ||
        farm_str_fmt_cut(prefix, sizeof prefix, "registry %s: ", registry))
        return 0;
    if (!(at = strstr(error, prefix)))
        return 0;
    for (size_t i = 0; i < sizeof s_unreachable / sizeof s_unreachable[0]; i++)
        if (strstr(at, s_unreachable[i]))
            return 1;
    return 0;
}

int farm_health_probe(char *cause, size_t len, const char *registry, int timeout_ms)
{
    char ep_text[300];
    farm_endpoint_t ep;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    char port[8];
    int rc, err = 0;
    const char *close_bracket = strrchr(registry, ']'), *colon = strrchr(registry, ':');

    cause[0] = '\0';
    /* host[:port] as in image references; no port: HTTPS's */
    if (farm_str_fmt_cut(ep_text, sizeof ep_text, "tcp://%s%s", registry,
                         colon && (!close_bracket || colon > close_bracket) ? "" : ":443") ||
        farm_endpoint_parse(&ep, ep_text) < 0) {
        farm_str_fmt_cut(cause, len, "registry %s: not a host[:port]", registry);
        return 1;
    }
    snprintf(port, sizeof port, "%d", ep.port);
    if ((rc = getaddrinfo(ep.host, port, &hints, &res)) != 0) {
        farm_str_fmt_cut(cause, len, "registry %s unreachable from this node: %s", registry,
                         gai_strerror(rc));
        return 1;
    }
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        socklen_t sl = sizeof err;

        if (fd < 0) {
            err = errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            err = 0;
        } else if (errno != EINPROGRESS) {
            err = errno;
        } else if (poll(&p, 1, timeout_ms) <= 0) {
            err = ETIMEDOUT;
        } else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl) < 0) {
            err = errno;
        }
        close(fd);
        if (!err)
            break;
    }
    freeaddrinfo(res);
    if (!err)
        return 0;
    farm_str_fmt_cut(cause, len, "registry %s unreachable from this node: connect: %s", registry,
                     strerror(err));
    return 1;
}
