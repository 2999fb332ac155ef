# A thin wrapper over CMake/CTest. The two set-up commands of the README:
#   make run    install what is missing, build, run the main job (linshard generate, split
#               over 2 ranks)
#   make test   install what is missing, build, run every test
BUILD ?= build
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_FLAGS ?=
# No "Entering directory" lines from the make that CMake runs underneath.
MAKEFLAGS += --no-print-directory
# CI (which sets CI=true) builds with warnings as errors.
ifeq ($(CI),true)
CMAKE_FLAGS += -DLINSHARD_WERROR=ON
endif

.PHONY: all deps build run test test-asan test-tsan bench format format-check lint clean

all: build

deps:
	@bash scripts/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

# The default model split over 2 ranks: the same text as 1 rank, the split shown by the figures.
run: build
	@./$(BUILD)/linshard generate --tp 2

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# ASan + UBSan: every test (the big 2^20+3 sizes included).
test-asan: deps
	@cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DLINSHARD_SANITIZE=address -DLINSHARD_WERROR=ON >/dev/null
	@cmake --build build-asan -j $(JOBS)
	cd build-asan && ctest --output-on-failure -j $(JOBS)

# TSan: the threads backend's tests (MPI's own libraries are not TSan-instrumented).
test-tsan: deps
	@cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=Debug -DLINSHARD_SANITIZE=thread -DLINSHARD_WERROR=ON >/dev/null
	@cmake --build build-tsan -j $(JOBS)
	cd build-tsan && ctest --output-on-failure -L threads -j $(JOBS)

bench: build
	cmake --build $(BUILD) --target bench

format:
	clang-format -i $$(git ls-files --cached --others --exclude-standard '*.c' '*.h')

format-check:
	clang-format --dry-run --Werror $$(git ls-files --cached --others --exclude-standard '*.c' '*.h')

lint: build
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
	  --inline-suppr --std=c11 -Iinclude src tests

clean:
	rm -rf $(BUILD) build-asan build-tsan

# ---- install (issue 10) ---------------------------------------------------------------------
#   make install [PREFIX=/usr/local]   the libraries, headers, program, linshard.pc, CMake package
#   make test-install                  install into a temporary prefix, build and run examples/
PREFIX ?= /usr/local
.PHONY: install test-install

install: build
	cmake --install $(BUILD) --prefix $(PREFIX)

test-install: build
	bash scripts/test-install.sh $(BUILD)
