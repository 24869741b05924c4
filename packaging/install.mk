# make install / make uninstall / make deb (included by the Makefile).
#
#   make install [PREFIX=/usr/local] [DESTDIR=]   installs:
#     BINDIR/nestls                             the command
#     PKGLIBDIR/libnestls.so                    the preload library (PREFIX/lib/nestls)
#     DATADIR/nestls/nestls.bash                the bats helper for users' tests
#     MANDIR/man1/nestls.1, man5/nestls-policy.5
#     BASHCOMPDIR/nestls                        bash completion
#     DOCDIR/examples/*.yaml, DOCDIR/certs/generate.sh (the demo PKI the
#       examples name as ../certs), DOCDIR/README.md and docs/*
#   make uninstall [PREFIX=...] [DESTDIR=...]   removes exactly those files
#   make deb                                    BUILD/nestls_VERSION_ARCH.deb (prefix /usr)
#
# `nestls run` finds libnestls.so next to itself (the build tree), else in
# ../lib/nestls beside its own directory (any PREFIX, and a DESTDIR
# staging), else in PKGLIBDIR, compiled into src/cli/run.c as
# NESTLS_LIBDIR. A change of PKGLIBDIR rebuilds run.c (the stamp below).

PREFIX      ?= /usr/local
BINDIR      ?= $(PREFIX)/bin
LIBDIR      ?= $(PREFIX)/lib
PKGLIBDIR   ?= $(LIBDIR)/nestls
DATADIR     ?= $(PREFIX)/share
MANDIR      ?= $(DATADIR)/man
DOCDIR      ?= $(DATADIR)/doc/nestls
BASHCOMPDIR ?= $(DATADIR)/bash-completion/completions
INSTALL     ?= install

$(BUILD)/obj/src/cli/run.o: NL_CFLAGS += -DNESTLS_LIBDIR='"$(PKGLIBDIR)"'
$(BUILD)/obj/src/cli/run.o: $(BUILD)/libdir.stamp

# Rewritten only when PKGLIBDIR differs from the one run.o was built with.
$(BUILD)/libdir.stamp: nl-libdir-check
	@mkdir -p $(dir $@)
	@echo '$(PKGLIBDIR)' | cmp -s - $@ || echo '$(PKGLIBDIR)' >$@

INSTALL_EXAMPLES := $(wildcard policy/*.yaml)
INSTALL_DOCS     := README.md $(wildcard docs/*.md docs/*.png)

.PHONY: install uninstall deb nl-libdir-check

install: all
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(PKGLIBDIR) $(DESTDIR)$(DATADIR)/nestls \
	    $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(BASHCOMPDIR) \
	    $(DESTDIR)$(DOCDIR)/examples $(DESTDIR)$(DOCDIR)/certs
	$(INSTALL) -m 0755 $(BUILD)/nestls $(DESTDIR)$(BINDIR)/nestls
	$(INSTALL) -m 0644 $(BUILD)/libnestls.so $(DESTDIR)$(PKGLIBDIR)/libnestls.so
	$(INSTALL) -m 0644 share/nestls.bash $(DESTDIR)$(DATADIR)/nestls/nestls.bash
	$(INSTALL) -m 0644 docs/man/nestls.1 $(DESTDIR)$(MANDIR)/man1/nestls.1
	$(INSTALL) -m 0644 docs/man/nestls-policy.5 $(DESTDIR)$(MANDIR)/man5/nestls-policy.5
	$(INSTALL) -m 0644 share/bash-completion/nestls $(DESTDIR)$(BASHCOMPDIR)/nestls
	$(INSTALL) -m 0644 $(INSTALL_EXAMPLES) $(DESTDIR)$(DOCDIR)/examples/
	$(INSTALL) -m 0644 certs/generate.sh $(DESTDIR)$(DOCDIR)/certs/generate.sh
	$(INSTALL) -m 0644 $(INSTALL_DOCS) $(DESTDIR)$(DOCDIR)/

# Only our own files, and then our own directories if they are empty.
uninstall:
	rm -f $(DESTDIR)$(BINDIR)/nestls $(DESTDIR)$(PKGLIBDIR)/libnestls.so \
	    $(DESTDIR)$(DATADIR)/nestls/nestls.bash \
	    $(DESTDIR)$(MANDIR)/man1/nestls.1 $(DESTDIR)$(MANDIR)/man5/nestls-policy.5 \
	    $(DESTDIR)$(BASHCOMPDIR)/nestls \
	    $(addprefix $(DESTDIR)$(DOCDIR)/examples/,$(notdir $(INSTALL_EXAMPLES))) \
	    $(DESTDIR)$(DOCDIR)/certs/generate.sh \
	    $(addprefix $(DESTDIR)$(DOCDIR)/,$(notdir $(INSTALL_DOCS)))
	rmdir $(DESTDIR)$(PKGLIBDIR) $(DESTDIR)$(DATADIR)/nestls $(DESTDIR)$(DOCDIR)/examples \
	    $(DESTDIR)$(DOCDIR)/certs $(DESTDIR)$(DOCDIR) 2>/dev/null || true

# ------------------------------------------------------------------ deb
# A binary package built with dpkg-deb alone (no debhelper): its own
# release build in BUILD/deb/build with PREFIX=/usr, installed into
# BUILD/deb/root, stripped, man pages gzipped, then packed with root as
# owner. That build uses Debian's hardening flags (dpkg-buildflags, when
# installed) for each of CFLAGS, CPPFLAGS and LDFLAGS not given to make on
# its command line or in the environment.
deb_flag = $(if $(filter command line environment,$(origin $(1))),$($(1)),$(or \
             $(shell dpkg-buildflags --get $(1) 2>/dev/null),$($(1))))
DEB_BUILDFLAGS = $(foreach v,CFLAGS CPPFLAGS LDFLAGS,$(v)="$(call deb_flag,$(v))")
# (= not :=: dpkg is asked only when a package is built)
DEB_ARCH        = $(shell dpkg --print-architecture 2>/dev/null || echo amd64)
DEB_FILE        = $(BUILD)/nestls_$(VERSION)_$(DEB_ARCH).deb
DEB_DIR         = $(BUILD)/deb
DEB_MAINTAINER ?= nestls developers <nestls@localhost>
STRIP          ?= strip

deb:
	rm -rf $(DEB_DIR) $(DEB_FILE)
	$(MAKE) --no-print-directory BUILD=$(DEB_DIR)/build PREFIX=/usr $(DEB_BUILDFLAGS) all
	$(MAKE) --no-print-directory BUILD=$(DEB_DIR)/build PREFIX=/usr $(DEB_BUILDFLAGS) \
	    DESTDIR=$(abspath $(DEB_DIR)/root) install
	$(STRIP) --strip-unneeded --remove-section=.comment --remove-section=.note $(DEB_DIR)/root/usr/lib/nestls/libnestls.so
	$(STRIP) --remove-section=.comment --remove-section=.note $(DEB_DIR)/root/usr/bin/nestls
	gzip -9n $(DEB_DIR)/root/usr/share/man/man1/nestls.1 $(DEB_DIR)/root/usr/share/man/man5/nestls-policy.5
	mkdir -p $(DEB_DIR)/root/DEBIAN
	glibc=$$(objdump -T $(DEB_DIR)/root/usr/bin/nestls $(DEB_DIR)/root/usr/lib/nestls/libnestls.so \
	         | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -Vu | tail -n 1); \
	size=$$(du -sk --exclude=DEBIAN $(DEB_DIR)/root | cut -f1); \
	sed -e 's/@VERSION@/$(VERSION)/' -e 's/@ARCH@/$(DEB_ARCH)/' -e "s/@GLIBC@/$$glibc/" \
	    -e "s/@SIZE@/$$size/" -e 's/@MAINTAINER@/$(DEB_MAINTAINER)/' \
	    packaging/control.in >$(DEB_DIR)/root/DEBIAN/control
	cd $(DEB_DIR)/root && find usr -type f | LC_ALL=C sort | xargs md5sum >DEBIAN/md5sums
	dpkg-deb --root-owner-group -Zxz --build $(DEB_DIR)/root $(DEB_FILE)
