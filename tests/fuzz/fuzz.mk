# Fuzz targets: libFuzzer with ASan and UBSan, built with Debian's clang 14.
# Included at the end of the top Makefile. See tests/fuzz/README.md.
#   make fuzz        each target FUZZ_SECONDS (60) on build/fuzz/corpus-run/<target>
#   make fuzz-smoke  each target FUZZ_SMOKE_SECONDS (10); fails on any crash
#
# The modules of src/core, src/models, src/services and the http module of
# src/api are compiled once, instrumented, into one archive; a target links only
# the modules its harness reaches, so a module that starts to use another needs
# no change here.

FUZZ_CC            ?= clang
FUZZ_SECONDS       ?= 60
FUZZ_SMOKE_SECONDS ?= 10
FUZZ_SAN    := -g -O1 -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_CFLAGS := -std=c17 -D_GNU_SOURCE -Wall -Wextra -Isrc -Itests/fuzz \
               $(shell pkg-config --cflags libevent libcurl jansson libcrypto hiredis 2>/dev/null)
FUZZ_LIBS   := $(shell pkg-config --libs libevent libcurl jansson libcrypto hiredis 2>/dev/null) -lhttp_parser

FUZZ_TARGETS := fuzz_sse fuzz_chat_request fuzz_dotenv fuzz_error_summary fuzz_uuid fuzz_jsonw \
                fuzz_jscan fuzz_openai_chunk fuzz_http fuzz_http_conn fuzz_config_file fuzz_redis_url \
                fuzz_v1_request fuzz_h1 fuzz_hosts
FUZZ_BIN     := $(FUZZ_TARGETS:%=build/fuzz/%)
FUZZ_OBJ     := $(patsubst src/%.c,build/fuzz/obj/%.o, \
                  $(wildcard src/core/*.c src/models/*.c src/services/*.c src/api/http*.c))

build/fuzz/obj/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer-no-link $(FUZZ_CFLAGS) -MMD -MP -c -o $@ $<

build/fuzz/libchatd.a: $(FUZZ_OBJ)
	rm -f $@
	ar rcs $@ $^

build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h build/fuzz/libchatd.a
	$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer $(FUZZ_CFLAGS) -o $@ $< build/fuzz/libchatd.a \
	    $(FUZZ_LIBS)

.PHONY: fuzz fuzz-smoke
fuzz: $(FUZZ_BIN)
	tests/fuzz/run.sh run $(FUZZ_SECONDS) $(FUZZ_TARGETS)

fuzz-smoke: $(FUZZ_BIN)
	tests/fuzz/run.sh smoke $(FUZZ_SMOKE_SECONDS) $(FUZZ_TARGETS)

-include $(FUZZ_OBJ:.o=.d)
