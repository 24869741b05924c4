# The soak (tests/load/README.md): short and long connections mixed through
# two layers, both roles wrapped, RSS and descriptors watched.
#   make soak                   300 s (SOAK_SECONDS=60 for CI)
# The 1,000-connection load test is tests/load.bats, part of `make test`.

SOAK_SECONDS ?= 300

.PHONY: soak

soak: check-deps all certs
	@python3 tests/load/soak.py --seconds $(SOAK_SECONDS) --build $(BUILD)
