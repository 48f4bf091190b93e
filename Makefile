#   keyclone - the only entry point.
#
#   make            build libkeyclone (static + shared), keyclone, the daemons
#   make check      every test: selftests, ASan+UBSan selftests, fuzz corpus
#                   replay, golden vectors, integration and interop tests,
#                   then make check-asan (CHECK_ASAN=no skips it)
#   make run        build, then start a server and an agent under ./var
#   make run-cluster  three cluster members and two agents under ./var-cluster
#   make bench      speed figures, as ratios against peers measured in the run
#   make check-asan every program built with ASan+UBSan in build/asan-build,
#                   then the integration and interop tests against it
#   make fuzz       libFuzzer runs of every parser (needs clang)
#   make fuzz-long  longer runs (FUZZ_SECONDS=600 each), new coverage merged
#                   into the committed corpora
#   make install    PREFIX=/usr/local DESTDIR= : programs, libkeyclone (ldconfig), public
#                   headers, keyclone.pc, man pages, systemd units, sample configs,
#                   bash completion; make uninstall; make clean
#
#   make and make check install the Debian packages they need when missing.

.DEFAULT_GOAL := all

#   In parallel on every core unless told otherwise (-j); one short line per
#   file built unless V=1 (then the full commands).
ifeq ($(filter -j%,$(MAKEFLAGS)),)
MAKEFLAGS   += -j$(shell nproc)
endif
V           ?= 0
ifeq ($(V),1)
Q           :=
SAY         := @true
else
Q           := @
SAY         := @printf '  %-4s %s\n'
endif
VERSION     := 0.1.0
SOVERSION   := 0
PREFIX      ?= /usr/local
BINDIR      ?= $(PREFIX)/bin
LIBDIR      ?= $(PREFIX)/lib
INCLUDEDIR  ?= $(PREFIX)/include
MANDIR      ?= $(PREFIX)/share/man
DOCDIR      ?= $(PREFIX)/share/doc/keyclone
COMPLETIONDIR ?= $(PREFIX)/share/bash-completion/completions
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
DESTDIR     ?=
B           := build
PYTHON      := /usr/bin/python3
FUZZ_SECONDS ?= 20
IT          ?=
IT_JOBS     ?= 2
CHECK_ASAN  ?= yes

PKGS        := libczmq libzmq libsodium sqlite3
DEB_BUILD   := libzmq3-dev libczmq-dev libsodium-dev libsqlite3-dev pkg-config python3
RAFT_PKGS   := raft libuv
DEB_CHECK   := python3-zmq sqlite3 iproute2 groff-base man-db systemd binutils dpkg-dev debhelper lintian adduser \
               libraft-dev libuv1-dev

WARN        := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wvla -Wstrict-prototypes
CFLAGS      ?= -O2 -g
KC_CFLAGS    = -std=gnu11 $(WARN) -fPIC -D_GNU_SOURCE -Ilib -I$(B)/gen $(PKG_CFLAGS) $(CFLAGS)
SAN_FLAGS   := -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer

#   --- Debian packages -------------------------------------------------------

define ensure_packages
	@if ! command -v dpkg-query >/dev/null 2>&1; then \
	    echo "keyclone: not a Debian system; make sure these are installed: $(1)"; exit 0; fi; \
	missing=""; \
	for p in $(1); do \
	    dpkg-query -W -f='$${db:Status-Status}' $$p 2>/dev/null | grep -qx installed || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	    echo "keyclone: installing missing Debian packages:$$missing"; \
	    if [ "$$(id -u)" = 0 ]; then sudo=""; \
	    elif command -v sudo >/dev/null 2>&1; then sudo="sudo -n"; \
	    else echo "keyclone: run as root, or install:$$missing" >&2; exit 1; fi; \
	    $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing \
	    || { $$sudo apt-get update -q && \
	         $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; } \
	    || { echo "keyclone: could not install:$$missing" >&2; exit 1; }; \
	fi
endef

ifeq ($(filter clean,$(MAKECMDGOALS)),)
-include $(B)/config.mk
endif

$(B)/config.mk: Makefile
	$(call ensure_packages,$(DEB_BUILD))
	@mkdir -p $(B)
	@{ echo "PKG_CFLAGS := $$(pkg-config --cflags $(PKGS))"; \
	   echo "PKG_LIBS := $$(pkg-config --libs $(PKGS))"; \
	   echo "RAFT_CFLAGS := $$(pkg-config --cflags $(RAFT_PKGS) 2>/dev/null)"; \
	   echo "RAFT_LIBS := $$(pkg-config --libs $(RAFT_PKGS) 2>/dev/null || echo -lraft -luv)"; } > $@.tmp && mv $@.tmp $@

.SECONDARY:

.PHONY: all deps check-deps check selftest asan replay vectors integration run run-cluster demo \
        bench fuzz fuzz-long install uninstall clean valgrind check-asan asan-integration deb

deps:
	$(call ensure_packages,$(DEB_BUILD))

check-deps:
	$(call ensure_packages,$(DEB_BUILD) $(DEB_CHECK))

#   --- Sources -----------------------------------------------------------------

LIB_SRC     := $(sort $(wildcard lib/*.c))
LIB_OBJ     := $(LIB_SRC:%.c=$(B)/obj/%.o) $(B)/obj/gen/kc_schema.o
CLI_SRC     := $(sort $(wildcard cli/*.c))
SERVER_SRC  := $(sort $(wildcard server/*.c))
#   The cluster's engine: libraft (and libuv) over kc_raft_transport. Only
#   the server and raft_member link them, never libkeyclone.
RAFT_SRC    := $(sort $(wildcard server/raft/*.c))
RAFT_USERS  := $(RAFT_SRC:%.c=$(B)/obj/%.o) $(SERVER_SRC:%.c=$(B)/obj/%.o) $(B)/obj/tests/it/raft_member.o
$(RAFT_USERS): KC_CFLAGS += -Iserver/raft $(RAFT_CFLAGS)
$(RAFT_USERS): | check-deps
AGENT_SRC   := $(sort $(wildcard agent/*.c))
MIRROR_SRC  := $(sort $(wildcard mirror/*.c))
WITNESS_SRC := $(sort $(wildcard witness/*.c))
SCHEMA_SQL  := $(sort $(wildcard schema/*/*.sql))
SCHEMA_KINDS := $(sort $(notdir $(patsubst %/,%,$(dir $(SCHEMA_SQL)))))
TEST_SRC    := $(sort $(wildcard tests/unit/*.c))
FUZZ_SRC    := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_NAMES  := $(FUZZ_SRC:tests/fuzz/fuzz_%.c=%)
BENCH_SRC   := $(sort $(wildcard tests/bench/*.c))
IT_C_SRC    := $(sort $(wildcard tests/it/*.c))
SHIM_SRC    := $(sort $(wildcard tests/it/shim/*.c))

STATIC_LIB  := $(B)/lib/libkeyclone.a
SHARED_LIB  := $(B)/lib/libkeyclone.so.$(VERSION)
BINARIES    := $(B)/bin/keyclone \
               $(if $(SERVER_SRC),$(B)/bin/keyclone-server) \
               $(if $(AGENT_SRC),$(B)/bin/keyclone-agent) \
               $(if $(MIRROR_SRC),$(B)/bin/keyclone-mirror) \
               $(if $(WITNESS_SRC),$(B)/bin/keyclone-witness)
TEST_BINS   := $(B)/bin/kc_selftest $(B)/asan/kc_selftest \
               $(FUZZ_NAMES:%=$(B)/replay/replay_%) \
               $(IT_C_SRC:tests/it/%.c=$(B)/tests/%) \
               $(SHIM_SRC:tests/it/shim/%.c=$(B)/tests/libkc_%.so) \
               $(BENCH_SRC:tests/bench/%.c=$(B)/tests/%)

all: $(STATIC_LIB) $(SHARED_LIB) $(BINARIES) $(B)/man/keyclone.1 | deps

#   --- Library ---------------------------------------------------------------

$(B)/gen/kc_schema.c: $(SCHEMA_SQL) schema/embed.sh
	@mkdir -p $(@D)
	$(SAY) GEN $@
	$(Q)sh schema/embed.sh $@ $(SCHEMA_KINDS)

$(B)/obj/%.o: %.c $(B)/config.mk
	@mkdir -p $(@D)
	$(SAY) CC $@
	$(Q)$(CC) $(KC_CFLAGS) -MMD -MP -c $< -o $@

$(B)/obj/gen/kc_schema.o: $(B)/gen/kc_schema.c
	@mkdir -p $(@D)
	$(SAY) CC $@
	$(Q)$(CC) $(KC_CFLAGS) -c $< -o $@

$(STATIC_LIB): $(LIB_OBJ)
	@mkdir -p $(@D)
	$(SAY) AR $@
	$(Q)rm -f $@ && ar rcs $@ $^

$(SHARED_LIB): $(LIB_OBJ)
	@mkdir -p $(@D)
	$(SAY) LD $@
	$(Q)$(CC) -shared -Wl,-soname,libkeyclone.so.$(SOVERSION) -o $@ $^ $(PKG_LIBS)
	$(Q)ln -sf libkeyclone.so.$(VERSION) $(B)/lib/libkeyclone.so.$(SOVERSION)
	$(Q)ln -sf libkeyclone.so.$(SOVERSION) $(B)/lib/libkeyclone.so

#   --- Programs --------------------------------------------------------------

LINK = $(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) -lpthread -lm

$(B)/bin/keyclone: $(CLI_SRC:%.c=$(B)/obj/%.o) $(STATIC_LIB)
	@mkdir -p $(@D)
	$(SAY) LD $@
	$(Q)$(LINK)

$(B)/bin/keyclone-server: $(SERVER_SRC:%.c=$(B)/obj/%.o) $(RAFT_SRC:%.c=$(B)/obj/%.o) $(STATIC_LIB)
	@mkdir -p $(@D)
	$(SAY) LD $@
	$(Q)$(LINK) $(RAFT_LIBS)

$(B)/bin/keyclone-agent: $(AGENT_SRC:%.c=$(B)/obj/%.o) $(STATIC_LIB)
	@mkdir -p $(@D)
	$(SAY) LD $@
	$(Q)$(LINK)

$(B)/bin/keyclone-mirror: $(MIRROR_SRC:%.c=$(B)/obj/%.o) $(STATIC_LIB)
	@mkdir -p $(@D)
	$(SAY) LD $@
	$(Q)$(LINK)

$(B)/bin/keyclone-witness: $(WITNESS_SRC:%.c=$(B)/obj/%.o) $(STATIC_LIB)
	@mkdir -p $(@D)
	$(SAY) LD $@
	$(Q)$(LINK)

#   Selftests link the library built with KC_TEST_HOOKS: hooks such as injected
#   transient keys for known-answer tests exist only in these objects, never in
#   the installed library.
TEST_LIB_OBJ := $(LIB_OBJ:$(B)/obj/%=$(B)/test-obj/%)

$(B)/test-obj/%.o: %.c $(B)/config.mk
	@mkdir -p $(@D)
	$(SAY) CC $@
	$(Q)$(CC) $(KC_CFLAGS) -DKC_TEST_HOOKS -MMD -MP -c $< -o $@

$(B)/test-obj/gen/kc_schema.o: $(B)/gen/kc_schema.c
	@mkdir -p $(@D)
	$(SAY) CC $@
	$(Q)$(CC) $(KC_CFLAGS) -c $< -o $@

$(B)/bin/kc_selftest: $(TEST_SRC:%.c=$(B)/test-obj/%.o) $(TEST_LIB_OBJ)
	@mkdir -p $(@D)
	$(SAY) LD $@
	$(Q)$(LINK)

$(B)/tests/%: $(B)/obj/tests/it/%.o $(STATIC_LIB)
	@mkdir -p $(@D)
	$(SAY) LD $@
	$(Q)$(LINK)


$(B)/tests/raft_member: $(B)/obj/tests/it/raft_member.o $(RAFT_SRC:%.c=$(B)/obj/%.o) $(STATIC_LIB)
	@mkdir -p $(@D)
	$(SAY) LD $@
	$(Q)$(LINK) $(RAFT_LIBS)

$(B)/tests/%: $(B)/obj/tests/bench/%.o $(STATIC_LIB)
	@mkdir -p $(@D)
	$(SAY) LD $@
	$(Q)$(LINK)

#   LD_PRELOAD shims for tests (e.g. a process whose clock is moved)
$(B)/tests/libkc_%.so: tests/it/shim/%.c
	@mkdir -p $(@D)
	$(SAY) LD $@
	$(Q)$(CC) -std=gnu11 $(WARN) -D_GNU_SOURCE -shared -fPIC -O2 -o $@ $< -ldl

#   --- Sanitizer build and fuzz corpus replay --------------------------------

ASAN_LIB_OBJ := $(LIB_OBJ:$(B)/obj/%=$(B)/asan-obj/%)

$(B)/asan-obj/%.o: %.c $(B)/config.mk
	@mkdir -p $(@D)
	$(SAY) CC $@
	$(Q)$(CC) $(KC_CFLAGS) $(SAN_FLAGS) -DKC_TEST_HOOKS -MMD -MP -c $< -o $@

$(B)/asan-obj/gen/kc_schema.o: $(B)/gen/kc_schema.c
	@mkdir -p $(@D)
	$(SAY) CC $@
	$(Q)$(CC) $(KC_CFLAGS) $(SAN_FLAGS) -c $< -o $@

$(B)/asan/kc_selftest: $(TEST_SRC:%.c=$(B)/asan-obj/%.o) $(ASAN_LIB_OBJ)
	@mkdir -p $(@D)
	$(SAY) LD $@
	$(Q)$(CC) $(SAN_FLAGS) -o $@ $^ $(PKG_LIBS) -lpthread -lm

$(B)/replay/replay_%: $(B)/asan-obj/tests/fuzz/fuzz_%.o $(B)/asan-obj/tests/fuzz/replay.o $(ASAN_LIB_OBJ)
	@mkdir -p $(@D)
	$(SAY) LD $@
	$(Q)$(CC) $(SAN_FLAGS) -o $@ $^ $(PKG_LIBS) -lpthread -lm

#   --- Tests -----------------------------------------------------------------

check: all $(TEST_BINS) | check-deps
	@echo "== selftests"
	$(B)/bin/kc_selftest
	@echo "== selftests under ASan+UBSan"
	ASAN_OPTIONS=detect_leaks=1 $(B)/asan/kc_selftest
	@echo "== fuzz corpus replay (ASan+UBSan)"
	@set -e; for name in $(FUZZ_NAMES); do \
	    $(B)/replay/replay_$$name tests/fuzz/corpus/$$name; done
	@echo "== integration and interop tests"
	KC_BUILD=$(abspath $(B)) $(PYTHON) tests/it/run.py -j$(IT_JOBS) $(IT)
ifneq ($(CHECK_ASAN),no)
	@+$(MAKE) --no-print-directory check-asan
endif
	@echo "make check: all tests passed"

#   --- Every program under ASan+UBSan, with the integration tests -----------
#
#   make check-asan: the library, keyclone, both daemons and every C program
#   of tests/it and tests/bench rebuilt with SAN_FLAGS in $(ASAN_B) (a make
#   of its own, with B, CFLAGS and LDFLAGS set), then tests/it/run.py
#   against that build ("make check-asan IT=zap" for some suites only).
#   - Daemons write to log files and the tests capture what the CLI prints,
#     so every sanitizer writes its reports to $(ASAN_B)/sanitizer-logs/
#     <tool>.<pid>, and the run fails unless that directory is empty at the
#     end, whatever the tests said; abort_on_error also stops the process.
#   - UBSan is linked statically (-static-libubsan): with gcc's two shared
#     runtimes, libubsan's log_path call binds to libasan's copy and UBSan's
#     reports would stay on stderr.
#   - LeakSanitizer checks every exit. Under ASan, tests/it/kc.py ends the
#     daemons a test leaves running with SIGTERM, not SIGKILL, so that they
#     exit through it. tests/lsan.supp has a reason for each suppression.
#   - verify_asan_link_order=0: a test may LD_PRELOAD a shim into a daemon.
#   - test_readme's nested `make install` inherits B, CFLAGS and LDFLAGS
#     through MAKEFLAGS, so it installs this build, and SAN_PC_CFLAGS and
#     SAN_PC_LIBS put the sanitizer flags into that keyclone.pc: the
#     README's program is built with them too.

ASAN_B      := $(B)/asan-build
SAN_LOGS    = $(abspath $(B))/sanitizer-logs
SAN_OPTIONS_COMMON = log_path=$(SAN_LOGS)/$(1):halt_on_error=1:abort_on_error=1:print_stacktrace=1
SAN_PC_CFLAGS ?=
SAN_PC_LIBS ?=

check-asan: | check-deps
	@+$(MAKE) --no-print-directory B=$(ASAN_B) CFLAGS='$(SAN_FLAGS)' LDFLAGS=-static-libubsan \
	    SAN_PC_CFLAGS='-fsanitize=address,undefined' \
	    SAN_PC_LIBS='-fsanitize=address,undefined -static-libubsan' asan-integration

ifneq ($(findstring -fsanitize=address,$(CFLAGS)),)
asan-integration: all $(IT_C_SRC:tests/it/%.c=$(B)/tests/%) $(BENCH_SRC:tests/bench/%.c=$(B)/tests/%) \
                  $(SHIM_SRC:tests/it/shim/%.c=$(B)/tests/libkc_%.so)
	@echo "== integration and interop tests under ASan+UBSan ($(B))"
	@rm -rf $(SAN_LOGS) && mkdir -p $(SAN_LOGS)
	@status=0; \
	ASAN_OPTIONS='$(call SAN_OPTIONS_COMMON,asan):detect_leaks=1:verify_asan_link_order=0' \
	UBSAN_OPTIONS='$(call SAN_OPTIONS_COMMON,ubsan)' \
	LSAN_OPTIONS='suppressions=$(abspath tests/lsan.supp):print_suppressions=0' \
	KC_BUILD=$(abspath $(B)) $(PYTHON) tests/it/run.py -j$(IT_JOBS) $(IT) || status=1; \
	if [ -n "$$(ls -A $(SAN_LOGS))" ]; then \
	    for f in $(SAN_LOGS)/*; do echo "---- $$f"; cat "$$f"; done; \
	    echo "make check-asan: sanitizer reports in $(SAN_LOGS)" >&2; status=1; fi; \
	if [ $$status = 0 ]; then echo "make check-asan: no sanitizer reports"; fi; \
	exit $$status
else
asan-integration:
	@echo "asan-integration: run it as 'make check-asan'" >&2; exit 2
endif

valgrind: $(B)/bin/kc_selftest
	valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite \
	    $(B)/bin/kc_selftest

#   --- Fuzzing (clang libFuzzer) ---------------------------------------------

FUZZ_CC     := clang
FUZZ_FLAGS  := -g -O1 -fsanitize=fuzzer-no-link,address,undefined
FUZZ_LIB_OBJ := $(LIB_OBJ:$(B)/obj/%=$(B)/fuzz-obj/%)

$(B)/fuzz-obj/%.o: %.c $(B)/config.mk
	@mkdir -p $(@D)
	$(FUZZ_CC) -std=gnu11 -D_GNU_SOURCE -DKC_FUZZING -Ilib -I$(B)/gen $(PKG_CFLAGS) $(FUZZ_FLAGS) -MMD -MP -c $< -o $@

$(B)/fuzz-obj/gen/kc_schema.o: $(B)/gen/kc_schema.c
	@mkdir -p $(@D)
	$(FUZZ_CC) -std=gnu11 -Ilib $(PKG_CFLAGS) $(FUZZ_FLAGS) -c $< -o $@

$(B)/fuzz/fuzz_%: $(B)/fuzz-obj/tests/fuzz/fuzz_%.o $(FUZZ_LIB_OBJ)
	@mkdir -p $(@D)
	$(FUZZ_CC) -fsanitize=fuzzer,address,undefined -o $@ $^ $(PKG_LIBS) -lpthread -lm

FUZZ_TARGETS ?= $(FUZZ_NAMES)

fuzz: | deps
	@if ! command -v $(FUZZ_CC) >/dev/null 2>&1; then \
	    echo "make fuzz: clang not found; 'make check' still replays every corpus"; exit 0; fi; \
	$(MAKE) --no-print-directory $(FUZZ_TARGETS:%=$(B)/fuzz/fuzz_%) && mkdir -p $(B)/fuzz/crashes && \
	for name in $(FUZZ_TARGETS); do \
	    mkdir -p $(B)/fuzz/corpus/$$name && cp -n tests/fuzz/corpus/$$name/* $(B)/fuzz/corpus/$$name/ 2>/dev/null; \
	    echo "== fuzz_$$name for $(FUZZ_SECONDS)s"; \
	    $(B)/fuzz/fuzz_$$name -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	        -artifact_prefix=$(B)/fuzz/crashes/$$name- $(B)/fuzz/corpus/$$name tests/fuzz/corpus/$$name \
	        2>&1 | grep -E '^(stat::number_of_executed_units|==|SUMMARY)' || true; \
	    if ls $(B)/fuzz/crashes/$$name-* >/dev/null 2>&1; then \
	        echo "make fuzz: fuzz_$$name found a crash: $$(ls $(B)/fuzz/crashes/$$name-*)"; exit 1; fi; \
	done

#   make fuzz-long: each of FUZZ_TARGETS (default: all) for FUZZ_SECONDS
#   (default 600 here) in FUZZ_JOBS processes (libFuzzer -fork; default 1),
#   growing the working corpus $(B)/fuzz/corpus/<target>; then -merge=1 of
#   it into the committed tests/fuzz/corpus/<target>, which adds only the
#   inputs that reach new coverage, smallest first, none over FUZZ_MAX_LEN
#   bytes. Commit what it added: `make check` replays every file. A crash,
#   a leak or a hang (over 10 s) stops it with the reproducer's path.
fuzz-long: FUZZ_SECONDS = 600
FUZZ_JOBS   ?= 1
FUZZ_MAX_LEN ?= 2048

fuzz-long: | deps
	@command -v $(FUZZ_CC) >/dev/null 2>&1 || { echo "make fuzz-long: needs clang" >&2; exit 1; }
	@$(MAKE) --no-print-directory $(FUZZ_TARGETS:%=$(B)/fuzz/fuzz_%)
	@mkdir -p $(B)/fuzz/logs $(B)/fuzz/crashes
	@for name in $(FUZZ_TARGETS); do \
	    work=$(B)/fuzz/corpus/$$name; committed=tests/fuzz/corpus/$$name; \
	    log=$(B)/fuzz/logs/$$name; crashes=$(B)/fuzz/crashes/$$name-; \
	    mkdir -p $$work && cp -n $$committed/* $$work/ 2>/dev/null; \
	    before=$$(ls $$committed | wc -l); \
	    echo "== fuzz_$$name for $(FUZZ_SECONDS)s, $(FUZZ_JOBS) job(s)"; \
	    $(B)/fuzz/fuzz_$$name -max_total_time=$(FUZZ_SECONDS) -max_len=$(FUZZ_MAX_LEN) \
	        -timeout=10 -print_final_stats=1 $(if $(filter-out 1,$(FUZZ_JOBS)),-fork=$(FUZZ_JOBS)) \
	        -artifact_prefix=$$crashes $$work > $$log.log 2>&1; \
	    grep -E '^(stat::(number_of_executed_units|average_exec_per_sec|new_units_added)|SUMMARY)' $$log.log; \
	    if ls $$crashes* >/dev/null 2>&1; then \
	        echo "make fuzz-long: fuzz_$$name found a crash: $$(ls $$crashes*) (log: $$log.log)" >&2; \
	        exit 1; fi; \
	    $(B)/fuzz/fuzz_$$name -merge=1 -max_len=$(FUZZ_MAX_LEN) $$committed $$work > $$log-merge.log 2>&1 \
	        || { echo "make fuzz-long: merge failed, see $$log-merge.log" >&2; exit 1; }; \
	    echo "fuzz_$$name: $$before -> $$(ls $$committed | wc -l) inputs in $$committed" \
	         "($$(cat $$committed/* | wc -c) bytes)"; \
	done

#   --- Benchmarks, run, demo -------------------------------------------------

bench: all $(BENCH_SRC:tests/bench/%.c=$(B)/tests/%) $(IT_C_SRC:tests/it/%.c=$(B)/tests/%) | check-deps
	KC_BUILD=$(abspath $(B)) $(PYTHON) tests/bench/run.py

run: all | check-deps
	@KC_BUILD=$(abspath $(B)) sh tests/run.sh

#   make run-cluster: three cluster members and two agents (docs/cluster.md)
run-cluster: all | check-deps
	@KC_BUILD=$(abspath $(B)) sh tests/run-cluster.sh

demo: all $(B)/tests/kc_curve_demo
	$(B)/tests/kc_curve_demo

#   --- Install ---------------------------------------------------------------

#   The .pc file is written at install time: it names PREFIX, which may differ
#   between installs of one build. The headers include czmq's, and programs
#   using kc_auth call czmq themselves: czmq and libzmq are public requirements.
#   Only the public headers (keyclone.h and what it includes) are installed;
#   kc_all.h and the other modules are the programs' own. The manual pages
#   are written from the programs' --help (packaging/mkman.py); the systemd
#   units name BINDIR. Installing to the system itself (no DESTDIR, as root)
#   runs ldconfig, so the programs find libkeyclone without LD_LIBRARY_PATH.
PUBLIC_HEADERS := lib/keyclone.h lib/kc_util.h lib/kc_wire.h lib/kc_z85.h lib/kc_record.h lib/kc_keys.h \
                  lib/kc_meta.h lib/kc_curve.h lib/kc_zmtp.h lib/kc_lookup.h lib/kc_zap.h lib/kc_auth.h
UNITS       := keyclone-server.service keyclone-agent.service

$(B)/man/keyclone.1: $(BINARIES) packaging/mkman.py
	$(SAY) MAN $(B)/man
	$(Q)$(PYTHON) packaging/mkman.py $(B)/bin $(B)/man $(VERSION)

install: all $(B)/man/keyclone.1
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCLUDEDIR)/keyclone \
	    $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(DOCDIR)/examples \
	    $(DESTDIR)$(COMPLETIONDIR) $(DESTDIR)$(SYSTEMDUNITDIR)
	install -m 0755 $(BINARIES) $(DESTDIR)$(BINDIR)/
	install -m 0644 $(STATIC_LIB) $(DESTDIR)$(LIBDIR)/
	install -m 0755 $(SHARED_LIB) $(DESTDIR)$(LIBDIR)/
	ln -sf libkeyclone.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libkeyclone.so.$(SOVERSION)
	ln -sf libkeyclone.so.$(SOVERSION) $(DESTDIR)$(LIBDIR)/libkeyclone.so
	install -m 0644 $(PUBLIC_HEADERS) $(DESTDIR)$(INCLUDEDIR)/keyclone/
	printf '%s\n' "prefix=$(PREFIX)" "libdir=$(LIBDIR)" "includedir=$(INCLUDEDIR)" "" \
	    "Name: keyclone" "Description: key distribution for ZeroMQ CURVE security" \
	    "Version: $(VERSION)" "Requires: libczmq libzmq" "Requires.private: libsodium sqlite3" \
	    "Libs: -L\$${libdir} -lkeyclone$(if $(SAN_PC_LIBS), $(SAN_PC_LIBS))" \
	    "Cflags: -I\$${includedir}/keyclone$(if $(SAN_PC_CFLAGS), $(SAN_PC_CFLAGS))" \
	    > $(DESTDIR)$(LIBDIR)/pkgconfig/keyclone.pc
	install -m 0644 $(B)/man/keyclone.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 0644 $(B)/man/keyclone-server.8 $(B)/man/keyclone-agent.8 $(B)/man/keyclone-mirror.8 \
	    $(B)/man/keyclone-witness.8 $(DESTDIR)$(MANDIR)/man8/
	install -m 0644 packaging/config/server.cfg packaging/config/agent.cfg $(DESTDIR)$(DOCDIR)/examples/
	install -m 0644 packaging/keyclone.bash-completion $(DESTDIR)$(COMPLETIONDIR)/keyclone
	for unit in $(UNITS); do \
	    sed 's|@BINDIR@|$(BINDIR)|g' packaging/systemd/$$unit.in > $(DESTDIR)$(SYSTEMDUNITDIR)/$$unit; \
	    chmod 0644 $(DESTDIR)$(SYSTEMDUNITDIR)/$$unit; done
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ]; then echo ldconfig; ldconfig; fi

#   Debian packages from the tree (debian/): a copy of the sources without
#   build/ and .git, built with dpkg-buildpackage, checked with lintian
#   (errors fail it); the .deb files land in build/deb/.
DEB_JOBS    ?= $(shell nproc)
deb: | check-deps
	rm -rf $(B)/deb && mkdir -p $(B)/deb/keyclone-$(VERSION)
	tar --exclude=./build --exclude=./.git -cf - . | tar -xf - -C $(B)/deb/keyclone-$(VERSION)
	cd $(B)/deb/keyclone-$(VERSION) && DEB_BUILD_OPTIONS="parallel=$(DEB_JOBS) nocheck" dpkg-buildpackage -b -us -uc
	lintian --fail-on error --suppress-tags-from-file debian/lintian-suppressed $(B)/deb/keyclone_$(VERSION)_*.changes
	@ls $(B)/deb/*.deb

uninstall:
	rm -f $(addprefix $(DESTDIR)$(BINDIR)/,$(notdir $(BINARIES)))
	rm -f $(DESTDIR)$(LIBDIR)/libkeyclone.* $(DESTDIR)$(LIBDIR)/pkgconfig/keyclone.pc
	rm -rf $(DESTDIR)$(INCLUDEDIR)/keyclone $(DESTDIR)$(DOCDIR)
	rm -f $(DESTDIR)$(MANDIR)/man1/keyclone.1 $(DESTDIR)$(MANDIR)/man8/keyclone-server.8 \
	    $(DESTDIR)$(MANDIR)/man8/keyclone-agent.8 $(DESTDIR)$(MANDIR)/man8/keyclone-mirror.8 \
	    $(DESTDIR)$(MANDIR)/man8/keyclone-witness.8 $(DESTDIR)$(COMPLETIONDIR)/keyclone
	rm -f $(addprefix $(DESTDIR)$(SYSTEMDUNITDIR)/,$(UNITS))
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ]; then ldconfig; fi

clean:
	rm -rf $(B)

-include $(shell find $(B)/obj $(B)/asan-obj $(B)/test-obj $(B)/fuzz-obj -name '*.d' 2>/dev/null)
