/* compare.h — the tests' worst-difference helpers, NaN-aware.
 *
 * fmax(worst, fabs(a - b)) drops NaN (fmax returns the other operand), so a NaN logit leaves
 * the worst difference untouched and the comparison passes. max_keep_nan returns NaN as soon as
 * either operand is NaN, and "worst <= tol" is then false. */
#ifndef LINSHARD_TESTS_COMPARE_H
#define LINSHARD_TESTS_COMPARE_H

#include <math.h>
#include <stddef.h>

static inline double max_keep_nan(double a, double b) {
    return isnan(a) || isnan(b) ? NAN : (a > b ? a : b);
}

/* Largest |x[i]|, NaN if any x[i] is NaN (an infinity gives inf). */
static inline double max_abs_d(const double *x, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = max_keep_nan(m, fabs(x[i]));
    return m;
}

/* Largest |got[i] - ref[i]|, NaN if any difference is NaN (inf - inf included). */
static inline double max_diff_fd(const float *got, const double *ref, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = max_keep_nan(m, fabs((double)got[i] - ref[i]));
    return m;
}

/* worst <= tol * scale, and both finite: a NaN or infinite logit never passes. */
static inline int within_tol(double worst, double tol, double scale) {
    return isfinite(worst) && isfinite(scale) && worst <= tol * scale;
}

#endif
