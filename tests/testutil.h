/*
 * testutil.h - helpers shared by the Check suites.
 */
#ifndef LGD_TESTUTIL_H
#define LGD_TESTUTIL_H

#include <check.h>
#include <stddef.h>
#include <stdint.h>

#include "lgd/lgd.h"

/* A CPU context with the given thread count (0 = default); fails the test on error. */
lgd_context *tu_context(int threads);
/* A [batch][dim] tensor filled from host (host may be NULL: zeros). */
lgd_tensor *tu_tensor(lgd_context *ctx, int64_t batch, int64_t dim, const float *host);
/* A tensor of any shape filled from host (NULL: zeros). */
lgd_tensor *tu_tensor_nd(lgd_context *ctx, int ndim, const int64_t *shape, const float *host);
/* Downloads a tensor into a new malloc'd array (caller frees). */
float *tu_download(const lgd_tensor *t);
/* Deterministic pseudo-random doubles (splitmix64) for test inputs. */
typedef struct tu_rng { uint64_t s; } tu_rng;
double tu_uniform(tu_rng *r);              /* [0, 1) */
double tu_normal(tu_rng *r);               /* N(0, 1) */
void tu_fill_normal(tu_rng *r, float *x, size_t n, float scale);
/* malloc'd floats / calloc'd doubles (at least one element); fail the test when out of
 * memory. tu_randn: n floats of scale * N(0, 1) from r. Caller frees. */
float *tu_fvec(size_t n);
double *tu_dvec(size_t n);
float *tu_randn(tu_rng *r, size_t n, float scale);
/* LGD_TEST_QUICK set and not "0" (the valgrind pass): tests leave out their big cases. */
int tu_quick(void);
/* max |a - b| / (atol + rtol * |b|) over n entries; <= 1 means "close". */
double tu_max_scaled_err(const float *a, const float *b, size_t n, double atol, double rtol);
/* ck_assert with the context's last error in the message. */
#define TU_OK(ctx, call)                                                                    \
    do {                                                                                    \
        lgd_status tu_st_ = (call);                                                         \
        ck_assert_msg(tu_st_ == LGD_OK, "%s -> %d (%s): %s", #call, (int)tu_st_,            \
                      lgd_status_string(tu_st_), lgd_context_last_error(ctx));              \
    } while (0)
/* Asserts a status and that the context has a non-empty error message. */
#define TU_FAILS(ctx, expected, call)                                                       \
    do {                                                                                    \
        lgd_context_clear_error(ctx);                                                       \
        lgd_status tu_st_ = (call);                                                         \
        ck_assert_msg(tu_st_ == (expected), "%s -> %d, expected %d (%s)", #call, (int)tu_st_, \
                      (int)(expected), lgd_context_last_error(ctx));                        \
        ck_assert_msg(lgd_context_last_error(ctx)[0] != '\0', "%s: no error message", #call); \
    } while (0)

/* Runs a suite (CK_FORK as the environment says); returns the process exit code. */
int tu_run(Suite *s);

#endif
