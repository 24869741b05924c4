# Fuzzing with clang's libFuzzer (tests/fuzz/README.md says what and how).
#   make fuzz           each target for FUZZ_SECONDS (default 60), from the
#                       seeds and the regression inputs; a crash fails it;
#                       then the relay's liveness test (tests/unit/
#                       test_relay.c) on FUZZ_SECONDS x 100 fresh seeds
#   make fuzz-regress   every saved input once (fast, deterministic)
#   make fuzz-build     build-fuzz/fuzz_policy and build-fuzz/fuzz_onion

FUZZ_CC      ?= clang
FUZZ_BUILD   := build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS  := -O1 -g -fno-omit-frame-pointer $(FUZZ_SAN) -fsanitize=fuzzer-no-link
FUZZ_TARGETS := $(FUZZ_BUILD)/fuzz_policy $(FUZZ_BUILD)/fuzz_onion

# The socket-free parts of nestls: the policy loader and what it needs, the
# onion, and the descriptions `nestls check` prints.
FUZZ_SRC := $(POLICY_SRC) $(COMMON_SRC) src/engine/onion.c src/engine/tls_error.c \
            src/engine/sessions.c src/cli/describe.c
FUZZ_OBJ := $(FUZZ_SRC:%.c=$(FUZZ_BUILD)/obj/%.o)

.PHONY: fuzz fuzz-regress fuzz-build

fuzz-build: $(FUZZ_TARGETS)

$(FUZZ_BUILD)/obj/%.o: %.c
	@command -v $(FUZZ_CC) >/dev/null || { echo "fuzz: $(FUZZ_CC) not found (apt-get install clang-14 libclang-rt-14-dev)"; exit 1; }
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(NL_CFLAGS) -MMD -MP -c $< -o $@

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_OBJ)
	$(FUZZ_CC) -O1 -g -fno-omit-frame-pointer $(FUZZ_SAN) -fsanitize=fuzzer $(NL_CFLAGS) \
	    -o $@ $^ $(LDLIBS)

fuzz: check-deps certs $(FUZZ_TARGETS) $(BUILD)/tests/test_relay
	@FUZZ_SECONDS=$(FUZZ_SECONDS) bash tests/fuzz/run-fuzz.sh $(FUZZ_TARGETS)
	@seed=$$(date +%s%N); echo "fuzz: test_relay: $$(($(FUZZ_SECONDS) * 100)) cases from seed $$seed"; \
	    NESTLS_RELAY_SEED=$$seed NESTLS_RELAY_CASES=$$(($(FUZZ_SECONDS) * 100)) $(BUILD)/tests/test_relay

fuzz-regress: check-deps certs $(FUZZ_TARGETS)
	@bash tests/fuzz/run-regress.sh $(FUZZ_TARGETS)

# Objects are kept (they are intermediate files to make otherwise).
.SECONDARY: $(FUZZ_OBJ)

-include $(FUZZ_OBJ:.o=.d)
