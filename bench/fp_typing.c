/*
 * fp_typing.c — fakeprov --typing, the provider of `make demo`: varied canned
 * answers, cut into word-sized tokens sent 20-60 ms apart, as a model types.
 * The answers take turns, so a newcomer's conversation looks alive; they are
 * plain text with some Markdown (a list, a code block) like a real model's.
 */
#include <stdlib.h>
#include <string.h>

#include "fp.h"

static const char *const answers[] = {
    "Hello! I am the demo provider behind chatd's web page. Nothing you type leaves this "
    "machine: chatd streams my answer to the page token by token, the way a real model "
    "would. Point OPENAI_BASE_URL at a real provider to talk to a real model.",

    "Here is what just happened:\n\n"
    "1. The page sent your message, with the conversation so far, to POST /chat.\n"
    "2. chatd asked its provider (me, a fake one) for a streamed completion.\n"
    "3. Each token came back as a Server-Sent Event, and the page added it as text.\n\n"
    "The numbers under this answer are the time to first token, the tokens and the duration.",

    "A small example, in C:\n\n"
    "```c\n#include <stdio.h>\n\nint main(void)\n{\n    puts(\"hello, chatd\");\n"
    "    return 0;\n}\n```\n\n"
    "Code blocks are shown as text too: model output never becomes HTML in the page.",

    "Try the Stop button while I am typing: the page aborts its request, and chatd closes "
    "the connection to the provider at once, so a real provider would stop generating "
    "(and billing) right away. Shift+Enter starts a new line in your message; Enter sends it.",

    "Short answer: yes.",

    "chatd is a small C server: libevent for the event loop, libcurl for the provider, "
    "one thread per core, and a strict contract for the stream. Every request has a "
    "correlation id; if something fails, the page shows the error, what to do about it, "
    "and that id, so you can find the request in the logs.",
};

#define N_ANSWERS (sizeof answers / sizeof answers[0])

const char *fp_typing_answer(void)
{
    static unsigned next;
    return answers[next++ % N_ANSWERS];
}

/* A token is a word with the blanks after it, or one newline, or one
 * punctuation mark: close to what a tokenizer makes of English. */
size_t fp_typing_token_len(const char *s)
{
    if (*s == '\0')
        return 0;
    if (*s == '\n')
        return 1;
    size_t n = 0;
    if (strchr(".,:;!?()`\"", *s) != NULL) { /* a mark and the blanks after it */
        for (n = 1; s[n] == ' ';)
            n++;
        return n;
    }
    while (s[n] != '\0' && s[n] != '\n' && strchr(" .,:;!?()`\"", s[n]) == NULL && n < 12)
        n++;
    while (s[n] == ' ')
        n++;
    return n;
}

int fp_typing_token_count(const char *s)
{
    int n = 0;
    for (size_t len; (len = fp_typing_token_len(s)) > 0; s += len)
        n++;
    return n;
}

int fp_typing_delay_ms(void)
{
    return 20 + rand() % 41;
}
