# AddressSanitizer + UndefinedBehaviorSanitizer build and the whole bats
# suite run against it (tests/sanitize/run-asan.sh says how).
ASAN_BUILD  := build-asan
ASAN_CFLAGS := -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=undefined \
               -fno-omit-frame-pointer

.PHONY: asan test-asan

asan:
	$(MAKE) --no-print-directory BUILD=$(ASAN_BUILD) CFLAGS="$(ASAN_CFLAGS)" all \
	    $(patsubst $(BUILD)/%,$(ASAN_BUILD)/%,$(UNIT_TESTS) $(TEST_PROGS))

test-asan: check-deps asan certs
	@bash tests/sanitize/run-asan.sh $(patsubst $(BUILD)/%,$(ASAN_BUILD)/%,$(UNIT_TESTS))
