# nestls — build, certificates, tests and demo.
#   make          build/libnestls.so and build/nestls
#   make deps     install what is missing (Debian 12, apt-get)
#   make certs    the demo PKI in certs/ (git-ignored)
#   make test     unit tests + bats suites, ending "N passed, N failed"
#   make demo     show nestls working
#   make install  PREFIX (/usr/local), DESTDIR; make uninstall; make deb
#                 (packaging/install.mk)

CC      ?= cc
BUILD   ?= build
# CFLAGS is yours to override (e.g. sanitizers); NL_CFLAGS is what the
# code needs and is always added. CPPFLAGS and LDFLAGS (empty by default)
# reach every compile and link line, as a distribution's build expects.
CFLAGS    ?= -O2 -g
VERSION   := 0.1.0
NL_CFLAGS := -std=gnu11 -Wall -Wextra -Werror -fPIC -fvisibility=hidden \
             -D_GNU_SOURCE -Isrc -pthread -DNESTLS_VERSION='"$(VERSION)"'
LDLIBS    := -lssl -lcrypto -lyaml -ldl -pthread

POLICY_SRC := $(wildcard src/policy/*.c)
COMMON_SRC := $(filter-out src/common/real.c,$(wildcard src/common/*.c))
LIB_SRC    := $(wildcard src/hooks/*.c src/engine/*.c) src/common/real.c \
              $(POLICY_SRC) $(COMMON_SRC)
CLI_SRC    := $(wildcard src/cli/*.c) $(POLICY_SRC) $(COMMON_SRC)

LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
CLI_OBJ := $(CLI_SRC:%.c=$(BUILD)/obj/%.o)
DEPFILES := $(sort $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d))

UNIT_TESTS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(wildcard tests/unit/test_*.c))
TEST_PROGS := $(patsubst tests/helpers/%.c,$(BUILD)/tests/%,$(wildcard tests/helpers/*.c)) \
              $(BUILD)/tests/early_ctor

.PHONY: all deps certs test unit bats demo clean check-deps

all: $(BUILD)/libnestls.so $(BUILD)/nestls

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(NL_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libnestls.so: $(LIB_OBJ)
	$(CC) -shared $(CFLAGS) $(NL_CFLAGS) $(LDFLAGS) -Wl,-z,defs -Wl,-z,now -o $@ $^ $(LDLIBS)

$(BUILD)/nestls: $(CLI_OBJ)
	$(CC) $(CFLAGS) $(NL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Unit tests link the policy code and the socket-free onion directly (no
# preload involved).
UNIT_LINK := $(filter-out $(BUILD)/obj/src/cli/%,$(CLI_OBJ)) \
             $(BUILD)/obj/src/engine/onion.o $(BUILD)/obj/src/engine/tls_error.o \
             $(BUILD)/obj/src/engine/sessions.o
# The relay's liveness test runs the engine's connection code itself (it
# is the engine loop), so it links that code and the real-libc table too.
$(BUILD)/tests/test_relay: $(BUILD)/obj/src/engine/conn.o $(BUILD)/obj/src/engine/reset.o \
                           $(BUILD)/obj/src/engine/starttls.o \
                           $(BUILD)/obj/src/common/real.o
$(BUILD)/tests/test_epoll_registry: $(BUILD)/obj/src/hooks/epoll_registry.o
# test_names compiles the name and decision hooks into itself (#include).
$(BUILD)/tests/test_names: src/hooks/names.c src/hooks/decide.c
$(BUILD)/tests/test_%: tests/unit/test_%.c $(UNIT_LINK)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(NL_CFLAGS) $(LDFLAGS) -o $@ $< $(filter %.o,$^) $(LDLIBS)

# Small plaintext programs the bats suites drive (they know nothing of TLS).
$(BUILD)/tests/%: tests/helpers/%.c $(wildcard tests/helpers/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Wall -Wextra -Werror -o $@ $< -pthread

# A program linked with a library whose constructor uses sockets (as
# libcap-ng's does): nestls's hooks run before nestls's constructor.
$(BUILD)/tests/libnl_early.so: tests/helpers/early/libearly.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -shared -fPIC -Wall -Wextra -Werror -o $@ $<

$(BUILD)/tests/early_ctor: tests/helpers/early/early_main.c $(BUILD)/tests/libnl_early.so
	$(CC) $(CFLAGS) -Wall -Wextra -Werror -o $@ $< -L$(BUILD)/tests -lnl_early -Wl,-rpath,'$$ORIGIN'

deps:
	@bash tests/helpers/install-deps.sh

check-deps:
	@bash tests/helpers/install-deps.sh --if-missing

certs:
	@bash certs/generate.sh

unit: all $(UNIT_TESTS)
	@bash tests/helpers/run-unit.sh $(UNIT_TESTS)

test: check-deps all certs $(UNIT_TESTS) $(TEST_PROGS)
	@bash tests/helpers/run-tests.sh $(UNIT_TESTS)

demo: check-deps all certs $(TEST_PROGS)
	@bash tests/helpers/demo.sh

clean:
	rm -rf $(BUILD)

-include $(DEPFILES)

# make install / uninstall (PREFIX, DESTDIR) and make deb.
include packaging/install.mk

# Areas with their own targets (bench, fuzzing, sanitizers) keep them in a
# fragment next to their code.
-include $(wildcard tests/*/*.mk)
