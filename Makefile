# chatd — build, run, test. `make run` and `make test` are all a new user needs:
# both install the Debian packages they need first (make deps).

CC       ?= cc
PKGS     := libevent libcurl jansson libcrypto hiredis
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lhttp_parser -lpthread

WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
            -Wpointer-arith -Wformat=2 -Wvla -Wundef -Wcast-align
CFLAGS   ?= -O2 -g
ALL_CFLAGS := -std=c17 -D_GNU_SOURCE $(WARN) $(CFLAGS) -Isrc $(PKG_CFLAGS) -MMD -MP
SAN_FLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all

SRC      := $(wildcard src/core/*.c src/models/*.c src/services/*.c src/api/*.c)
OBJ      := $(SRC:src/%.c=build/obj/%.o)
ASAN_OBJ := $(SRC:src/%.c=build/asan/obj/%.o)
TSAN_OBJ := $(SRC:src/%.c=build/tsan/obj/%.o)

# ThreadSanitizer: gcc 12's runtime (libtsan2) works with Debian's libraries here.
TSAN_FLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=thread
# The failing-allocator build: the ASan objects, linked with chatd's own calls to
# the allocator (and accept4, which arms it) routed through tests/failalloc.
FAILALLOC_WRAP := -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=strdup,--wrap=strndup,--wrap=accept4

# The web chat page (web/) is compiled in as a generated C file (src/api/ui.c serves it).
WEB_FILES := $(sort $(wildcard web/*))
OBJ      += build/obj/gen/web_assets.o
ASAN_OBJ += build/asan/obj/gen/web_assets.o
TSAN_OBJ += build/tsan/obj/gen/web_assets.o

UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=build/asan/tests/%)

PYTEST   := /usr/bin/python3 -m pytest

.PHONY: all asan tsan failalloc deps run demo test unit integration integration-asan \
        integration-tsan failalloc-sweep web-test bench-report-test format format-check bench-smoke clean clients

all: build/chatd

build/chatd: $(OBJ) build/obj/main.o
	$(CC) $(CFLAGS) -o $@ $^ $(PKG_LIBS)

build/obj/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

build/gen/web_assets.c: $(WEB_FILES) scripts/gen_web_assets.sh
	@mkdir -p $(dir $@)
	scripts/gen_web_assets.sh $@ $(WEB_FILES)

build/obj/gen/web_assets.o: build/gen/web_assets.c src/api/ui.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

build/asan/obj/gen/web_assets.o: build/gen/web_assets.c src/api/ui.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(SAN_FLAGS) -c -o $@ $<

build/tsan/obj/gen/web_assets.o: build/gen/web_assets.c src/api/ui.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(TSAN_FLAGS) -c -o $@ $<

asan: build/asan/chatd

build/asan/chatd: $(ASAN_OBJ) build/asan/obj/main.o
	$(CC) $(SAN_FLAGS) -o $@ $^ $(PKG_LIBS)

build/asan/obj/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(SAN_FLAGS) -c -o $@ $<

tsan: build/tsan/chatd

build/tsan/chatd: $(TSAN_OBJ) build/tsan/obj/main.o
	$(CC) $(TSAN_FLAGS) -o $@ $^ $(PKG_LIBS)

build/tsan/obj/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(TSAN_FLAGS) -c -o $@ $<

failalloc: build/failalloc/chatd

build/failalloc/chatd: $(ASAN_OBJ) build/asan/obj/main.o build/failalloc/failalloc.o
	$(CC) $(SAN_FLAGS) $(FAILALLOC_WRAP) -o $@ $^ $(PKG_LIBS)

build/failalloc/failalloc.o: tests/failalloc/failalloc.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(SAN_FLAGS) -c -o $@ $<

# Unit tests build with the sanitizers and may reach a module's statics by
# including its .c file; each test links every module object except its own and
# those its comment lines `/* unit-fakes: services/provider api/http */` name
# (the test defines their functions itself: fakes that record calls).
unit_leave_out = $(shell { grep -o 'include "\.\./\.\./src/[a-z_/]*\.c"' $(1) | \
	  sed 's|include "\.\./\.\./src/\(.*\)\.c"|\1|'; \
	  sed -n 's|^/\* unit-fakes:\(.*\)\*/$$|\1|p' $(1) | tr ' ' '\n'; } | \
	  sed -n 's|^\([a-z_/]\{1,\}\)$$|build/asan/obj/\1.o|p')

build/asan/tests/test_%: tests/unit/test_%.c tests/unit/unit.h $(ASAN_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(SAN_FLAGS) -Itests/unit -o $@ $< \
	    $(filter-out $(call unit_leave_out,$<),$(ASAN_OBJ)) $(PKG_LIBS) -lcmocka

# test_provider, test_h1 and test_h1_dns once more without sanitizers, to run under valgrind in `make unit`.
VALGRIND_UNIT := build/tests/test_provider build/tests/test_h1 build/tests/test_h1_dns
build/tests/test_%: tests/unit/test_%.c tests/unit/unit.h $(OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itests/unit -o $@ $< $(OBJ) $(PKG_LIBS) -lcmocka

# Drives the limits module on a real loop for tests/integration/test_limits_redis.py.
LIMITS_DRIVER := build/asan/tests/limits_redis_driver
$(LIMITS_DRIVER): tests/limits_redis_driver.c $(ASAN_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(SAN_FLAGS) -o $@ $< $(ASAN_OBJ) $(PKG_LIBS)

deps:
	@scripts/deps.sh

run: deps all
	./build/chatd

# A newcomer's first look: the bench's fake provider "typing" canned answers, chatd
# pointed at it, the page at http://127.0.0.1:$${PORT:-8000}/. Ctrl-C stops both.
demo:
	scripts/demo.sh

# The page's SSE reader, in node (no packages).
web-test:
	/usr/bin/node --test tests/web/test_sse.mjs

# bench/report.py's tables and SVG charts (python3-matplotlib) on a made-up results folder.
bench-report-test:
	$(PYTEST) -q tests/bench/test_report.py

# Runs every test binary, even after a failure, then fails if any did.
unit: $(UNIT_BIN) $(VALGRIND_UNIT)
	@failed=; for t in $(UNIT_BIN); do echo "== $$t"; $$t || failed="$$failed $$t"; done; \
	for v in $(VALGRIND_UNIT); do echo "== valgrind $$v"; valgrind --quiet --error-exitcode=1 \
	    --leak-check=full --errors-for-leak-kinds=definite --show-possibly-lost=no $$v || \
	    failed="$$failed valgrind:$$v"; done; \
	if [ -n "$$failed" ]; then echo "unit tests FAILED:$$failed"; exit 1; fi; \
	echo "unit tests passed: $(words $(UNIT_BIN)) files"

integration: all $(LIMITS_DRIVER)
	$(PYTEST) -q tests/integration -k "not failalloc"

integration-asan: asan all $(LIMITS_DRIVER)
	CHATD_BIN=build/asan/chatd $(PYTEST) -q tests/integration -k "not valgrind and not failalloc"

# The suites where threads meet (streams, errors, drain, bursts, /v1, configuration
# reloads, limits shared by the workers, metrics), on 4 workers, with libcurl serving
# every provider (the other suites run most providers through h1).
TSAN_SUITES := $(addprefix tests/integration/test_,streaming.py errors.py hardening.py burst.py \
               openai_api.py config_file.py routing_breaker.py routing_reload.py limits_redis.py \
               observability.py)
integration-tsan: tsan all $(LIMITS_DRIVER)
	CHATD_BIN=build/tsan/chatd CHATD_WORKERS=4 CHATD_NATIVE_HTTP=false $(PYTEST) -q $(TSAN_SUITES) -k "not valgrind"

# Every allocation of one full stream failed in turn (tests/failalloc).
failalloc-sweep: failalloc all
	$(PYTEST) -q tests/integration/test_failalloc.py

# Builds first, then runs the suites two at a time (-j2, each suite's output kept
# together by -O, each timed); -k runs every suite even after a failure, and make
# fails if any did. The longest suites come first so the pairs finish together.
TEST_SUITES := integration-asan integration-tsan integration fuzz-smoke failalloc-sweep unit \
               web-test bench-report-test bench-smoke format-check
test: deps
	$(MAKE) -j2 all asan tsan failalloc clients $(LIMITS_DRIVER) $(UNIT_BIN)
	$(MAKE) -k -j2 -O $(TEST_SUITES:%=timed-%)

timed-%:
	@start=$$(date +%s); $(MAKE) --no-print-directory $*; rc=$$?; \
	echo "== make $*: exit $$rc after $$(( $$(date +%s) - start )) s"; exit $$rc

# The real third-party clients (openai, Vercel AI SDK) of tests/integration/test_sdk_clients.py,
# at the exact versions of tests/clients/package-lock.json.
clients:
	cd tests/clients && npm ci --no-audit --no-fund

bench-smoke: all
	bench/smoke.sh

FORMAT_FILES = $(shell git ls-files '*.c' '*.h' 2>/dev/null || find src tests bench -name '*.[ch]')

format:
	clang-format -i $(FORMAT_FILES)

format-check:
	clang-format --dry-run -Werror $(FORMAT_FILES)

clean:
	rm -rf build

# Optional: the container build copies only what building chatd needs.
-include tests/fuzz/fuzz.mk

-include $(OBJ:.o=.d) $(ASAN_OBJ:.o=.d) $(TSAN_OBJ:.o=.d)
