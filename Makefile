# mstk: one non-recursive Makefile for the library, the programs, the man
# pages, the completions and the tests.
#
#   make            build libcommon/libms.a and every program into ./bin/
#   make check      install what is missing, build, run every test (prove)
#   make check SAN=1  the same under AddressSanitizer + UBSan (own build dir)
#   make demo       install what is missing, build, run the demo (offline, then live)
#   make bench      tracking throughput table (ROIs/s, frames/s)
#   make bench-live the live rig at 500 frames/s for BENCH_SECONDS (60), then
#                   the rate stepped up until frames drop (bench-live.tsv)
#   make bench-e2e  ms-track on a multi-GB TIFF in /tmp: ROIs/s and peak RSS
#   make install PREFIX=/usr/local

VERSION  := 0.1.0
PREFIX   ?= /usr/local
DESTDIR  ?=
CC       ?= gcc
OPT      ?= -O2
PKGS     := hdf5-serial libtiff-4 kissfft-float

# A sanitizer build lives in its own tree so that it never mixes objects
# with the normal one.
ifeq ($(SAN),1)
O        := build-san
BINDIR   := build-san/bin
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else
O        := build
BINDIR   := bin
SANFLAGS :=
endif

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBDIRS := $(shell pkg-config --libs-only-L $(PKGS) 2>/dev/null)

# -iquote: our "tiffio.h" must not shadow libtiff's <tiffio.h>.
CPPFLAGS += -iquote tests/lib -D_GNU_SOURCE -DMS_VERSION='"$(VERSION)"' -iquote libcommon $(PKG_CFLAGS)
CFLAGS   += -std=c11 $(OPT) -g -Wall -Wextra -Werror -pthread $(SANFLAGS)
LDFLAGS  += -pthread $(SANFLAGS)
LDLIBS   += $(PKG_LIBDIRS) -lhdf5_hl -lhdf5 -ltiff -lkissfft-float -lm

# GenICam cameras through Aravis (LGPL, so linked dynamically), built when
# pkg-config finds aravis-0.8; ARAVIS=0 builds without it. Only
# cam_aravis.c sees Aravis' (and GLib's) headers. After installing or
# removing Aravis, rebuild from clean.
ifneq ($(ARAVIS),0)
ARAVIS_CFLAGS := $(shell pkg-config --cflags aravis-0.8 2>/dev/null)
ARAVIS_LIBS   := $(shell pkg-config --libs aravis-0.8 2>/dev/null)
endif
ifneq ($(ARAVIS_LIBS),)
CPPFLAGS += -DMS_HAVE_ARAVIS
# --as-needed: only the programs that open cameras load Aravis and GLib.
LDLIBS   += -Wl,--as-needed $(ARAVIS_LIBS) -Wl,--no-as-needed
$(O)/libcommon/cam_aravis.o: CPPFLAGS += $(ARAVIS_CFLAGS)
endif

LIB_SRC  := $(sort $(wildcard libcommon/*.c libcommon/track/*.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(O)/%.o)
LIB      := $(if $(filter 1,$(SAN)),$(O)/libms.a,libcommon/libms.a)
PROGS    := $(patsubst cmd/%.c,%,$(sort $(wildcard cmd/ms-*.c)))
BINS     := $(PROGS:%=$(BINDIR)/%)
UNIT_SRC := $(sort $(wildcard tests/unit/t-*.c))
UNITS    := $(UNIT_SRC:tests/unit/%.c=$(O)/tests/unit/%)
BENCH    := $(O)/tools/ms-bench
# A fake V4L2 device for the shell tests, loaded with LD_PRELOAD.
V4L2SHIM := $(O)/tests/lib/v4l2-shim.so
MANSRC   := $(sort $(wildcard man/*.scd))
MANPAGES := $(MANSRC:man/%.scd=$(O)/man/%)

.PHONY: all deps check demo bench bench-e2e bench-live install clean man completions lint-man
all: $(LIB) $(BINS)

deps:
	@tools/install-deps build

$(O)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c -o $@ $<

$(LIB): $(LIB_OBJ)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

$(BINDIR)/%: $(O)/cmd/%.o $(LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

$(O)/tests/unit/%: $(O)/tests/unit/%.o $(O)/tests/lib/tap.o $(LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $< $(O)/tests/lib/tap.o $(LIB) $(LDLIBS)

$(V4L2SHIM): tests/lib/v4l2-shim.c
	@mkdir -p $(@D)
	$(CC) -std=c11 -D_GNU_SOURCE $(OPT) -Wall -Wextra -Werror -shared -fPIC -o $@ $< -ldl

$(BENCH): $(O)/tools/ms-bench.o $(LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

# scdoc 1.11 puts a redundant .P around every heading and indented block,
# and mandoc -Tlint warns about each; drop them (the page renders the same).
MANTIDY := awk '/^\.(SH|SS)( |$$)/ { held = 0; print; head = 1; next } \
	/^\.P$$/ { held = 1; next } /^\.RE$$/ { print; next } \
	{ if (held && !head) print ".P"; held = 0; head = 0; print }'

$(O)/man/%: man/%.scd
	@mkdir -p $(@D)
	scdoc < $< > $@.tmp && $(MANTIDY) $@.tmp > $@ && rm -f $@.tmp

man: $(MANPAGES)

# Completions are generated from each program's own option table (the one
# --help prints), so they cannot drift from the code.
completions: $(BINS)
	tools/gen-completions $(BINDIR) completions

# `make check` runs every unit and shell test through prove. The shell
# tests find the programs through MS_BIN and the unit tests through MS_UNIT.
check:
	@tools/install-deps test
	@$(MAKE) --no-print-directory all $(UNITS) $(MANPAGES) $(V4L2SHIM)
	MS_BIN=$(CURDIR)/$(BINDIR) MS_UNIT=$(CURDIR)/$(O)/tests/unit MS_MAN=$(CURDIR)/$(O)/man \
	MS_SRC=$(CURDIR) MS_SAN=$(SAN) prove -j2 -e "" $(UNITS) tests/cli/t*.sh

demo:
	@tools/install-deps build
	@$(MAKE) --no-print-directory all
	MS_BIN=$(CURDIR)/$(BINDIR) examples/demo.sh demo

bench: all $(BENCH)
	$(BENCH) --tsv bench.tsv

# A benchmark, not a test: minutes long, and its numbers depend on the machine.
BENCH_SECONDS ?= 60
BENCH_STEP_SECONDS ?= 10
BENCH_TRIES ?= 2
bench-live: all
	BENCH_SECONDS=$(BENCH_SECONDS) BENCH_STEP_SECONDS=$(BENCH_STEP_SECONDS) BENCH_TRIES=$(BENCH_TRIES) \
	MS_BIN=$(CURDIR)/$(BINDIR) tools/bench-live --tsv bench-live.tsv
# ms-track on a multi-GB TIFF in /tmp (E2E_DIR) against the kernel's rate
bench-e2e: all $(BENCH)
	MS_BIN=$(CURDIR)/$(BINDIR) MS_BENCH=$(CURDIR)/$(BENCH) tools/bench-e2e $(E2E_DIR)

install: all $(MANPAGES)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 \
	  $(DESTDIR)$(PREFIX)/share/man/man5 $(DESTDIR)$(PREFIX)/share/man/man7 \
	  $(DESTDIR)$(PREFIX)/share/bash-completion/completions \
	  $(DESTDIR)$(PREFIX)/share/zsh/vendor-completions
	install -m 755 $(BINS) $(DESTDIR)$(PREFIX)/bin/
	for m in $(MANPAGES); do s=$${m##*.}; install -m 644 $$m $(DESTDIR)$(PREFIX)/share/man/man$$s/; done
	install -m 644 completions/bash/* $(DESTDIR)$(PREFIX)/share/bash-completion/completions/
	install -m 644 completions/zsh/* $(DESTDIR)$(PREFIX)/share/zsh/vendor-completions/

clean:
	rm -rf build build-san bin libcommon/libms.a bench.tsv bench-live.tsv demo

# Objects are intermediate files of pattern chains; keep them between runs.
.SECONDARY:

-include $(shell find $(O) -name '*.d' 2>/dev/null)
