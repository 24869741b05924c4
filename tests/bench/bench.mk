# The benchmark (tests/bench/README.md): nestls side by side with plain TCP,
# in-process OpenSSL, stunnel, nginx, HAProxy and socat.
#   make bench           full run (3 interleaved runs, 6-8 min): build/bench/results.md,
#                        build/bench/layers.png, the table on stdout
#   make bench QUICK=1   the same with smaller volumes (about 1.5 min)
#   make bench-tool      only build/bench/nlbench, the load tool

BENCH_DIR  := $(BUILD)/bench
BENCH_TOOL := $(BENCH_DIR)/nlbench
BENCH_SRC  := $(wildcard tests/bench/*.c)
# What the bench needs (the relays and the plotter), checked again here.
BENCH_PKGS := stunnel4 socat nginx libnginx-mod-stream haproxy gnuplot-nox procps

.PHONY: bench bench-tool bench-deps

bench-tool: $(BENCH_TOOL)

$(BENCH_TOOL): $(BENCH_SRC) tests/bench/nlb.h
	@mkdir -p $(dir $@)
	$(CC) -O2 -g -std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE -o $@ $(BENCH_SRC) -lssl -lcrypto

# Installs only what is missing (apt-get update first, once, if so), with
# sudo when not root. The driver itself needs only Python's standard library.
bench-deps: check-deps
	@missing=$$(for p in $(BENCH_PKGS); do \
	    dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q ' installed$$' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	    echo "bench: installing" $$missing; \
	    sudo=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
	    $$sudo apt-get update -qq && \
	    $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

# QUICK=1 (any value but empty or 0) picks the short run; RUNS=N changes
# the number of interleaved runs (3 by default, the fewest worth a median).
bench: bench-deps all certs $(BENCH_TOOL)
	@python3 tests/bench/run.py --build $(BUILD) $(if $(filter-out 0,$(QUICK)),--quick) \
	    $(if $(RUNS),--runs $(RUNS))
