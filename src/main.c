/* chatd: a streaming chat API server. Reads its configuration (environment,
 * then .env), then runs the server until SIGINT or SIGTERM. */
#include <curl/curl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "api/server.h"
#include "core/config.h"
#include "core/log.h"
#include "models/chat_request.h"

#define CHATD_VERSION "1.0.0"

static int usage(void)
{
    printf("chatd %s: a streaming chat API server.\n\n"
           "Usage: chatd            start the server (settings from the environment and .env)\n"
           "       chatd hash-key   read a client key on stdin, print its SHA-256 (for "
           "CHATD_CONFIG)\n"
           "       chatd --version  print the version\n\n"
           "Settings (environment, then .env; an empty value means the default):\n",
           CHATD_VERSION);
    for (size_t i = 0; i < config_n_vars; i++) {
        const struct config_var *v = &config_vars[i];
        printf("  %-26s default: %s\n      %s\n", v->name, v->def[0] ? v->def : v->def_doc,
               v->help);
    }
    return 0;
}

/* chatd hash-key: the SHA-256 of the key on stdin (one trailing newline is not
 * part of it), in lower-case hex, for the "sha256" of a key in CHATD_CONFIG. */
static int hash_key(void)
{
    static char key[65537];
    size_t len = fread(key, 1, sizeof key, stdin);
    if (len > 0 && key[len - 1] == '\n')
        len--;
    if (len == 0 || len > 65536) {
        fprintf(stderr,
                "chatd hash-key: %s. It reads one client key on stdin and prints its "
                "SHA-256. Pipe the key in, for example: printf %%s \"$KEY\" | chatd hash-key.\n",
                len == 0 ? "no key on stdin" : "the input is longer than 65536 bytes");
        return 2;
    }
    unsigned char h[32];
    if (config_sha256(key, len, h) != 0) {
        fprintf(stderr, "chatd hash-key: SHA-256 failed. libcrypto could not compute it. "
                        "Reinstall libssl3.\n");
        return 1;
    }
    for (size_t i = 0; i < sizeof h; i++)
        printf("%02x", h[i]);
    printf("\n");
    return 0;
}

/* SIGHUP (reload) must never kill the process, even before the server waits for
 * it: blocked here, before anything else, it stays pending until the main
 * thread's signal wait takes it. Threads inherit the mask. Run as a constructor
 * too, so that it is blocked before the sanitizers' and libraries' start-up. */
__attribute__((constructor)) static void block_sighup(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
}

int main(int argc, char **argv)
{
    block_sighup();
    if (argc > 1) {
        if (strcmp(argv[1], "--version") == 0) {
            printf("chatd %s (%s)\n", CHATD_VERSION, curl_version());
            return 0;
        }
        if (strcmp(argv[1], "hash-key") == 0 && argc == 2)
            return hash_key();
        if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
            return usage();
        fprintf(stderr,
                "chatd: unknown argument \"%s\". chatd takes its settings from the "
                "environment and .env, not from arguments. Run chatd --help.\n",
                argv[1]);
        return 2;
    }
    chat_json_setup();        /* before any jansson call */
    signal(SIGPIPE, SIG_IGN); /* a closed client socket is an error return, not a signal */
    struct config *cfg;
    char err[1024];
    if (config_load_process(".env", &cfg, err, sizeof err) != 0) {
        fprintf(stderr, "chatd: configuration error: %s\n", err);
        return 2;
    }
    log_setup(cfg->log_level, STDOUT_FILENO);
    log_add_secret(cfg->api_key);
    for (size_t i = 0; i < cfg->n_providers; i++)
        log_add_secret(cfg->providers[i].api_key);
    for (size_t i = 0; i < cfg->client_keys.n; i++)
        log_add_secret(cfg->client_keys.items[i]);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "chatd: libcurl failed to start. Its TLS library could not be set up. "
                        "Reinstall libcurl4 and ca-certificates.\n");
        config_unref(cfg);
        return 1;
    }
    int rc = server_run(cfg);
    curl_global_cleanup();
    config_unref(cfg);
    log_teardown();
    return rc;
}
