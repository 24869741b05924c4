# External audit of the TLS nestls offers with default settings
# (tests/audit/README.md).
#   make audit           tests/audit_testssl.bats alone (testssl.sh and
#                        sslscan against a wrapped server; part of make test)
#   make audit-sslscan   sslscan's report, printed and saved in
#                        build/audit/sslscan.txt (not committed)

.PHONY: audit audit-sslscan

audit: check-deps all certs
	@bats --tap tests/audit_testssl.bats

audit-sslscan: check-deps all certs
	@bash tests/audit/sslscan.sh $(BUILD)
