/*
 * kernels.h - how a module finds its own backend kernels.
 *
 * A module whose math needs kernels of its own (the Gaussian mixture's eigenvalue
 * filters, the built-in losses, the guidance's Monte Carlo reductions, the network
 * layers) declares them as a small struct of function pointers in a header beside
 * its code, versioned on its own, and one descriptor:
 *
 *     static const lgd_kernel_table lgd_gmm_kernel_table = {
 *         "gmm", LGD_GMM_KERNELS_VERSION, &lgd_gmm_kernels_cpu };
 *
 * The CPU backend's table comes with the descriptor (the reference implementation,
 * compiled into liblgd); any other backend is asked by name and version through its
 * `kernels` slot (backend/backend.h), so the CUDA module returns its own table for
 * "gmm" version 1, or NULL when it was built without it, and the module then fails
 * with LGD_ERR_UNSUPPORTED and a message instead of calling something missing.
 *
 * A table's layout follows the ABI rules of the backend table: slots are only
 * appended, and a change of meaning bumps its version.
 */
#ifndef LGD_KERNELS_H
#define LGD_KERNELS_H

#include <stdint.h>

typedef struct lgd_context lgd_context;

typedef struct lgd_kernel_table {
    const char *name;  /* "gmm", "loss_builtin", ... */
    uint32_t version;  /* the module's interface version */
    const void *cpu;   /* the CPU backend's table */
} lgd_kernel_table;

/* The context's backend's table for `table` into *out; LGD_ERR_UNSUPPORTED with a
 * message naming the backend, the table and its version when the backend has none.
 * `what` names the caller for the message (e.g. "lgd_model_create_gmm"). */
int lgd_kernels_find(lgd_context *ctx, const lgd_kernel_table *table, const char *what,
                     const void **out);

#endif
