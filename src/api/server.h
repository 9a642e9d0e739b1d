/* server: binds the listening sockets, runs WORKERS event-loop threads on
 * SO_REUSEPORT listeners, reloads the configuration on SIGHUP, and drains and
 * stops them on SIGINT/SIGTERM. */
#ifndef CHATD_SERVER_H
#define CHATD_SERVER_H

struct config;

/* Runs until a stop signal has been handled, on snapshot cfg (the caller keeps its
 * reference; the server takes its own). Returns the process exit status: 0 after
 * a clean stop, 2 when the address cannot be used (message on stderr), 1 on
 * another start-up failure. */
int server_run(struct config *cfg);

#endif
