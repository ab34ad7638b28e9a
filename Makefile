# vmsup — per-VM supervisor.  See README.md.
#
#   make                   build everything (build/)
#   make check             build and run every test (unit, black-box, unit files)
#   make check SANITIZE=1  the same with ASan+UBSan (build-san/)
#   make bench             benchmarks
#   make bench-fleet FLEET=N   the fleet rows alone with N supervisors (500)
#   make stress ROUNDS=N   N rounds of 100 concurrent VM starts and stops; counts failures
#   make fuzz FUZZ_SECONDS=N   build the libFuzzer harnesses with clang (build-fuzz/)
#                          and run each N seconds over its corpus (tests/fuzz/)
#   make demo              a guided session with the bundled tiny guest
#   make install DESTDIR=... PREFIX=...  (ships a sysusers.d entry for the user QEMU runs
#                                          as by default, vmsup-qemu: run systemd-sysusers)
#   make deps              install the Debian packages that are missing (as root;
#                          demo, check and bench run it first)
#   make deb               the Debian package, build/deb/vmsup_VERSION_ARCH.deb, built with
#                          dpkg-buildpackage from a copy of the tree and lintian-checked
#                          (make deps, run first, installs debhelper and lintian)
#
# Reading this file changes nothing on the machine: `make -n` only prints.

PREFIX      ?= /usr
SBINDIR     ?= $(PREFIX)/sbin
BINDIR      ?= $(PREFIX)/bin
SYSCONFDIR  ?= /etc
DATADIR     ?= $(PREFIX)/share
UNITDIR     ?= /lib/systemd/system
DBUSDIR     ?= $(DATADIR)/dbus-1/system.d
TMPFILESDIR ?= /usr/lib/tmpfiles.d
SYSUSERSDIR ?= /usr/lib/sysusers.d
MANDIR      ?= $(DATADIR)/man
DOCDIR      ?= $(DATADIR)/doc/vmsup
COMPLETIONDIR ?= $(DATADIR)/bash-completion/completions
INTERFACESDIR ?= $(DATADIR)/dbus-1/interfaces

SANITIZE ?= 0
FUZZ ?= 0
ifeq ($(FUZZ),1)
# libFuzzer needs clang; the harnesses link with -fsanitize=fuzzer, everything else is
# instrumented for coverage (fuzzer-no-link) and checked by ASan and UBSan.
BUILD ?= build-fuzz
CC = clang
# Warnings are gcc's business (the normal build): clang's differ, and a test build must
# not fail on them.
SANFLAGS = -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all \
           -Wno-error
FUZZ_LINK = -fsanitize=fuzzer
FUZZ_DRIVER =
else ifeq ($(SANITIZE),1)
BUILD ?= build-san
SANFLAGS = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
else
BUILD ?= build
SANFLAGS =
endif
# Without libFuzzer a harness replays the files it is given (make check).
FUZZ_LINK ?=
FUZZ_DRIVER ?= $(BUILD)/tests/fuzz/replay.o
FUZZ_SECONDS ?= 60

PKGS     = libsystemd jansson libseccomp libcap-ng
# pkg-config is asked when a recipe first needs its answer (then remembered), not
# while this file is read: `make check` installs the packages before it compiles.
pkg_config = $(if $(shell pkg-config --exists $(1) 2>/dev/null && echo y),$(shell pkg-config $(2) $(1)),\
               $(error pkg-config does not know $(1): run 'make deps' as root))
PKG_CFLAGS  = $(eval PKG_CFLAGS := $$(call pkg_config,$$(PKGS),--cflags))$(PKG_CFLAGS)
PKG_LIBS    = $(eval PKG_LIBS := $$(call pkg_config,$$(PKGS),--libs))$(PKG_LIBS)
TEST_CFLAGS = $(eval TEST_CFLAGS := $$(call pkg_config,cmocka,--cflags))$(TEST_CFLAGS)
TEST_LIBS   = $(eval TEST_LIBS := $$(call pkg_config,cmocka,--libs))$(TEST_LIBS)

CC      ?= cc
CFLAGS  ?= -O2 -g
CFLAGS  += -std=gnu11 -Wall -Wextra -Werror -Wno-unused-parameter -Wshadow \
           -Wmissing-prototypes -Wstrict-prototypes -Wformat=2 \
           -fno-strict-aliasing -fstack-protector-strong -D_FORTIFY_SOURCE=2 -fPIE \
           -D_GNU_SOURCE -pthread $(SANFLAGS) \
           -Icommon -Imonitor -Iagent -Ipolicy -Isupervisor \
           $(PKG_CFLAGS)
LDFLAGS += -pie -Wl,-z,relro,-z,now -pthread $(SANFLAGS)
LDLIBS  += $(PKG_LIBS)

LIB_SRCS  = $(wildcard common/*.c) $(wildcard monitor/*.c) $(wildcard agent/*.c) \
            $(wildcard policy/*.c) $(filter-out supervisor/main.c,$(wildcard supervisor/*.c))
LIB_OBJS  = $(LIB_SRCS:%.c=$(BUILD)/%.o)
UNIT_SRCS = $(wildcard tests/unit/test-*.c)
UNIT_BINS = $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
HELPER_SRCS = $(wildcard tests/helpers/*.c)
HELPER_BINS = $(HELPER_SRCS:tests/helpers/%.c=$(BUILD)/tests/%)
BENCH_SRCS = $(wildcard tests/bench/*.c)
CTL_OBJS  = $(patsubst %.c,$(BUILD)/%.o,$(wildcard ctl/*.c))
FUZZ_SRCS = $(wildcard tests/fuzz/fuzz-*.c)
FUZZ_BINS = $(FUZZ_SRCS:tests/fuzz/%.c=$(BUILD)/fuzz/%)

BINS = $(BUILD)/vmsupd $(BUILD)/vmsupctl
MANS = $(BUILD)/man/vmsupd.8 $(BUILD)/man/vmsupctl.1 $(BUILD)/man/vmsup.json.5

all: $(BINS) $(MANS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/libvmsup.a: $(LIB_OBJS)
	@rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/vmsupd: $(BUILD)/supervisor/main.o $(BUILD)/libvmsup.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/vmsupctl: $(CTL_OBJS) $(BUILD)/libvmsup.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/man/%: docs/man/%
	@mkdir -p $(dir $@)
	cp $< $@

# The permission tables in the manual come from the tables the supervisor enforces.
$(BUILD)/man/vmsup.json.5: docs/man/vmsup.json.5.in $(BUILD)/vmsupd
	@mkdir -p $(dir $@)
	$(BUILD)/vmsupd --list-permissions=roff > $@.tables
	sed -e '/@PERMISSIONS@/{r $@.tables' -e 'd}' $< > $@
	rm -f $@.tables

$(BUILD)/tests/%.o: tests/unit/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(TEST_CFLAGS) -MMD -MP -c -o $@ $<

# A unit test links only the modules (directories or files) it tests, and common/, so that one module's
# tests build while another module is being changed.
mod_objs = $(patsubst %.c,$(BUILD)/%.o,$(wildcard common/*.c) \
             $(foreach d,$(1),$(if $(filter %.c,$(d)),$(d),\
               $(filter-out supervisor/main.c,$(wildcard $(d)/*.c)))))
define unit_test
$(BUILD)/tests/test-$(1): $(BUILD)/tests/test-$(1).o $(call mod_objs,$(2))
	$$(CC) $$(LDFLAGS) -o $$@ $$^ $$(LDLIBS) $$(TEST_LIBS)
endef
$(eval $(call unit_test,qmp,monitor))
$(eval $(call unit_test,qga,agent))
$(eval $(call unit_test,policy,policy))
$(eval $(call unit_test,config,policy supervisor/config.c))
$(eval $(call unit_test,seccomp,supervisor/sandbox.c))
$(eval $(call unit_test,vm-state,supervisor/vm-state.c))
$(eval $(call unit_test,console,supervisor/console.c))
$(eval $(call unit_test,reattach,supervisor/state-file.c supervisor/adopt.c))
$(eval $(call unit_test,vm-events,policy supervisor/vm-events.c))
$(eval $(call unit_test,bus-util,policy monitor agent supervisor))
$(eval $(call unit_test,bus-quota,policy supervisor/bus-quota.c))
$(eval $(call unit_test,linebuf,))
$(eval $(call unit_test,json-wire-reply,))

$(BUILD)/tests/helpers/%.o: tests/helpers/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

$(HELPER_BINS): $(BUILD)/tests/%: $(BUILD)/tests/helpers/%.o $(BUILD)/libvmsup.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# A client generated from the shipped interface files by gdbus-codegen (test-interfaces drives it).
GIO_PKGS  = gio-2.0 gio-unix-2.0
GDBUS_XML = $(sort $(wildcard interfaces/*.xml))
$(BUILD)/gdbus/vmsup-generated.c: $(GDBUS_XML)
	@mkdir -p $(dir $@)
	gdbus-codegen --interface-prefix org.vmsup. --c-namespace Vmsup --c-generate-autocleanup all \
	        --output-directory $(BUILD)/gdbus --generate-c-code vmsup-generated $(GDBUS_XML)

$(BUILD)/tests/vmsup-gdbus-client: tests/gdbus/vmsup-gdbus-client.c $(BUILD)/gdbus/vmsup-generated.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -O2 -g -Wall -Wextra -Wno-unused-parameter -Werror -fPIE $(SANFLAGS) \
	        $(call pkg_config,$(GIO_PKGS),--cflags) -I$(BUILD)/gdbus $(LDFLAGS) -o $@ $^ \
	        $(call pkg_config,$(GIO_PKGS),--libs)

$(FUZZ_BINS): $(BUILD)/fuzz/%: $(BUILD)/tests/fuzz/%.o $(BUILD)/tests/fuzz/peer.o $(FUZZ_DRIVER) $(BUILD)/libvmsup.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $(FUZZ_LINK) -o $@ $^ $(LDLIBS)

tests: $(UNIT_BINS) $(HELPER_BINS) $(FUZZ_BINS) $(BUILD)/tests/vmsup-gdbus-client

# Not part of check (which replays each corpus once): FUZZ_SECONDS per harness.
fuzz: deps
	+@$(MAKE) --no-print-directory FUZZ=1 fuzz-build
	FUZZ_SECONDS=$(FUZZ_SECONDS) tests/fuzz/run.sh build-fuzz

fuzz-build: $(FUZZ_BINS)

guest:
	tests/guest/build-guest.sh

# demo, check and bench are what a fresh machine runs (README): the packages
# first, then a second make, which reads pkg-config's answers once they exist.
demo check bench bench-fleet stress: deps
	+@$(MAKE) --no-print-directory $@-run

check-run: all tests guest
	BUILD=$(BUILD) SANITIZE=$(SANITIZE) tests/run-all.sh

check-unit: all tests
	BUILD=$(BUILD) SANITIZE=$(SANITIZE) VMSUP_ONLY=unit tests/run-all.sh

# Not part of check: minutes of wall time and two TCG guests (tests/bench/run.sh).
bench-run: all guest $(BUILD)/bench/vmsup-bench
	BUILD=$(BUILD) tests/bench/run.sh

# The fleet rows alone at full scale: FLEET supervisors (`machine: none`), minutes long.
FLEET ?= 500
bench-fleet-run: all $(BUILD)/bench/vmsup-bench
	BUILD=$(BUILD) VMSUP_BENCH_ONLY=fleet VMSUP_BENCH_FLEET=$(FLEET) tests/bench/run.sh

# Not part of check either: ROUNDS × 100 QEMUs (`machine: none`), about 10 s a round.
ROUNDS ?= 50
stress-run: all $(BUILD)/bench/vmsup-bench
	BUILD=$(BUILD) VMSUP_BENCH_ONLY=stress VMSUP_BENCH_STRESS_ROUNDS=$(ROUNDS) tests/bench/run.sh

$(BUILD)/bench/vmsup-bench: $(BENCH_SRCS) $(wildcard tests/bench/*.h) $(BUILD)/libvmsup.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(BENCH_SRCS) $(BUILD)/libvmsup.a $(LDLIBS) -lm -lpthread

demo-run: all guest
	BUILD=$(BUILD) scripts/demo.sh

deps:
	scripts/setup-deps.sh

deb: deps
	scripts/build-deb.sh $(BUILD)/deb

install: all
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR) \
	        $(DESTDIR)$(DBUSDIR) $(DESTDIR)$(TMPFILESDIR) $(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(SYSCONFDIR)/vmsup/vms \
	        $(DESTDIR)$(DOCDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8 \
	        $(DESTDIR)$(COMPLETIONDIR) $(DESTDIR)$(INTERFACESDIR)
	install -m 0755 $(BUILD)/vmsupd $(DESTDIR)$(SBINDIR)/vmsupd
	install -m 0755 $(BUILD)/vmsupctl $(DESTDIR)$(BINDIR)/vmsupctl
	sed 's|@SBINDIR@|$(SBINDIR)|g' units/vmsup@.service > $(DESTDIR)$(UNITDIR)/vmsup@.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/vmsup@.service
	install -m 0644 units/org.vmsup.VM.conf $(DESTDIR)$(DBUSDIR)/org.vmsup.VM.conf
	install -m 0644 units/vmsup.tmpfiles $(DESTDIR)$(TMPFILESDIR)/vmsup.conf
	install -m 0644 units/vmsup.sysusers $(DESTDIR)$(SYSUSERSDIR)/vmsup.conf
	install -m 0644 units/example.json $(DESTDIR)$(DOCDIR)/example.json
	install -m 0644 README.md docs/*.md $(DESTDIR)$(DOCDIR)/
	install -m 0644 completion/vmsupctl.bash $(DESTDIR)$(COMPLETIONDIR)/vmsupctl
	install -m 0644 $(GDBUS_XML) $(DESTDIR)$(INTERFACESDIR)/
	install -m 0644 $(BUILD)/man/vmsupctl.1 $(DESTDIR)$(MANDIR)/man1/vmsupctl.1
	install -m 0644 $(BUILD)/man/vmsup.json.5 $(DESTDIR)$(MANDIR)/man5/vmsup.json.5
	install -m 0644 $(BUILD)/man/vmsupd.8 $(DESTDIR)$(MANDIR)/man8/vmsupd.8

clean:
	rm -rf build build-san build-fuzz

.PHONY: all tests guest check check-run check-unit bench bench-run bench-fleet bench-fleet-run stress stress-run demo demo-run deps deb \
        install clean fuzz fuzz-build

# (Not the copy of the tree make deb builds in $(BUILD)/deb, nor its system.d directories.)
-include $(shell find $(BUILD) -path $(BUILD)/deb -prune -o -name '*.d' -type f -print 2>/dev/null)
