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
	  --inline-suppr --std=c11 -Iinclude src tests fuzz tools

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

# ---- fuzzing (fuzz/; clang + libFuzzer) -----------------------------------------------------
# Builds every harness in build-fuzz and runs each for FUZZ_SECONDS over its committed seeds
# (fuzz/corpus/<name>, read only) and dictionary (fuzz/<name>.dict); new inputs collect in
# build-fuzz/corpus/<name>, a crashing input is written to build-fuzz/artifacts/ and stops the
# run. `make test` replays the seeds and fuzz/regressions/ without clang (label "fuzz").
FUZZ_SECONDS ?= 60
FUZZ_HARNESSES ?= safetensors:safetensors safetensors_index:index model_config:config \
  tokenizer:tokenizer trainer_state:trainer_state tokenizer_text:tokenizer_text gguf:gguf

.PHONY: fuzz
fuzz: deps
	@CC=clang cmake -S . -B build-fuzz -DLINSHARD_FUZZ=ON -DLINSHARD_MPI=OFF >/dev/null
	@cmake --build build-fuzz -j $(JOBS) --target $(foreach h,$(FUZZ_HARNESSES),fuzz_$(firstword $(subst :, ,$(h))))
	@mkdir -p build-fuzz/artifacts
	@set -e; for pair in $(FUZZ_HARNESSES); do \
	  h=$${pair%%:*}; c=$${pair#*:}; mkdir -p build-fuzz/corpus/$$c; \
	  echo "== fuzz_$$h: $(FUZZ_SECONDS) s"; \
	  build-fuzz/fuzz/fuzz_$$h -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	    -dict=fuzz/$$c.dict -artifact_prefix=build-fuzz/artifacts/fuzz_$$h- \
	    build-fuzz/corpus/$$c fuzz/corpus/$$c 2>build-fuzz/fuzz_$$h.log \
	    || { tail -n 40 build-fuzz/fuzz_$$h.log; echo "fuzz_$$h found a bug: build-fuzz/artifacts/"; exit 1; }; \
	  grep -E '^stat::number_of_executed_units|^Done' build-fuzz/fuzz_$$h.log || true; \
	done
