/*
 * sample_mpi.c - the ranks of lgd sample with MPI (meson -Dmpi=enabled or auto with MPI
 * found; docs/scale-out.md). The run's rows are split into one contiguous block per rank
 * (sample.c); this file holds what the ranks do together:
 *   - start: MPI only when an MPI launcher started the process (otherwise the tool runs as
 *     one process, as a build without MPI does); the local rank (MPI_Comm_split_type,
 *     MPI_COMM_TYPE_SHARED) picks the GPU;
 *   - agreement: after each phase every rank says whether it succeeded, so that no rank
 *     waits in a collective call for one that has failed;
 *   - the diagnostics summed on rank 0, the first rows gathered on rank 0 (PNG);
 *   - the .npy file written with MPI-IO: rank 0 writes the header, every rank its block at
 *     its offset (MPI_File_write_at_all), so no rank holds more than its own block.
 * sample_mpi_none.c is the same interface without MPI.
 */
#include <limits.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sample.h"

/* The most bytes of one MPI-IO call (counts are int). */
#define IO_CHUNK ((int64_t)1 << 30)

int sample_par_built(void)
{
    return 1;
}

int sample_par_init(sample_par *p, int *argc, char ***argv)
{
    memset(p, 0, sizeof *p);
    p->size = 1;
    if (!sample_par_launched())
        return 0;
    int provided = 0;
    /* the library runs OpenMP threads inside calls made by the main thread only */
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return sample_run_error("MPI_Init_thread failed");
    p->mpi = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &p->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &p->size);
    MPI_Comm node;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, p->rank, MPI_INFO_NULL,
                            &node) == MPI_SUCCESS) {
        MPI_Comm_rank(node, &p->local_rank);
        MPI_Comm_free(&node);
    }
    return 0;
}

void sample_par_finalize(sample_par *p)
{
    if (p->mpi)
        MPI_Finalize();
    p->mpi = 0;
}

int sample_par_agree(const sample_par *p, int ok)
{
    if (!p->mpi)
        return ok ? -1 : 0;
    int mine = ok ? INT_MAX : p->rank, lowest = 0;
    MPI_Allreduce(&mine, &lowest, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    return lowest == INT_MAX ? -1 : lowest;
}

double sample_par_max(const sample_par *p, double v)
{
    double most = v;
    if (p->mpi)
        MPI_Allreduce(&v, &most, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    return most;
}

int sample_par_reduce_diag(const sample_par *p, sample_diag *d)
{
    if (!p->mpi)
        return 0;
    double *sums[] = { d->rows, d->sum_loss, d->sum_ess, d->sum_grad_norm, d->sum_lambda,
                       d->active_rows };
    int bad = 0;
    for (size_t k = 0; k < sizeof sums / sizeof sums[0]; k++)
        bad |= MPI_Reduce(p->rank ? sums[k] : MPI_IN_PLACE, sums[k], d->steps, MPI_DOUBLE,
                          MPI_SUM, 0, MPI_COMM_WORLD) != MPI_SUCCESS;
    bad |= MPI_Reduce(p->rank ? d->min_ess : MPI_IN_PLACE, d->min_ess, d->steps, MPI_DOUBLE,
                      MPI_MIN, 0, MPI_COMM_WORLD) != MPI_SUCCESS;
    return sample_par_agree(p, !bad) < 0 ? 0 : TOOL_EXIT_ERROR;
}

/* An MPI error code as text. */
static const char *mpi_text(int code, char *buf)
{
    int len = 0;
    if (MPI_Error_string(code, buf, &len) != MPI_SUCCESS)
        snprintf(buf, MPI_MAX_ERROR_STRING, "MPI error %d", code);
    return buf;
}

/* This rank's rows at their offset, in collective calls of at most IO_CHUNK bytes (every
 * rank makes as many calls as the rank with the most). MPI_SUCCESS or an error code. */
static int write_rows(MPI_File fh, MPI_Offset at, const char *data, int64_t bytes)
{
    int64_t calls = (bytes + IO_CHUNK - 1) / IO_CHUNK, most = 0;
    MPI_Allreduce(&calls, &most, 1, MPI_INT64_T, MPI_MAX, MPI_COMM_WORLD);
    int err = MPI_SUCCESS;
    for (int64_t k = 0; k < most; k++) {
        int64_t off = k * IO_CHUNK, n = bytes - off;
        if (n < 0)
            n = 0;
        if (n > IO_CHUNK)
            n = IO_CHUNK;
        MPI_Status status;
        /* a rank that failed before still joins the collective call, with nothing */
        int e = MPI_File_write_at_all(fh, at + off, data + (n ? off : 0),
                                      err == MPI_SUCCESS ? (int)n : 0, MPI_BYTE, &status);
        if (err == MPI_SUCCESS)
            err = e;
    }
    return err;
}

int sample_par_write_npy(const sample_par *p, const char *tmp_path, const char *header,
                         size_t len, const float *x, int64_t first, int64_t rows,
                         size_t row_bytes)
{
    char text[MPI_MAX_ERROR_STRING];
    MPI_File fh;
    int64_t total = 0, header_len = (int64_t)len; /* the header is rank 0's */
    MPI_Allreduce(&rows, &total, 1, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
    MPI_Bcast(&header_len, 1, MPI_INT64_T, 0, MPI_COMM_WORLD);
    len = (size_t)header_len;
    /* MPI_MODE_CREATE without EXCL: a stale temporary is cut to size below */
    int e = MPI_File_open(MPI_COMM_WORLD, tmp_path, MPI_MODE_CREATE | MPI_MODE_WRONLY,
                          MPI_INFO_NULL, &fh);
    if (sample_par_agree(p, e == MPI_SUCCESS) >= 0) {
        if (e != MPI_SUCCESS)
            sample_run_error("cannot open %s (MPI-IO): %s", tmp_path, mpi_text(e, text));
        if (e == MPI_SUCCESS)
            MPI_File_close(&fh);
        return TOOL_EXIT_ERROR;
    }
    const MPI_Offset size = (MPI_Offset)len + (MPI_Offset)total * (MPI_Offset)row_bytes;
    e = MPI_File_set_size(fh, size);
    if (e == MPI_SUCCESS && p->rank == 0) {
        MPI_Status status;
        e = MPI_File_write_at(fh, 0, header, (int)len, MPI_BYTE, &status);
    }
    int e2 = write_rows(fh, (MPI_Offset)len + (MPI_Offset)first * (MPI_Offset)row_bytes,
                        (const char *)x, rows * (int64_t)row_bytes);
    if (e == MPI_SUCCESS)
        e = e2;
    int e3 = MPI_File_close(&fh);
    if (e == MPI_SUCCESS)
        e = e3;
    if (e != MPI_SUCCESS)
        sample_run_error("cannot write %s (MPI-IO, rank %d): %s", tmp_path, p->rank,
                         mpi_text(e, text));
    if (sample_par_agree(p, e == MPI_SUCCESS) < 0)
        return 0;
    if (p->rank == 0)
        unlink(tmp_path);
    return TOOL_EXIT_ERROR;
}

int sample_par_gather_head(const sample_par *p, const float *x, int64_t first, int64_t rows,
                           int64_t dim, int64_t n, float *out)
{
    if (!p->mpi) {
        memcpy(out, x, (size_t)n * (size_t)dim * sizeof *out);
        return 0;
    }
    if (n * dim > INT_MAX)
        return p->rank ? TOOL_EXIT_ERROR
                       : sample_run_error("the PNG's %lld samples of %lld floats are too many "
                                          "for one MPI message", (long long)n, (long long)dim);
    int64_t lo = first > 0 ? first : 0, hi = first + rows < n ? first + rows : n;
    int count = hi > lo ? (int)((hi - lo) * dim) : 0, displ = hi > lo ? (int)(lo * dim) : 0;
    int *counts = NULL, *displs = NULL;
    if (p->rank == 0) {
        counts = malloc((size_t)p->size * sizeof *counts);
        displs = malloc((size_t)p->size * sizeof *displs);
    }
    int ok = p->rank != 0 || (counts && displs);
    if (sample_par_agree(p, ok) >= 0) {
        free(counts);
        free(displs);
        return p->rank == 0 ? tool_out_of_memory(CMD) : TOOL_EXIT_ERROR;
    }
    MPI_Gather(&count, 1, MPI_INT, counts, 1, MPI_INT, 0, MPI_COMM_WORLD);
    MPI_Gather(&displ, 1, MPI_INT, displs, 1, MPI_INT, 0, MPI_COMM_WORLD);
    const float *send = x + (hi > lo ? (lo - first) * dim : 0);
    int e = MPI_Gatherv(send, count, MPI_FLOAT, out, counts, displs, MPI_FLOAT, 0,
                        MPI_COMM_WORLD);
    free(counts);
    free(displs);
    return sample_par_agree(p, e == MPI_SUCCESS) < 0 ? 0 : TOOL_EXIT_ERROR;
}
