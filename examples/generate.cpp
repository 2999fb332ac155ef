// generate.cpp — the same library from C++: the public headers carry extern "C" guards, so
// linshard.h is included as is. Sizes a GPT-2 split over 2 ranks, then runs those 2 ranks as
// threads and sums a vector across them with one AllReduce (what every layer does).
#include <cstdio>
#include <vector>

#include "linshard/linshard.h"

static int rank_main(comm_t *comm, void *arg) {
    (void)arg;
    // Every rank contributes rank + 1 to each element: with P = 2 every element becomes 3.
    std::vector<float> v(1024, float(comm_rank(comm) + 1));
    int rc = comm_allreduce_sum(comm, v.data(), v.size(), "example");
    if (rc) return rc;
    for (float x : v)
        if (x != 3.0f) return comm_fail(comm, "rank %d: allreduce gave %g", comm_rank(comm), x);
    return 0;
}

int main() {
    char err[512];
    // GPT-2 small's shape: what each of 2 ranks holds, against the whole model.
    model_config cfg = model_config_gpt2(12, 768, 12, 50257, 1024, GELU_TANH);
    if (model_config_check(&cfg, err, sizeof(err)) ||
        model_config_check_tp(&cfg, 2, err, sizeof(err))) {
        std::fprintf(stderr, "generate_cpp: %s\n", err);
        return 1;
    }
    std::printf("linshard %s: GPT-2 small, %zu floats; rank 0 of 2 holds %zu\n", LINSHARD_VERSION,
                model_total_param_floats(&cfg), model_rank_param_floats(&cfg, 2, 0));
    if (comm_launch(COMM_BACKEND_THREADS, 2, rank_main, nullptr, err, sizeof(err))) {
        std::fprintf(stderr, "generate_cpp: %s\n", err);
        return 1;
    }
    std::printf("allreduce over 2 threads: ok\n");
    return 0;
}
