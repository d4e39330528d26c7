/*
 * cuda_backend.c - the CUDA backend module: the entry point
 * lgd_cuda_backend_open(), device/stream/cuBLAS set-up, memory and copies, GEMM,
 * error state, the operations table (the generic kernels are in ops_*.cu) and the
 * lookup of the module kernel tables (kernels_*.cu, listed in kernel_tables.h).
 *
 * The core loads this module with dlopen() (src/core/context.c) and calls
 * lgd_cuda_backend_open(), the only symbol it exports. Opening never aborts:
 * no driver, no device, a driver too old for this runtime, an index out of
 * range or a card this module has no code for all return non-zero with a
 * message in err.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_backend.h"
#include "kernel_tables.h"
#include "lgd_cuda_config.h"

#if LGD_HAVE_CUDNN
#include <cudnn.h>
#endif

#define LGD_CUDA_EXPORT __attribute__((visibility("default")))

/* ---- errors and helpers ---- */

void lgd_cuda_fail(lgd_backend *be, const char *fmt, ...)
{
    if (be->failed)
        return;
    be->failed = 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(be->error, sizeof be->error, fmt, ap);
    va_end(ap);
}

void lgd_cuda_note(lgd_backend *be, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(be->note, sizeof be->note, fmt, ap);
    va_end(ap);
}

int lgd_cuda_check(lgd_backend *be, cudaError_t e, const char *what)
{
    if (e == cudaSuccess)
        return 0;
    lgd_cuda_fail(be, "%s: %s (%s)", what, cudaGetErrorName(e), cudaGetErrorString(e));
    return 1;
}

int lgd_cuda_check_blas(lgd_backend *be, cublasStatus_t s, const char *what)
{
    if (s == CUBLAS_STATUS_SUCCESS)
        return 0;
    lgd_cuda_fail(be, "%s: %s", what, cublasGetStatusString(s));
    return 1;
}

void lgd_cuda_enter(lgd_backend *be)
{
    int current = -1;
    if (cudaGetDevice(&current) != cudaSuccess || current != be->device)
        lgd_cuda_check(be, cudaSetDevice(be->device), "cudaSetDevice");
}

unsigned lgd_cuda_blocks(const lgd_backend *be, size_t n, unsigned threads)
{
    size_t blocks = (n + threads - 1) / threads;
    size_t cap = (size_t)(be->sm_count > 0 ? be->sm_count : 16) * 16;
    if (blocks > cap)
        blocks = cap;
    return blocks ? (unsigned)blocks : 1u;
}

static void set_err(char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t err_len, const char *fmt, ...)
{
    if (!err || err_len == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
}

/* ---- vtable: identity, memory, copies ---- */

static const char *cu_name(lgd_backend *be) { return be->name; }

static void cu_destroy(lgd_backend *be)
{
    if (!be)
        return;
    if (be->stream) {
        lgd_cuda_enter(be);
        cudaStreamSynchronize(be->stream);
    }
    lgd_pool_release_all(be);
    lgd_cuda_conv_destroy(be);
#if LGD_HAVE_CUDNN
    if (be->dnn)
        cudnnDestroy((cudnnHandle_t)be->dnn);
#endif
    if (be->blas)
        cublasDestroy(be->blas);
    cudaFree(be->blas_workspace);
    cudaFree(be->flag_dev);
    if (be->flag_host)
        cudaFreeHost(be->flag_host);
    if (be->stream)
        cudaStreamDestroy(be->stream);
    (void)cudaGetLastError();
    free(be);
}

static void *cu_alloc(lgd_backend *be, size_t bytes)
{
    lgd_cuda_enter(be);
    return lgd_pool_alloc(be, bytes ? bytes : 1);
}

static void cu_free(lgd_backend *be, void *p)
{
    if (p)
        lgd_pool_free(be, p);
}

static int cu_upload(lgd_backend *be, void *dst, const void *src, size_t bytes)
{
    if (be->failed)
        return -1;
    if (bytes == 0)
        return 0;
    lgd_cuda_enter(be);
    /* synchronised: the source may be pinned memory that the caller reuses at once */
    if (lgd_cuda_check(be, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, be->stream),
                       "upload (cudaMemcpyAsync)") ||
        lgd_cuda_check(be, cudaStreamSynchronize(be->stream), "upload (synchronize)"))
        return -1;
    return 0;
}

static int cu_download(lgd_backend *be, void *dst, const void *src, size_t bytes)
{
    if (be->failed)
        return -1;
    if (bytes == 0)
        return 0;
    lgd_cuda_enter(be);
    if (lgd_cuda_check(be, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, be->stream),
                       "download (cudaMemcpyAsync)") ||
        lgd_cuda_check(be, cudaStreamSynchronize(be->stream), "download (synchronize)"))
        return -1;
    return 0;
}

static int cu_copy(lgd_backend *be, void *dst, const void *src, size_t bytes)
{
    if (be->failed)
        return -1;
    if (bytes == 0 || dst == src)
        return 0;
    lgd_cuda_enter(be);
    uintptr_t d = (uintptr_t)dst, s = (uintptr_t)src;
    if (d < s + bytes && s < d + bytes) { /* overlapping: memmove through a temporary */
        void *tmp = lgd_pool_alloc(be, bytes);
        if (!tmp)
            return lgd_cuda_check(be, cudaErrorMemoryAllocation, "copy (overlap temporary)"), -1;
        lgd_cuda_check(be, cudaMemcpyAsync(tmp, src, bytes, cudaMemcpyDeviceToDevice, be->stream),
                       "copy (cudaMemcpyAsync)");
        lgd_cuda_check(be, cudaMemcpyAsync(dst, tmp, bytes, cudaMemcpyDeviceToDevice, be->stream),
                       "copy (cudaMemcpyAsync)");
        lgd_pool_free(be, tmp); /* stream-ordered: safe to reuse */
        return be->failed ? -1 : 0;
    }
    if (lgd_cuda_check(be, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, be->stream),
                       "copy (cudaMemcpyAsync)"))
        return -1;
    return 0;
}

static int cu_synchronize(lgd_backend *be)
{
    lgd_cuda_enter(be);
    lgd_cuda_check(be, cudaStreamSynchronize(be->stream), "synchronize");
    return be->failed ? -1 : 0;
}

static void *cu_native_stream(lgd_backend *be) { return (void *)be->stream; }

/* The reason of the last failure: the sticky CUDA/cuBLAS/cuDNN error when there is one
 * (every later failure follows from it), else the last note (out of memory, ...). */
static const char *cu_last_error(lgd_backend *be)
{
    return be->failed ? be->error : be->note;
}

/* ---- the module kernel tables (kernel_tables.h) ---- */

typedef struct cuda_kernel_table {
    const char *name;
    uint32_t version;
    const void *table;
} cuda_kernel_table;

#define LGD_CUDA_TABLE_ENTRY(name, version, type, table) { name, version, &table },
static const cuda_kernel_table cuda_kernel_tables[] = {
    LGD_CUDA_KERNEL_TABLES(LGD_CUDA_TABLE_ENTRY)
};
#undef LGD_CUDA_TABLE_ENTRY

/* The table `name` when this module was built with the same version of the module's
 * interface, else NULL (the module then reports LGD_ERR_UNSUPPORTED). */
static const void *cu_kernels(lgd_backend *be, const char *name, uint32_t version)
{
    (void)be;
    if (!name)
        return NULL;
    for (size_t i = 0; i < sizeof cuda_kernel_tables / sizeof cuda_kernel_tables[0]; i++)
        if (strcmp(cuda_kernel_tables[i].name, name) == 0)
            return cuda_kernel_tables[i].version == version ? cuda_kernel_tables[i].table
                                                            : NULL;
    return NULL;
}

/* ---- GEMM ---- */

/* Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: the same call
 * with the operands swapped and M, N exchanged. */
static void cu_gemm(lgd_backend *be, int trans_a, int trans_b, size_t M, size_t N, size_t K,
                    float alpha, const float *A, size_t lda, const float *B, size_t ldb,
                    float beta, float *C, size_t ldc)
{
    if (M == 0 || N == 0)
        return;
    lgd_cuda_enter(be);
    if (M > INT_MAX || N > INT_MAX || K > INT_MAX || lda > INT_MAX || ldb > INT_MAX ||
        ldc > INT_MAX) {
        lgd_cuda_check(be, cudaErrorInvalidValue, "gemm: a dimension exceeds INT_MAX");
        return;
    }
    if (K == 0) { /* C = beta C; not left to cuBLAS, whose argument checks vary */
        lgd_cuda_scale_matrix(be, M, N, beta, C, ldc);
        return;
    }
    cublasOperation_t op_a = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t op_b = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    lgd_cuda_check_blas(be,
                        cublasSgemm(be->blas, op_b, op_a, (int)N, (int)M, (int)K, &alpha, B,
                                    (int)ldb, A, (int)lda, &beta, C, (int)ldc),
                        "gemm (cublasSgemm)");
}

/* The batched form: one cublasSgemmStridedBatched, mapped to column-major as above
 * (a stride of 0 shares one matrix between all products). */
int lgd_cuda_gemm_strided(lgd_backend *be, int trans_a, int trans_b, size_t M, size_t N,
                          size_t K, float alpha, const float *A, size_t lda, size_t stride_a,
                          const float *B, size_t ldb, size_t stride_b, float beta, float *C,
                          size_t ldc, size_t stride_c, size_t count)
{
    if (M == 0 || N == 0 || count == 0)
        return be->failed ? -1 : 0;
    lgd_cuda_enter(be);
    if (M > INT_MAX || N > INT_MAX || K > INT_MAX || lda > INT_MAX || ldb > INT_MAX ||
        ldc > INT_MAX || count > INT_MAX || stride_a > LLONG_MAX || stride_b > LLONG_MAX ||
        stride_c > LLONG_MAX) {
        lgd_cuda_check(be, cudaErrorInvalidValue, "gemm_batched: a dimension exceeds INT_MAX");
        return -1;
    }
    if (K == 0) {
        for (size_t i = 0; i < count; i++)
            lgd_cuda_scale_matrix(be, M, N, beta, C + i * stride_c, ldc);
        return be->failed ? -1 : 0;
    }
    cublasOperation_t op_a = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t op_b = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    if (lgd_cuda_check_blas(be,
                            cublasSgemmStridedBatched(be->blas, op_b, op_a, (int)N, (int)M,
                                                      (int)K, &alpha, B, (int)ldb,
                                                      (long long)stride_b, A, (int)lda,
                                                      (long long)stride_a, &beta, C, (int)ldc,
                                                      (long long)stride_c, (int)count),
                            "gemm_batched (cublasSgemmStridedBatched)"))
        return -1;
    return be->failed ? -1 : 0;
}

static void cu_gemm_batched(lgd_backend *be, int trans_a, int trans_b, size_t M, size_t N,
                            size_t K, float alpha, const float *A, size_t lda, size_t stride_a,
                            const float *B, size_t ldb, size_t stride_b, float beta, float *C,
                            size_t ldc, size_t stride_c, size_t count)
{
    (void)lgd_cuda_gemm_strided(be, trans_a, trans_b, M, N, K, alpha, A, lda, stride_a, B, ldb,
                                stride_b, beta, C, ldc, stride_c, count);
}

#if LGD_HAVE_CUDNN
void *lgd_cuda_dnn_handle(lgd_backend *be)
{
    if (!be->dnn) {
        cudnnHandle_t h = NULL;
        lgd_cuda_enter(be);
        if (cudnnCreate(&h) != CUDNN_STATUS_SUCCESS)
            return NULL;
        if (cudnnSetStream(h, be->stream) != CUDNN_STATUS_SUCCESS) {
            cudnnDestroy(h);
            return NULL;
        }
        be->dnn = h;
    }
    return be->dnn;
}
#endif

static const lgd_backend_ops cuda_ops = {
    .abi_version = LGD_BACKEND_ABI_VERSION,
    .name = cu_name,
    .host_memory = 0,
    .destroy = cu_destroy,
    .alloc = cu_alloc,
    .free = cu_free,
    .upload = cu_upload,
    .download = cu_download,
    .copy = cu_copy,
    .synchronize = cu_synchronize,
    .native_stream = cu_native_stream,
    .last_error = cu_last_error,
    .fill = lgd_cuda_fill,
    .axpby = lgd_cuda_axpby,
    .axpby_rows = lgd_cuda_axpby_rows,
    .sub_row = lgd_cuda_sub_row,
    .broadcast_axpy = lgd_cuda_broadcast_axpy,
    .inv_sqrt_scale = lgd_cuda_inv_sqrt_scale,
    .copy_rows = lgd_cuda_copy_rows,
    .transpose = lgd_cuda_transpose,
    .row_dot = lgd_cuda_row_dot,
    .softmax_rows = lgd_cuda_softmax_rows,
    .softmax_rows_backward = lgd_cuda_softmax_rows_backward,
    .logsumexp_rows = lgd_cuda_logsumexp_rows,
    .all_finite = lgd_cuda_all_finite,
    .finite_flag = lgd_cuda_finite_flag,
    .gemm = cu_gemm,
    .gemm_batched = cu_gemm_batched,
    .normal = lgd_cuda_normal,
    .normal_around = lgd_cuda_normal_around,
    .uniform = lgd_cuda_uniform,
    .categorical = lgd_cuda_categorical,
    .select_rows = lgd_cuda_select_rows,
    .kernels = cu_kernels,
};

/* ---- opening ---- */

/* Why cudaGetDeviceCount failed, in words. */
static void explain_no_device(cudaError_t e, char *err, size_t err_len)
{
    int driver = 0, runtime = 0;
    cudaDriverGetVersion(&driver);
    cudaRuntimeGetVersion(&runtime);
    (void)cudaGetLastError();
    const char *visible = getenv("CUDA_VISIBLE_DEVICES");
    switch (e) {
    case cudaErrorNoDevice:
        set_err(err, err_len, "no CUDA device is visible (driver supports CUDA %d.%d%s%s%s)",
                driver / 1000, driver % 1000 / 10, visible ? ", CUDA_VISIBLE_DEVICES=\"" : "",
                visible ? visible : "", visible ? "\"" : "");
        break;
    case cudaErrorInsufficientDriver:
        if (driver == 0)
            set_err(err, err_len,
                    "no NVIDIA driver is installed or it cannot be loaded (libcuda.so.1); "
                    "liblgd-cuda needs a driver for CUDA %d.%d or newer",
                    runtime / 1000, runtime % 1000 / 10);
        else
            set_err(err, err_len,
                    "the NVIDIA driver supports CUDA %d.%d, older than the CUDA %d.%d runtime "
                    "liblgd-cuda was built with: update the driver",
                    driver / 1000, driver % 1000 / 10, runtime / 1000, runtime % 1000 / 10);
        break;
    default:
        set_err(err, err_len, "cudaGetDeviceCount failed: %s (%s)", cudaGetErrorName(e),
                cudaGetErrorString(e));
        break;
    }
}

LGD_CUDA_EXPORT int lgd_cuda_backend_open(uint32_t abi_version, int device_index,
                                          lgd_backend **out_be, const lgd_backend_ops **out_ops,
                                          char *err, size_t err_len)
{
    set_err(err, err_len, "%s", "");
    if (!out_be || !out_ops) {
        set_err(err, err_len, "lgd_cuda_backend_open: out_be or out_ops is NULL");
        return -1;
    }
    *out_be = NULL;
    *out_ops = NULL;
    if (abi_version != LGD_BACKEND_ABI_VERSION) {
        set_err(err, err_len,
                "liblgd-cuda implements backend ABI %u but liblgd asks for %u: install the "
                "liblgd-cuda that was built with this liblgd",
                (unsigned)LGD_BACKEND_ABI_VERSION, (unsigned)abi_version);
        return -1;
    }
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
        explain_no_device(e, err, err_len);
        return -1;
    }
    if (count <= 0) {
        explain_no_device(cudaErrorNoDevice, err, err_len);
        return -1;
    }
    if (device_index < 0 || device_index >= count) {
        set_err(err, err_len, "device_index %d is out of range: %d CUDA device%s visible",
                device_index, count, count == 1 ? " is" : "s are");
        return -1;
    }
    e = cudaSetDevice(device_index);
    struct cudaDeviceProp prop;
    if (e == cudaSuccess)
        e = cudaGetDeviceProperties(&prop, device_index);
    if (e != cudaSuccess) {
        set_err(err, err_len, "cannot use CUDA device %d: %s (%s)", device_index,
                cudaGetErrorName(e), cudaGetErrorString(e));
        (void)cudaGetLastError();
        return -1;
    }

    lgd_backend *be = calloc(1, sizeof *be);
    if (!be) {
        set_err(err, err_len, "out of host memory");
        return -1;
    }
    be->device = device_index;
    be->sm_count = prop.multiProcessorCount;
    be->cc_major = prop.major;
    be->cc_minor = prop.minor;
    lgd_pool_init(&be->pool);
#if LGD_HAVE_CUDNN
    /* LGD_CUDA_CONV=im2col: convolutions without cuDNN (a cross-check of the fallback) */
    const char *conv = getenv("LGD_CUDA_CONV");
    be->conv_im2col = conv && strcmp(conv, "im2col") == 0;
#else
    be->conv_im2col = 1;
#endif
    be->conv_log = getenv("LGD_CUDA_CONV_LOG") != NULL;
    snprintf(be->name, sizeof be->name, "cuda (%.100s, cc %d.%d)", prop.name, prop.major,
             prop.minor);

    const char *step = "";
    cublasStatus_t bs = CUBLAS_STATUS_SUCCESS;
    if ((e = cudaStreamCreateWithFlags(&be->stream, cudaStreamNonBlocking)) != cudaSuccess) {
        step = "creating the stream";
        goto cuda_fail;
    }
    if ((e = cudaMalloc((void **)&be->flag_dev, 256)) != cudaSuccess ||
        (e = cudaMallocHost((void **)&be->flag_host, sizeof(int))) != cudaSuccess) {
        step = "allocating the flag buffers";
        goto cuda_fail;
    }
    if ((bs = cublasCreate(&be->blas)) != CUBLAS_STATUS_SUCCESS) {
        step = "cublasCreate";
        goto blas_fail;
    }
    /* cuBLAS's recommended workspace: 32 MiB on Hopper and newer, 4 MiB before.
     * Setting it (after the stream, which resets it) keeps cuBLAS from allocating. */
    be->blas_workspace_bytes = (size_t)(prop.major >= 9 ? 32 : 4) << 20;
    if ((e = cudaMalloc(&be->blas_workspace, be->blas_workspace_bytes)) != cudaSuccess) {
        step = "allocating the cuBLAS workspace";
        goto cuda_fail;
    }
    if ((bs = cublasSetStream(be->blas, be->stream)) != CUBLAS_STATUS_SUCCESS ||
        (bs = cublasSetWorkspace(be->blas, be->blas_workspace, be->blas_workspace_bytes)) !=
            CUBLAS_STATUS_SUCCESS ||
        (bs = cublasSetMathMode(be->blas, CUBLAS_DEFAULT_MATH)) != CUBLAS_STATUS_SUCCESS ||
        (bs = cublasSetPointerMode(be->blas, CUBLAS_POINTER_MODE_HOST)) !=
            CUBLAS_STATUS_SUCCESS) {
        step = "configuring cuBLAS";
        goto blas_fail;
    }
    /* Probe: run one kernel, so that a card this module has no code for fails here
     * with a clear message rather than at the first operation. */
    lgd_cuda_fill(be, (float *)be->flag_dev, 1, 1.0f);
    if (!be->failed)
        lgd_cuda_check(be, cudaStreamSynchronize(be->stream), "probe kernel");
    if (be->failed) {
        set_err(err, err_len,
                "cannot run liblgd-cuda's kernels on %s (compute capability %d.%d; the module "
                "has code for %s): %s",
                prop.name, prop.major, prop.minor, LGD_CUDA_ARCHS, be->error);
        cu_destroy(be);
        return -1;
    }
    *out_be = be;
    *out_ops = &cuda_ops;
    return 0;

cuda_fail:
    set_err(err, err_len, "CUDA device %d (%s): %s failed: %s (%s)", device_index, prop.name,
            step, cudaGetErrorName(e), cudaGetErrorString(e));
    cu_destroy(be);
    return -1;
blas_fail:
    set_err(err, err_len, "CUDA device %d (%s): %s failed: %s", device_index, prop.name, step,
            cublasGetStatusString(bs));
    cu_destroy(be);
    return -1;
}
