# Transparency (issue 18): CPython 3.11's own regression tests, bare and
# under nestls in four ways, compared test by test (tests/transparency/README.md).
#   make test-transparency                 every way, then the summary
#   make test-transparency NESTLS_BUILD=DIR   test the library in DIR (default $(BUILD))
#   make transparency-report               every current difference with its failure text
# TRANSPARENCY_ARGS passes more options (e.g. --ways d --modules test.test_socket).

NESTLS_BUILD ?= $(BUILD)
TRANSPARENCY_ARGS ?=

.PHONY: test-transparency transparency-report

test-transparency: check-deps all certs
	@/usr/bin/python3.11 tests/transparency/transparency.py --build $(NESTLS_BUILD) $(TRANSPARENCY_ARGS)

transparency-report:
	@/usr/bin/python3.11 tests/transparency/transparency.py --build $(NESTLS_BUILD) --report
