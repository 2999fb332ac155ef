/* fast_exp.h — moved to src/kernels/fast_exp.h with the elementwise kernels that use it; this
 * name stays for the code that includes it from here (cross_entropy.c, tests/test_gpt2.c). */
#include "../kernels/fast_exp.h"
