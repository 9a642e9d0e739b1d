/* listen: see listen.h. */
#include "api/listen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/config.h"

#define LISTEN_BACKLOG 4096

static int resolve(const struct config *cfg, struct listen_addr *a)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC,
                              .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_PASSIVE | AI_ADDRCONFIG };
    struct addrinfo *res = NULL;
    char port[8];
    snprintf(port, sizeof port, "%d", cfg->port);
    int rc = getaddrinfo(cfg->host, port, &hints, &res);
    if (rc != 0) {
        fprintf(stderr,
                "chatd: HOST=\"%s\" cannot be used: %s. chatd must resolve HOST to a local "
                "address to listen on. Set HOST to an IP address such as 127.0.0.1 or 0.0.0.0.\n",
                cfg->host, gai_strerror(rc));
        return -1;
    }
    memcpy(&a->ss, res->ai_addr, res->ai_addrlen);
    a->len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

static int addr_port(const struct listen_addr *a)
{
    return ntohs(a->ss.ss_family == AF_INET6 ? ((const struct sockaddr_in6 *)&a->ss)->sin6_port
                                             : ((const struct sockaddr_in *)&a->ss)->sin_port);
}

static void set_port(struct listen_addr *a, int port)
{
    if (a->ss.ss_family == AF_INET6)
        ((struct sockaddr_in6 *)&a->ss)->sin6_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in *)&a->ss)->sin_port = htons((uint16_t)port);
}

static void format_addr(struct listen_addr *a)
{
    char host[INET6_ADDRSTRLEN] = "?";
    if (a->ss.ss_family == AF_INET6) {
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&a->ss)->sin6_addr, host, sizeof host);
        snprintf(a->text, sizeof a->text, "[%s]:%d", host, addr_port(a));
    } else {
        inet_ntop(AF_INET, &((struct sockaddr_in *)&a->ss)->sin_addr, host, sizeof host);
        snprintf(a->text, sizeof a->text, "%s:%d", host, addr_port(a));
    }
}

static void bind_failed(const struct config *cfg, int err)
{
    if (err == EADDRINUSE)
        fprintf(stderr,
                "chatd: port %d on %s is already in use. Another process (perhaps another "
                "chatd) is listening there. Stop that process, or set PORT to a free port.\n",
                cfg->port, cfg->host);
    else if (err == EACCES)
        fprintf(stderr,
                "chatd: not allowed to listen on port %d. Ports below 1024 need extra "
                "privileges. Set PORT to 1024 or above, such as 8000.\n",
                cfg->port);
    else
        fprintf(stderr,
                "chatd: cannot listen on %s port %d: %s. HOST must be an address of this "
                "machine. Set HOST to 127.0.0.1, 0.0.0.0 or one of this machine's addresses.\n",
                cfg->host, cfg->port, strerror(err));
}

/* With SO_REUSEPORT a second chatd could silently share our port; a probe
 * bound without it fails if anyone is listening there. */
static int probe_port(const struct listen_addr *a)
{
    int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return errno;
    int one = 1, err = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (const struct sockaddr *)&a->ss, a->len) != 0)
        err = errno;
    close(fd);
    return err;
}

static int open_listener(struct listen_addr *a)
{
    int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (bind(fd, (const struct sockaddr *)&a->ss, a->len) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
        int err = errno;
        close(fd);
        return -err;
    }
    if (addr_port(a) == 0) { /* PORT=0: the other workers must join the same port */
        struct sockaddr_storage bound;
        socklen_t len = sizeof bound;
        getsockname(fd, (struct sockaddr *)&bound, &len);
        set_port(a, ntohs(((struct sockaddr_in *)&bound)->sin_port));
    }
    return fd;
}

int listen_open_all(const struct config *cfg, struct listen_addr *a, int *fds)
{
    if (resolve(cfg, a) != 0)
        return 2;
    int err = cfg->port ? probe_port(a) : 0;
    for (int i = 0; i < cfg->workers && err == 0; i++) {
        fds[i] = open_listener(a);
        if (fds[i] < 0)
            err = -fds[i];
    }
    if (err != 0) {
        bind_failed(cfg, err);
        return 2;
    }
    format_addr(a);
    return 0;
}
