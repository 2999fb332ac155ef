/* linshard.h — the library's umbrella header: the whole public API, usable from C and C++
 * (every header carries its own extern "C" guard). Link with -llinshard (pkg-config linshard,
 * or find_package(linshard) and the target linshard::linshard). */
#ifndef LINSHARD_H
#define LINSHARD_H

#define LINSHARD_VERSION "0.1.0"

#include "linshard/atomic_file.h"
#include "linshard/chat.h"
#include "linshard/checkpoint.h"
#include "linshard/comm.h"
#include "linshard/comm_selftest.h"
#include "linshard/gguf.h"
#include "linshard/kernels.h"
#include "linshard/lab.h"
#include "linshard/layers.h"
#include "linshard/layers_backward.h"
#include "linshard/ledger.h"
#include "linshard/loss.h"
#include "linshard/model.h"
#include "linshard/model_gguf.h"
#include "linshard/model_source.h"
#include "linshard/params.h"
#include "linshard/plan.h"
#include "linshard/safetensors.h"
#include "linshard/safetensors_set.h"
#include "linshard/sampling.h"
#include "linshard/session.h"
#include "linshard/split.h"
#include "linshard/timer.h"
#include "linshard/tokenizer.h"
#include "linshard/train.h"

#endif
