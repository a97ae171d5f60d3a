# MyloWare build. `make` builds ./myloware; `make help` lists the targets.
# Objects live under build/ (build/<variant>/ for sanitizer builds); V=1 shows full commands.

CC       ?= cc
SANITIZE ?=
WITH_POSTGRES ?= 0
VERSION  := 0.1.0
LLHTTP_SRC ?= /usr/share/llhttp
LLHTTP_INC ?= /usr/share/include/llhttp

comma := ,
PKGS := libuv sqlite3 libcurl jansson
# FFmpeg: compiled against (headers) but NOT linked: src/media/ff.c loads the libraries with dlopen
# on the first media job (an idle server does not map them). Tests that make media themselves
# link them (FF_LIBS).
FF_PKGS := libavformat libavcodec libavutil libswscale libswresample libavfilter

ifeq ($(V),1)
Q :=
else
Q := @
endif

ifeq ($(SANITIZE),)
BUILD := build
OPT   ?= -O2 -g
else
BUILD := build/$(subst $(comma),-,$(SANITIZE))
OPT   ?= -O1 -g -fno-omit-frame-pointer
SANFLAGS := -fsanitize=$(SANITIZE)
ifneq ($(findstring undefined,$(SANITIZE)),)
SANFLAGS += -fno-sanitize-recover=undefined
endif
endif
WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 \
        -Wno-unused-parameter -Wvla
ifeq ($(WERROR),1)
WARN += -Werror
endif

CPPFLAGS := -Isrc -I$(LLHTTP_INC) -D_GNU_SOURCE -DMYLOWARE_VERSION=\"$(VERSION)\" \
            -DMYLOWARE_SRCDIR=\"$(CURDIR)\" -MMD -MP
CFLAGS   := -std=gnu11 $(OPT) $(WARN) $(SANFLAGS) -pthread $(shell pkg-config --cflags $(PKGS) $(FF_PKGS) 2>/dev/null)
LDLIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lmbedcrypto -lpthread -lm -ldl
FF_LIBS  := $(shell pkg-config --libs $(FF_PKGS) 2>/dev/null)
LDFLAGS  := $(SANFLAGS)

# The Postgres build has its own objects (build/pg, build/<sanitizers>-pg) and binary
# (myloware-pg, myloware-<sanitizers>-pg): switching builds never mixes them.
PLAIN_BUILD := build
ifeq ($(WITH_POSTGRES),1)
CPPFLAGS += -DWITH_POSTGRES=1 $(shell pkg-config --cflags libpq)
LDLIBS   += $(shell pkg-config --libs libpq)
PLAIN_BUILD := build/pg
BUILD    := $(if $(SANITIZE),$(BUILD)-pg,build/pg)
endif

SRCS     := $(sort $(wildcard src/*/*.c src/*.c))
OBJS     := $(SRCS:%.c=$(BUILD)/%.o)
LLHTTP_OBJS := $(BUILD)/llhttp/llhttp.o $(BUILD)/llhttp/api.o $(BUILD)/llhttp/http.o
LIB      := $(BUILD)/libmyloware.a
BIN      := myloware$(if $(SANITIZE),-$(subst $(comma),-,$(SANITIZE)))$(if $(filter 1,$(WITH_POSTGRES)),-pg)

UNIT_SRCS := $(sort $(wildcard tests/unit/*/*.c))
INT_SRCS  := $(sort $(wildcard tests/integration/*.c))
SUPPORT_SRCS := $(sort $(wildcard tests/support/*.c))
TEST_BINS := $(UNIT_SRCS:%.c=$(BUILD)/%) $(INT_SRCS:%.c=$(BUILD)/%)
TEST_LIBS := $(shell pkg-config --libs criterion 2>/dev/null)
# the media unit tests make and check media with FFmpeg directly (the code under test uses ff.c)
$(BUILD)/tests/unit/media/%: TEST_LIBS += $(FF_LIBS)

.PHONY: all dev test test-bins unit integration demo fmt clean help bootstrap fuzz check-readme bench
all: $(BIN)

help:
	@echo "make            build ./myloware"
	@echo "make dev        build with -Werror"
	@echo "make test       install what is missing, build, run every test"
	@echo "make demo       install what is missing, build, run a whole video run with the fakes"
	@echo "make fuzz       build and run the HTTP request fuzzer (FUZZ_SECONDS=60)"
	@echo "make fmt        clang-format the sources"
	@echo "make SANITIZE=address,undefined|thread test   the tests under sanitizers"
	@echo "make WITH_POSTGRES=1   add the Postgres backend (./myloware-pg)"
	@echo "make WITH_POSTGRES=1 test-pg   the Postgres tests against a throwaway server"

bootstrap:
	$(Q)bash scripts/bootstrap.sh

dev:
	$(Q)$(MAKE) --no-print-directory WERROR=1 all

$(BIN): $(BUILD)/main.o $(LIB)
	@echo "  LINK    $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(LIB): $(OBJS) $(LLHTTP_OBJS)
	@echo "  AR      $@"
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

# The embedded files (schema.sql, openapi.json) are pulled in with .incbin.
$(BUILD)/src/core/embed.o: schema.sql openapi.json schema_pg.sql

# llhttp: Debian ships its C sources (node-llhttp); compiled here, untouched, without our warnings.
$(BUILD)/llhttp/%.o: $(LLHTTP_SRC)/%.c
	@mkdir -p $(dir $@)
	@echo "  CC      llhttp/$*.c"
	$(Q)$(CC) -I$(LLHTTP_INC) $(OPT) $(SANFLAGS) -w -c -o $@ $<

$(BUILD)/tests/support/%.o: tests/support/%.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CPPFLAGS) -Itests $(CFLAGS) -c -o $@ $<

$(BUILD)/tests/%: tests/%.c $(LIB) $(SUPPORT_SRCS:%.c=$(BUILD)/%.o)
	@mkdir -p $(dir $@)
	@echo "  TEST    $<"
	$(Q)$(CC) $(CPPFLAGS) -Itests $(CFLAGS) $(LDFLAGS) -o $@ $< $(SUPPORT_SRCS:%.c=$(BUILD)/%.o) $(LIB) $(TEST_LIBS) $(LDLIBS)

ifeq ($(SANITIZE),thread)
# Criterion cannot start under TSan (its shared arena collides with TSan's memory map), so the
# test binaries are built plain and drive the TSan-built server, which is where the threads are.
test: bootstrap
	$(Q)$(MAKE) --no-print-directory $(BIN)
	$(Q)$(MAKE) --no-print-directory SANITIZE= test-bins
	$(Q)TSAN_OPTIONS="$${TSAN_OPTIONS:-halt_on_error=1} suppressions=$(CURDIR)/tests/tsan.supp" \
	  MYLOWARE_TEST_SLOW=1 MYLOWARE_BIN=$(CURDIR)/$(BIN) bash scripts/run-tests.sh $(subst $(BUILD)/,$(PLAIN_BUILD)/,$(TEST_BINS))
else
test: bootstrap
	$(Q)$(MAKE) --no-print-directory $(BIN) $(TEST_BINS)
	$(Q)$(if $(SANITIZE),MYLOWARE_TEST_SLOW=1 )MYLOWARE_BIN=$(CURDIR)/$(BIN) bash scripts/run-tests.sh $(TEST_BINS)
	$(Q)bash scripts/check-readme.sh ./$(BIN)
	$(Q)bash scripts/check-openapi.sh ./$(BIN)
endif

test-bins: $(TEST_BINS)

# The Postgres tests (WITH_POSTGRES=1): the store and queue contract suites and the Postgres
# integration test against a throwaway server (scripts/pg-test.sh starts and removes it).
PG_TEST_BINS := $(BUILD)/tests/unit/db/test_run_store_contract $(BUILD)/tests/unit/queue/test_queue_contract \
                $(BUILD)/tests/integration/test_postgres
.PHONY: test-pg
test-pg: bootstrap
ifneq ($(WITH_POSTGRES),1)
	$(Q)echo "test-pg needs WITH_POSTGRES=1" >&2; exit 2
endif
ifeq ($(SANITIZE),thread)
	$(Q)$(MAKE) --no-print-directory $(BIN)
	$(Q)$(MAKE) --no-print-directory SANITIZE= $(subst $(BUILD)/,$(PLAIN_BUILD)/,$(PG_TEST_BINS))
	$(Q)TSAN_OPTIONS="$${TSAN_OPTIONS:-halt_on_error=1} suppressions=$(CURDIR)/tests/tsan.supp" \
	  MYLOWARE_TEST_SLOW=1 MYLOWARE_BIN=$(CURDIR)/$(BIN) bash scripts/pg-test.sh $(subst $(BUILD)/,$(PLAIN_BUILD)/,$(PG_TEST_BINS))
else
	$(Q)$(MAKE) --no-print-directory $(BIN) $(PG_TEST_BINS)
	$(Q)$(if $(SANITIZE),MYLOWARE_TEST_SLOW=1 )MYLOWARE_BIN=$(CURDIR)/$(BIN) bash scripts/pg-test.sh $(PG_TEST_BINS)
endif

demo: bootstrap
	$(Q)$(MAKE) --no-print-directory $(BIN)
	$(Q)bash scripts/demo.sh ./$(BIN)

fuzz: $(LIB)
	$(Q)bash scripts/fuzz.sh

fmt:
	$(Q)clang-format -i $(SRCS) main.c $(wildcard src/*/*.h) $(UNIT_SRCS) $(INT_SRCS) $(wildcard tests/support/*.[ch] tests/fuzz/*.c)

bench: $(BIN)
	$(Q)bash scripts/bench/http.sh

clean:
	rm -rf build myloware myloware-*

-include $(OBJS:.o=.d) $(BUILD)/main.d
