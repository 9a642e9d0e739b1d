/* listen: the listening sockets of HOST:PORT, one per worker (SO_REUSEPORT, so
 * the kernel spreads connections over the workers). */
#ifndef CHATD_LISTEN_H
#define CHATD_LISTEN_H

#include <sys/socket.h>

struct config;

struct listen_addr {
    struct sockaddr_storage ss;
    socklen_t len;
    char text[80]; /* "127.0.0.1:8000" or "[::1]:8000" */
};

/* Resolves HOST and opens cfg->workers listening sockets on it into fds; with a
 * fixed PORT, first checks that no one else listens there (SO_REUSEPORT would
 * share it silently); with PORT=0 every socket joins the port the first got. Fills
 * a (its text for logs). Returns 0, or 2 after printing what went wrong, why and
 * what to do on stderr. */
int listen_open_all(const struct config *cfg, struct listen_addr *a, int *fds);

#endif
