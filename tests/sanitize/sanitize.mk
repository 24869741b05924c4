# Sanitizers and valgrind (tests/sanitize/README.md says what each checks).
#   make asan            build-asan/: library, command, unit tests and test
#                        programs with AddressSanitizer + UBSan (clang)
#   make test-asan       every unit test and bats suite against build-asan/;
#                        any sanitizer report fails the run
#   make test-valgrind   a two-layer exchange, both roles, under memcheck
#
# clang, not gcc: with gcc's separate libasan and libubsan, UBSan ignores
# log_path and reports only on stderr, where a wrapped program's report can
# go unseen. clang's ASan runtime carries UBSan and logs both to one file.
# -shared-libasan: one shared ASan runtime for everything, which the suites
# preload into programs that were not built with it (run-asan.sh).

ASAN_CC      ?= clang
ASAN_BUILD   := build-asan
ASAN_RUNTIME  = $(shell $(ASAN_CC) -print-file-name=libclang_rt.asan-x86_64.so)
ASAN_CFLAGS   = -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=undefined \
                -fno-omit-frame-pointer -shared-libasan -Wl,-rpath,$(dir $(ASAN_RUNTIME)) \
                -Wno-unused-command-line-argument
# The runtime the suites preload first (see tests/sanitize/initfirst.py).
ASAN_FIRST   := $(ASAN_BUILD)/rt/libclang_rt.asan-x86_64.so
ASAN_CANARY  := $(ASAN_BUILD)/libnl_asan_canary.so

.PHONY: asan asan-flags test-asan test-valgrind

asan: asan-flags
	$(MAKE) --no-print-directory BUILD=$(ASAN_BUILD) CC=$(ASAN_CC) CFLAGS="$(ASAN_CFLAGS)" all \
	    $(patsubst $(BUILD)/%,$(ASAN_BUILD)/%,$(UNIT_TESTS) $(TEST_PROGS)) $(ASAN_FIRST) $(ASAN_CANARY)

# Objects from another compiler or other flags are not reused.
asan-flags:
	@command -v $(ASAN_CC) >/dev/null || { echo "asan: $(ASAN_CC) not found (apt-get install clang-14)"; exit 1; }
	@[ -f "$(ASAN_RUNTIME)" ] || { echo "asan: no $(ASAN_RUNTIME) (apt-get install libclang-rt-14-dev)"; exit 1; }
	@mkdir -p $(ASAN_BUILD)
	@echo '$(ASAN_CC) $(ASAN_CFLAGS)' | cmp -s - $(ASAN_BUILD)/.flags || \
	    { rm -rf $(ASAN_BUILD)/obj $(ASAN_BUILD)/tests $(ASAN_BUILD)/rt $(ASAN_BUILD)/*.so $(ASAN_BUILD)/nestls; \
	      echo '$(ASAN_CC) $(ASAN_CFLAGS)' >$(ASAN_BUILD)/.flags; }

$(ASAN_FIRST): tests/sanitize/initfirst.py
	@mkdir -p $(dir $@)
	python3 tests/sanitize/initfirst.py $(ASAN_RUNTIME) $@

# Errors on purpose, to prove the set-up reports them (canary.sh).
$(ASAN_CANARY): tests/sanitize/asan_canary.c
	@mkdir -p $(dir $@)
	$(CC) -shared -fPIC $(CFLAGS) -Wall -Wextra -Werror -o $@ $<

test-asan: check-deps asan certs
	@bash tests/sanitize/run-asan.sh $(patsubst $(BUILD)/%,$(ASAN_BUILD)/%,$(UNIT_TESTS))

# The release build (memcheck and ASan exclude each other) and a small C
# echo server beside the C test client.
VALGRIND_PROGS := $(BUILD)/tests/echo_once $(TEST_PROGS) $(BUILD)/tests/libnl_vg_canary.so

$(BUILD)/tests/echo_once: tests/sanitize/echo_once.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Wall -Wextra -Werror -o $@ $< -pthread

# asan_canary.c without ASan: the errors memcheck must catch.
$(BUILD)/tests/libnl_vg_canary.so: tests/sanitize/asan_canary.c
	@mkdir -p $(dir $@)
	$(CC) -shared -fPIC -O0 -g -Wall -Wextra -Werror -o $@ $<

test-valgrind: check-deps all certs $(VALGRIND_PROGS)
	@bash tests/sanitize/run-valgrind.sh
