# vmsup — per-VM supervisor.  See README.md.
#
#   make                   build everything (build/)
#   make check             build and run every test (unit, black-box, unit files)
#   make check SANITIZE=1  the same with ASan+UBSan (build-san/)
#   make bench             benchmarks
#   make demo              a guided session with the bundled tiny guest
#   make install DESTDIR=... PREFIX=...

PREFIX      ?= /usr
SBINDIR     ?= $(PREFIX)/sbin
BINDIR      ?= $(PREFIX)/bin
SYSCONFDIR  ?= /etc
DATADIR     ?= $(PREFIX)/share
UNITDIR     ?= /lib/systemd/system
DBUSDIR     ?= $(DATADIR)/dbus-1/system.d
TMPFILESDIR ?= /usr/lib/tmpfiles.d
MANDIR      ?= $(DATADIR)/man
DOCDIR      ?= $(DATADIR)/doc/vmsup

SANITIZE ?= 0
ifeq ($(SANITIZE),1)
BUILD ?= build-san
SANFLAGS = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
else
BUILD ?= build
SANFLAGS =
endif

# Dependency check first: a fresh machine gets its packages before pkg-config runs.
ifeq ($(filter deps clean help,$(MAKECMDGOALS)),)
ifneq ($(VMSUP_SKIP_DEPS),1)
_deps := $(shell scripts/setup-deps.sh >&2 || echo failed)
ifeq ($(_deps),failed)
$(error scripts/setup-deps.sh failed: install the packages it names and run make again)
endif
endif
endif

PKGS     = libsystemd jansson libseccomp libcap-ng
CC      ?= cc
CFLAGS  ?= -O2 -g
CFLAGS  += -std=gnu11 -Wall -Wextra -Werror -Wno-unused-parameter -Wshadow \
           -Wmissing-prototypes -Wstrict-prototypes -Wformat=2 \
           -fno-strict-aliasing -fstack-protector-strong -D_FORTIFY_SOURCE=2 -fPIE \
           -D_GNU_SOURCE $(SANFLAGS) \
           -Icommon -Imonitor -Iagent -Ipolicy -Isupervisor \
           $(shell pkg-config --cflags $(PKGS))
LDFLAGS += -pie -Wl,-z,relro,-z,now $(SANFLAGS)
LDLIBS  += $(shell pkg-config --libs $(PKGS))
TEST_CFLAGS = $(shell pkg-config --cflags cmocka)
TEST_LIBS   = $(shell pkg-config --libs cmocka)

LIB_SRCS  = $(wildcard common/*.c) $(wildcard monitor/*.c) $(wildcard agent/*.c) \
            $(wildcard policy/*.c) $(filter-out supervisor/main.c supervisor/vmsupctl.c,$(wildcard supervisor/*.c))
LIB_OBJS  = $(LIB_SRCS:%.c=$(BUILD)/%.o)
UNIT_SRCS = $(wildcard tests/unit/test-*.c)
UNIT_BINS = $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
HELPER_SRCS = $(wildcard tests/helpers/*.c)
HELPER_BINS = $(HELPER_SRCS:tests/helpers/%.c=$(BUILD)/tests/%)
BENCH_SRCS = $(wildcard tests/bench/*.c)

BINS = $(BUILD)/vmsupd $(if $(wildcard supervisor/vmsupctl.c),$(BUILD)/vmsupctl)

all: $(BINS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/libvmsup.a: $(LIB_OBJS)
	@rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/vmsupd: $(BUILD)/supervisor/main.o $(BUILD)/libvmsup.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/vmsupctl: $(BUILD)/supervisor/vmsupctl.o $(BUILD)/libvmsup.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%.o: tests/unit/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(TEST_CFLAGS) -MMD -MP -c -o $@ $<

# A unit test links only the modules (directories or files) it tests, and common/, so that one module's
# tests build while another module is being changed.
mod_objs = $(patsubst %.c,$(BUILD)/%.o,$(wildcard common/*.c) \
             $(foreach d,$(1),$(if $(filter %.c,$(d)),$(d),\
               $(filter-out supervisor/main.c supervisor/vmsupctl.c,$(wildcard $(d)/*.c)))))
define unit_test
$(BUILD)/tests/test-$(1): $(BUILD)/tests/test-$(1).o $(call mod_objs,$(2))
	$$(CC) $$(LDFLAGS) -o $$@ $$^ $$(LDLIBS) $$(TEST_LIBS)
endef
$(eval $(call unit_test,qmp,monitor))
$(eval $(call unit_test,qga,agent))
$(eval $(call unit_test,policy,policy))
$(eval $(call unit_test,config,policy supervisor/config.c))
$(eval $(call unit_test,seccomp,supervisor/sandbox.c))
$(eval $(call unit_test,bus-util,policy monitor agent supervisor))

$(BUILD)/tests/helpers/%.o: tests/helpers/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

$(HELPER_BINS): $(BUILD)/tests/%: $(BUILD)/tests/helpers/%.o $(BUILD)/libvmsup.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

tests: $(UNIT_BINS) $(HELPER_BINS)

guest:
	tests/guest/build-guest.sh

check: all tests guest
	BUILD=$(BUILD) SANITIZE=$(SANITIZE) tests/run-all.sh

check-unit: all tests
	BUILD=$(BUILD) SANITIZE=$(SANITIZE) VMSUP_ONLY=unit tests/run-all.sh

# Not part of check: minutes of wall time and two TCG guests (tests/bench/run.sh).
bench: all guest $(BUILD)/bench/vmsup-bench
	BUILD=$(BUILD) tests/bench/run.sh

$(BUILD)/bench/vmsup-bench: $(BENCH_SRCS) $(wildcard tests/bench/*.h) $(BUILD)/libvmsup.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(BENCH_SRCS) $(BUILD)/libvmsup.a $(LDLIBS) -lm -lpthread

demo: all guest
	BUILD=$(BUILD) scripts/demo.sh

deps:
	scripts/setup-deps.sh

install: all
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR) \
	        $(DESTDIR)$(DBUSDIR) $(DESTDIR)$(TMPFILESDIR) $(DESTDIR)$(SYSCONFDIR)/vmsup/vms \
	        $(DESTDIR)$(DOCDIR) $(DESTDIR)$(MANDIR)/man8
	install -m 0755 $(BUILD)/vmsupd $(DESTDIR)$(SBINDIR)/vmsupd
	$(if $(wildcard $(BUILD)/vmsupctl),install -m 0755 $(BUILD)/vmsupctl $(DESTDIR)$(BINDIR)/vmsupctl)
	sed 's|@SBINDIR@|$(SBINDIR)|g' units/vmsup@.service > $(DESTDIR)$(UNITDIR)/vmsup@.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/vmsup@.service
	install -m 0644 units/org.vmsup.VM.conf $(DESTDIR)$(DBUSDIR)/org.vmsup.VM.conf
	install -m 0644 units/vmsup.tmpfiles $(DESTDIR)$(TMPFILESDIR)/vmsup.conf
	install -m 0644 units/example.json $(DESTDIR)$(DOCDIR)/example.json
	install -m 0644 README.md docs/*.md $(DESTDIR)$(DOCDIR)/
	$(if $(wildcard docs/vmsupd.8),install -m 0644 docs/vmsupd.8 $(DESTDIR)$(MANDIR)/man8/vmsupd.8)

clean:
	rm -rf build build-san

.PHONY: all tests guest check check-unit bench demo deps install clean

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
