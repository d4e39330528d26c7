/*
 * sample_mpi_none.c - the ranks of lgd sample in a build without MPI (meson -Dmpi=disabled,
 * or no MPI found): one process, the interface of sample_mpi.c. Started by an MPI launcher
 * anyway, it refuses to run rather than have every process write the same file.
 */
#include <stdlib.h>
#include <string.h>

#include "sample.h"

int sample_par_built(void)
{
    return 0;
}

int sample_par_init(sample_par *p, int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    memset(p, 0, sizeof *p);
    p->size = 1;
    if (sample_par_launched())
        return sample_run_error("this lgd was built without MPI (meson -Dmpi=enabled needs "
                                "libopenmpi-dev): run it without mpirun, or split the run "
                                "with --rows A:B");
    return 0;
}

void sample_par_finalize(sample_par *p)
{
    (void)p;
}

int sample_par_agree(const sample_par *p, int ok)
{
    (void)p;
    return ok ? -1 : 0;
}

double sample_par_max(const sample_par *p, double v)
{
    (void)p;
    return v;
}

int sample_par_reduce_diag(const sample_par *p, sample_diag *d)
{
    (void)p;
    (void)d;
    return 0;
}

int sample_par_write_npy(const sample_par *p, const char *tmp_path, const char *header,
                         size_t len, const float *x, int64_t first, int64_t rows,
                         size_t row_bytes)
{
    (void)p;
    (void)tmp_path;
    (void)header;
    (void)len;
    (void)x;
    (void)first;
    (void)rows;
    (void)row_bytes;
    return sample_run_error("internal error: MPI-IO in a build without MPI");
}

int sample_par_gather_head(const sample_par *p, const float *x, int64_t first, int64_t rows,
                           int64_t dim, int64_t n, float *out)
{
    (void)p;
    (void)first;
    (void)rows;
    memcpy(out, x, (size_t)n * (size_t)dim * sizeof *out);
    return 0;
}
