# chatd — build, run, test. `make run` and `make test` are all a new user needs:
# both install the Debian packages they need first (make deps).

CC       ?= cc
PKGS     := libevent libcurl jansson libcrypto
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

UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=build/asan/tests/%)

PYTEST   := /usr/bin/python3 -m pytest

.PHONY: all asan deps run test unit integration integration-asan format format-check \
        bench-smoke clean clients

all: build/chatd

build/chatd: $(OBJ) build/obj/main.o
	$(CC) $(CFLAGS) -o $@ $^ $(PKG_LIBS)

build/obj/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

asan: build/asan/chatd

build/asan/chatd: $(ASAN_OBJ) build/asan/obj/main.o
	$(CC) $(SAN_FLAGS) -o $@ $^ $(PKG_LIBS)

build/asan/obj/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(SAN_FLAGS) -c -o $@ $<

# Unit tests build with the sanitizers and may reach a module's statics by
# including its .c file; each test links every module object except its own.
build/asan/tests/test_%: tests/unit/test_%.c tests/unit/unit.h $(ASAN_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(SAN_FLAGS) -Itests/unit -o $@ $< \
	    $(filter-out $(shell grep -o 'include "\.\./\.\./src/[a-z_/]*\.c"' $< | \
	      sed 's|include "\.\./\.\./src/\(.*\)\.c"|build/asan/obj/\1.o|'),$(ASAN_OBJ)) \
	    $(PKG_LIBS) -lcmocka

deps:
	@scripts/deps.sh

run: deps all
	./build/chatd

# Runs every test binary, even after a failure, then fails if any did.
unit: $(UNIT_BIN)
	@failed=; for t in $(UNIT_BIN); do echo "== $$t"; $$t || failed="$$failed $$t"; done; \
	if [ -n "$$failed" ]; then echo "unit tests FAILED:$$failed"; exit 1; fi; \
	echo "unit tests passed: $(words $(UNIT_BIN)) files"

integration: all
	$(PYTEST) -q tests/integration

integration-asan: asan
	CHATD_BIN=build/asan/chatd $(PYTEST) -q tests/integration -k "not valgrind"

test: deps
	$(MAKE) all asan
	$(MAKE) unit
	$(MAKE) clients
	$(MAKE) integration
	$(MAKE) integration-asan
	$(MAKE) fuzz-smoke
	$(MAKE) bench-smoke
	$(MAKE) format-check

# The real third-party clients (openai, Vercel AI SDK) of tests/integration/test_sdk_clients.py,
# at the exact versions of tests/clients/package-lock.json.
clients:
	cd tests/clients && npm ci --no-audit --no-fund

bench-smoke:
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

-include $(OBJ:.o=.d) $(ASAN_OBJ:.o=.d)
