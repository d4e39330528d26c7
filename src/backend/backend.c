/*
 * backend.c - the check every backend table passes before the core uses it.
 */
#include <stddef.h>

#include "backend/backend.h"

const char *lgd_backend_ops_check(const lgd_backend_ops *o)
{
    if (!o)
        return "the backend returned no operations table";
    if (o->abi_version != LGD_BACKEND_ABI_VERSION)
        return o->abi_version < LGD_BACKEND_ABI_VERSION
                   ? "the backend was built for an older backend interface (ABI version)"
                   : "the backend was built for a newer backend interface (ABI version)";
    /* the mandatory slots, in table order (backend.h marks the optional ones) */
#define LGD_REQUIRE(slot) \
    if (!o->slot)         \
        return "the backend's operations table lacks the mandatory operation '" #slot "'";
    LGD_REQUIRE(name) LGD_REQUIRE(destroy) LGD_REQUIRE(alloc) LGD_REQUIRE(free)
    LGD_REQUIRE(upload) LGD_REQUIRE(download) LGD_REQUIRE(copy) LGD_REQUIRE(synchronize)
    LGD_REQUIRE(fill) LGD_REQUIRE(axpby) LGD_REQUIRE(axpby_rows) LGD_REQUIRE(sub_row)
    LGD_REQUIRE(broadcast_axpy) LGD_REQUIRE(inv_sqrt_scale) LGD_REQUIRE(copy_rows)
    LGD_REQUIRE(transpose) LGD_REQUIRE(row_dot) LGD_REQUIRE(softmax_rows) LGD_REQUIRE(softmax_rows_backward)
    LGD_REQUIRE(logsumexp_rows) LGD_REQUIRE(all_finite) LGD_REQUIRE(finite_flag)
    LGD_REQUIRE(gemm) LGD_REQUIRE(normal) LGD_REQUIRE(normal_around) LGD_REQUIRE(uniform)
    LGD_REQUIRE(categorical) LGD_REQUIRE(select_rows)
#undef LGD_REQUIRE
    return NULL;
}
