/* linshard.h — the library's umbrella header. */
#ifndef LINSHARD_H
#define LINSHARD_H

#define LINSHARD_VERSION "0.1.0"

#include "linshard/comm.h"
#include "linshard/comm_selftest.h"
#include "linshard/ledger.h"
#include "linshard/split.h"
#include "linshard/timer.h"

#endif
