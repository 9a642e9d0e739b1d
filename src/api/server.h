/* server: binds the listening sockets, runs WORKERS event-loop threads on
 * SO_REUSEPORT listeners, and drains and stops them on SIGINT/SIGTERM. */
#ifndef CHATD_SERVER_H
#define CHATD_SERVER_H

struct config;

/* Runs until a stop signal has been handled. Returns the process exit status:
 * 0 after a clean stop, 2 when the address cannot be used (message on stderr),
 * 1 on another start-up failure. */
int server_run(const struct config *cfg);

#endif
