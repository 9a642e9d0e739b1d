/* error: see error.h. */
#include "models/error.h"

#include <stdio.h>
#include <string.h>

#include "core/jsonw.h"

struct entry {
    const char *code;
    int status;
    enum log_level level;
    const char *what, *why, *todo;
};

static const struct entry catalogue[ERR_COUNT] = {
    [ERR_VALIDATION] = { "validation_error", 400, LOG_WARNING, "The request body is not valid",
                         "chatd needs a JSON object with a non-empty \"message\" string",
                         "Fix the request body and send it again" },
    [ERR_BAD_REQUEST] = { "bad_request", 400, LOG_WARNING, "The request is not valid HTTP/1.1",
                          "chatd could not parse its request line or headers",
                          "Send a well-formed HTTP/1.1 request, such as the curl example in the "
                          "README" },
    [ERR_UNAUTHORIZED] = { "unauthorized", 401, LOG_WARNING,
                           "The request has no valid client API key",
                           "This server requires \"Authorization: Bearer <key>\" with one of its "
                           "CLIENT_API_KEYS",
                           "Send the header with a key from the server's operator" },
    [ERR_NOT_FOUND] = { "not_found", 404, LOG_INFO, "There is nothing at this path",
                        "chatd serves POST /chat, POST /v1/chat/completions, GET /v1/models, GET "
                        "/, "
                        "GET /health, GET /ready and GET /metrics",
                        "Check the URL and send the request to one of those paths" },
    [ERR_METHOD_NOT_ALLOWED] = { "method_not_allowed", 405, LOG_INFO,
                                 "This path does not accept this method",
                                 "Each path accepts only the methods listed in the Allow header",
                                 "Send the request again with an allowed method" },
    [ERR_REQUEST_TIMEOUT] = { "request_timeout", 408, LOG_WARNING,
                              "The request did not arrive in time",
                              "chatd waits CLIENT_TIMEOUT_SECONDS for a whole request so that slow "
                              "clients cannot hold "
                              "connections",
                              "Send the whole request at once, or raise CLIENT_TIMEOUT_SECONDS on "
                              "the server" },
    [ERR_PAYLOAD_TOO_LARGE] = { "payload_too_large", 413, LOG_WARNING,
                                "The request body is larger than this server accepts",
                                "chatd accepts bodies of at most MAX_REQUEST_BYTES (1 MiB unless "
                                "the operator changed it)",
                                "Send a shorter conversation" },
    [ERR_URI_TOO_LONG] = { "uri_too_long", 414, LOG_WARNING,
                           "The request URL is longer than 8192 bytes",
                           "chatd limits URLs so that one request cannot take much memory",
                           "Send the request to /chat without a long query string" },
    [ERR_UNSUPPORTED_MEDIA_TYPE] = { "unsupported_media_type", 415, LOG_WARNING,
                                     "The request body is not declared as JSON",
                                     "POST /chat needs the header \"Content-Type: "
                                     "application/json\"",
                                     "Add that header and send the request again" },
    [ERR_HEADERS_TOO_LARGE] = { "headers_too_large", 431, LOG_WARNING,
                                "The request headers are larger than 16 KiB",
                                "chatd limits headers so that one request cannot take much memory",
                                "Send fewer or shorter headers" },
    [ERR_EXPECTATION_FAILED] = { "expectation_failed", 417, LOG_WARNING,
                                 "The request's Expect header cannot be met",
                                 "chatd knows only the expectation \"100-continue\"",
                                 "Send the request without that Expect header" },
    [ERR_NOT_IMPLEMENTED] = { "not_implemented", 501, LOG_WARNING,
                              "The request uses an HTTP feature chatd does not implement",
                              "chatd decodes no transfer coding but chunked and is not a proxy "
                              "(no CONNECT)",
                              "Send the body plain or chunked, to one of the paths in the README" },
    [ERR_VERSION_UNSUPPORTED] = { "http_version_not_supported", 505, LOG_WARNING,
                                  "The request's HTTP version is not supported",
                                  "chatd speaks HTTP/1.1 and HTTP/1.0 on this port",
                                  "Send the request as HTTP/1.1" },
    [ERR_OVERLOADED] = { "overloaded", 503, LOG_WARNING,
                         "The server is at its limit of open streams",
                         "MAX_CONCURRENT_STREAMS streams are already open and new ones would slow "
                         "them all",
                         "Wait for the number of seconds in Retry-After and send the request "
                         "again" },
    [ERR_SHUTTING_DOWN] = { "shutting_down", 503, LOG_INFO, "The server is shutting down",
                            "It received a stop signal and lets open streams finish without taking "
                            "new ones",
                            "Send the request again in a moment; another instance or the restarted "
                            "one will take it" },
    [ERR_TIMEOUT] = { "timeout", 504, LOG_ERROR, "The model provider sent no answer in time",
                      "No token arrived within TIMEOUT_SECONDS of the request",
                      "Send the request again later; if it keeps happening, check the provider's "
                      "status or "
                      "raise TIMEOUT_SECONDS" },
    [ERR_FORBIDDEN] = { "forbidden", 403, LOG_WARNING, "This client key may not use this model",
                        "The key's entry in CHATD_CONFIG lists the models it may use",
                        "Ask for one of the models GET /v1/models lists, or ask the server's "
                        "operator to allow this one" },
    [ERR_MODEL_NOT_FOUND] = { "model_not_found", 404, LOG_WARNING,
                              "The requested model does not exist on this server",
                              "chatd routes only the models of its configuration",
                              "Use one of the models GET /v1/models lists" },
    [ERR_RATE_LIMITED] = { "rate_limited", 429, LOG_WARNING, "This client key is over its limit",
                           "The key's requests per minute, tokens per minute or concurrent "
                           "streams are used up for now",
                           "Wait for the number of seconds in Retry-After and send the request "
                           "again" },
    [ERR_LIMITS_UNAVAILABLE] = { "limits_unavailable", 503, LOG_ERROR,
                                 "The server cannot check this key's limits",
                                 "Its limits store (Redis) did not answer within 50 ms and "
                                 "RATE_LIMIT_FAIL_OPEN is false",
                                 "Send the request again in a moment; if it keeps happening, tell "
                                 "the server's operator to check Redis" },
    [ERR_INTERNAL] = { "internal_error", 500, LOG_ERROR, "The server failed to handle the request",
                       "It ran out of a resource such as memory or file descriptors",
                       "Send the request again; if it keeps happening, tell the server's "
                       "operator" },
    [ERR_UPSTREAM_UNREACHABLE] = { "upstream_unreachable", 0, LOG_ERROR,
                                   "The model provider could not be reached",
                                   "The connection to OPENAI_BASE_URL was refused, reset, or its "
                                   "host name did not resolve",
                                   "Retry in a moment; if it keeps failing, the server's operator "
                                   "should check "
                                   "OPENAI_BASE_URL and that the provider is running" },
    [ERR_UPSTREAM_TLS] = { "upstream_unreachable", 0, LOG_ERROR,
                           "The secure connection to the model provider failed",
                           "Its TLS certificate could not be verified or the TLS handshake failed",
                           "The server's operator should check OPENAI_BASE_URL (https and host "
                           "name) and the "
                           "system's CA certificates" },
    [ERR_UPSTREAM_AUTH_FAILED] = { "upstream_auth_failed", 0, LOG_ERROR,
                                   "The model provider rejected chatd's credentials",
                                   "OPENAI_API_KEY is missing, wrong, revoked, or lacks access to "
                                   "this model",
                                   "The server's operator should set a valid OPENAI_API_KEY and "
                                   "restart chatd" },
    [ERR_UPSTREAM_RATE_LIMITED] = { "upstream_rate_limited", 0, LOG_WARNING,
                                    "The model provider refused the request (HTTP 429)",
                                    "The provider account is over its rate or quota limit",
                                    "Wait a few seconds and retry, or check your provider's plan" },
    [ERR_UPSTREAM_BAD_REQUEST] = { "upstream_bad_request", 0, LOG_ERROR,
                                   "The model provider rejected the request as invalid",
                                   "It did not accept the model, the parameters or the message",
                                   "Try another model or a shorter max_tokens; the server's "
                                   "operator can find the "
                                   "provider's reason in the logs" },
    [ERR_UPSTREAM_NOT_FOUND] = { "upstream_bad_request", 0, LOG_ERROR,
                                 "The model provider answered 404 Not Found",
                                 "OPENAI_BASE_URL does not point at an OpenAI-compatible API, or "
                                 "the model does not "
                                 "exist there",
                                 "The server's operator should check OPENAI_BASE_URL (it usually "
                                 "ends in /v1) and the "
                                 "model names in ALLOWED_MODELS" },
    [ERR_UPSTREAM_ERROR] = { "upstream_error", 0, LOG_ERROR, "The model provider failed to answer",
                             "It returned a server error",
                             "Retry in a moment; if it keeps failing, check the provider's status "
                             "page" },
    [ERR_UPSTREAM_PROTOCOL_ERROR] = { "upstream_protocol_error", 0, LOG_ERROR,
                                      "The model provider's answer could not be read",
                                      "It was not an OpenAI-compatible event stream (Server-Sent "
                                      "Events with JSON chunks)",
                                      "The server's operator should check that OPENAI_BASE_URL "
                                      "points at an OpenAI-compatible "
                                      "API with streaming support" },
    [ERR_UPSTREAM_INTERRUPTED] = { "upstream_interrupted", 0, LOG_ERROR,
                                   "The model provider's answer stopped before it was complete",
                                   "The connection closed before the stream's end marker",
                                   "Send the request again; the part already received is "
                                   "incomplete" },
    [ERR_UPSTREAM_TIMEOUT] = { "upstream_timeout", 0, LOG_ERROR,
                               "The model provider stopped sending tokens",
                               "Nothing arrived for TIMEOUT_SECONDS in the middle of the answer",
                               "Send the request again; if it keeps happening, check the "
                               "provider's status or raise "
                               "TIMEOUT_SECONDS" },
    [ERR_STREAM_SHUTTING_DOWN] = { "shutting_down", 0, LOG_WARNING,
                                   "The server stopped this stream because it is shutting down",
                                   "It received a stop signal and the DRAIN_SECONDS allowed for "
                                   "open streams ran out",
                                   "Send the request again; another instance or the restarted one "
                                   "will answer it" },
};

const char *error_code_name(enum error_code code)
{
    return catalogue[code].code;
}

int error_status(enum error_code code)
{
    return catalogue[code].status;
}

enum log_level error_log_level(enum error_code code)
{
    return catalogue[code].level;
}

const char *error_recovery(enum error_code code)
{
    return catalogue[code].todo;
}

size_t error_detail(char *out, size_t outlen, enum error_code code, const char *what,
                    const char *why, const char *todo)
{
    const struct entry *e = &catalogue[code];
    int n = snprintf(out, outlen, "%s. %s. %s.", what ? what : e->what, why ? why : e->why,
                     todo ? todo : e->todo);
    if (n < 0)
        return 0;
    return (size_t)n < outlen ? (size_t)n : outlen - 1;
}

size_t error_json_body(char *out, size_t outlen, enum error_code code, const char *detail,
                       const char *cid)
{
    size_t dlen = strlen(detail), clen = strlen(cid);
    const char *name = catalogue[code].code;
    size_t need = 64 + strlen(name) + JSONW_ESCAPE_BOUND(dlen) + JSONW_ESCAPE_BOUND(clen);
    if (outlen < need)
        return 0;
    char *p = out;
    p += sprintf(p, "{\"error\":\"%s\",\"detail\":\"", name);
    p += jsonw_escape(p, detail, dlen);
    p += sprintf(p, "\",\"correlation_id\":\"");
    p += jsonw_escape(p, cid, clen);
    p += sprintf(p, "\"}");
    return (size_t)(p - out);
}

const char *error_openai_type(enum error_code code, int status)
{
    if (code >= ERR_UPSTREAM_UNREACHABLE && code <= ERR_UPSTREAM_TIMEOUT && status != 429 &&
        status != 400)
        return "upstream_error";
    switch (status) {
    case 401: return "authentication_error";
    case 403: return "permission_error";
    case 429: return "rate_limit_error";
    default: return status >= 500 ? "server_error" : "invalid_request_error";
    }
}

size_t error_openai_body(char *out, size_t outlen, enum error_code code, int status,
                         const char *detail, const char *param)
{
    size_t dlen = strlen(detail), plen = param ? strlen(param) : 0;
    const char *name = catalogue[code].code, *type = error_openai_type(code, status);
    size_t need =
        96 + strlen(name) + strlen(type) + JSONW_ESCAPE_BOUND(dlen) + JSONW_ESCAPE_BOUND(plen);
    if (outlen < need)
        return 0;
    char *p = out;
    p += sprintf(p, "{\"error\":{\"message\":\"");
    p += jsonw_escape(p, detail, dlen);
    p += sprintf(p, "\",\"type\":\"%s\",\"param\":", type);
    if (param != NULL) {
        *p++ = '"';
        p += jsonw_escape(p, param, plen);
        *p++ = '"';
    } else {
        p += sprintf(p, "null");
    }
    p += sprintf(p, ",\"code\":\"%s\"}}", name);
    return (size_t)(p - out);
}
