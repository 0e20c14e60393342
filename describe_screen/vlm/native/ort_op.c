/* Q4MatMul (domain describe_screen): our 4-bit product (q4.h) as an onnxruntime custom operator, in C.
 *
 *   Y[..., N] = A[..., K] x the 4-bit weights W [N/16, K/32, 256], scales S [N/16, K/32, 16] and zero points
 *   Z [N/16, K/32, 16] (describe_screen.vlm.q4pack writes them from MatMulNBits'); attributes K and N.
 *
 * No onnxruntime headers ship with its Python wheel, so this file declares the few parts of the C ABI it uses,
 * written from the documentation in onnxruntime's include/onnxruntime/core/session/onnxruntime_c_api.h
 * (OrtApi, OrtApiBase, OrtCustomOp) and core/session/custom_ops.cc (which OrtCustomOp fields ORT reads for
 * which version). The OrtApi table only ever grows at its end, so a function's position in it never changes:
 * it is declared here as an array of function pointers, indexed by the constants below.
 *
 * We ask for API version 17 (onnxruntime 1.17), the first with KernelContext_ParallelFor, so that any
 * onnxruntime from 1.17 on loads us; our OrtCustomOp says version 17 as well, and fills the fields ORT reads
 * for it: up to GetStartVersion/GetEndVersion (NULL: since opset 1 of our domain).
 */
#define _POSIX_C_SOURCE 200809L  /* sysconf */
#define _DARWIN_C_SOURCE          /* macOS hides _SC_NPROCESSORS_ONLN under strict POSIX */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "q4.h"

#ifdef _WIN32
#include <windows.h>
#define ORT_CALL __stdcall
#define EXPORT __declspec(dllexport)
#else
#include <unistd.h>
#define ORT_CALL
#define EXPORT __attribute__((visibility("default")))
#endif

enum { API_VERSION = 17 };

/* Opaque ORT objects. */
typedef struct OrtStatus OrtStatus;
typedef struct OrtSessionOptions OrtSessionOptions;
typedef struct OrtCustomOpDomain OrtCustomOpDomain;
typedef struct OrtKernelInfo OrtKernelInfo;
typedef struct OrtKernelContext OrtKernelContext;
typedef struct OrtValue OrtValue;
typedef struct OrtTensorTypeAndShapeInfo OrtTensorTypeAndShapeInfo;

enum { ORT_FAIL = 1, ORT_INVALID_ARGUMENT = 2 };                             /* OrtErrorCode */
enum { TENSOR_FLOAT = 1, TENSOR_UINT8 = 2 };                                 /* ONNXTensorElementDataType */
enum { INPUT_OUTPUT_REQUIRED = 0 };                                          /* OrtCustomOpInputOutputCharacteristic */
enum { MEM_TYPE_DEFAULT = 0 };                                               /* OrtMemType */

/* The OrtApi table: positions of the functions we call. */
typedef void (*OrtFunction)(void);
typedef OrtFunction OrtApi;
enum {
    CREATE_STATUS = 0,                     /* CreateStatus(OrtErrorCode, const char *) -> OrtStatus * */
    CREATE_CUSTOM_OP_DOMAIN = 26,          /* CreateCustomOpDomain(const char *, OrtCustomOpDomain **) */
    CUSTOM_OP_DOMAIN_ADD = 27,             /* CustomOpDomain_Add(OrtCustomOpDomain *, const OrtCustomOp *) */
    ADD_CUSTOM_OP_DOMAIN = 28,             /* AddCustomOpDomain(OrtSessionOptions *, OrtCustomOpDomain *) */
    GET_TENSOR_MUTABLE_DATA = 51,          /* GetTensorMutableData(OrtValue *, void **) */
    GET_DIMENSIONS_COUNT = 61,             /* GetDimensionsCount(const OrtTensorTypeAndShapeInfo *, size_t *) */
    GET_DIMENSIONS = 62,                   /* GetDimensions(const OrtTensorTypeAndShapeInfo *, int64_t *, size_t) */
    GET_TENSOR_TYPE_AND_SHAPE = 65,        /* GetTensorTypeAndShape(const OrtValue *, OrtTensorTypeAndShapeInfo **) */
    KERNEL_INFO_GET_ATTRIBUTE_INT64 = 86,  /* KernelInfoGetAttribute_int64(const OrtKernelInfo *, const char *, int64_t *) */
    KERNEL_CONTEXT_GET_INPUT = 90,         /* KernelContext_GetInput(const OrtKernelContext *, size_t, const OrtValue **) */
    KERNEL_CONTEXT_GET_OUTPUT = 91,        /* KernelContext_GetOutput(OrtKernelContext *, size_t, const int64_t *, size_t,
                                                                      OrtValue **) */
    RELEASE_TENSOR_TYPE_AND_SHAPE_INFO = 99, /* ReleaseTensorTypeAndShapeInfo(OrtTensorTypeAndShapeInfo *) */
    KERNEL_CONTEXT_PARALLEL_FOR = 274,     /* KernelContext_ParallelFor(const OrtKernelContext *, void (*)(void *, size_t),
                                                                        size_t total, size_t num_batch, void *) (1.17) */
};

typedef struct OrtApiBase {
    const OrtApi *(ORT_CALL *GetApi)(uint32_t version);  /* NULL when this onnxruntime lacks that version */
    const char *(ORT_CALL *GetVersionString)(void);
} OrtApiBase;

/* Typed calls through the table. */
#define API_CALL(api, index, type) ((type)(api)[index])
typedef OrtStatus *(ORT_CALL *CreateStatusFn)(int, const char *);
typedef OrtStatus *(ORT_CALL *CreateDomainFn)(const char *, OrtCustomOpDomain **);
typedef OrtStatus *(ORT_CALL *DomainAddFn)(OrtCustomOpDomain *, const void *);
typedef OrtStatus *(ORT_CALL *AddDomainFn)(OrtSessionOptions *, OrtCustomOpDomain *);
typedef OrtStatus *(ORT_CALL *MutableDataFn)(OrtValue *, void **);
typedef OrtStatus *(ORT_CALL *DimensionsCountFn)(const OrtTensorTypeAndShapeInfo *, size_t *);
typedef OrtStatus *(ORT_CALL *DimensionsFn)(const OrtTensorTypeAndShapeInfo *, int64_t *, size_t);
typedef OrtStatus *(ORT_CALL *TypeAndShapeFn)(const OrtValue *, OrtTensorTypeAndShapeInfo **);
typedef OrtStatus *(ORT_CALL *AttributeInt64Fn)(const OrtKernelInfo *, const char *, int64_t *);
typedef OrtStatus *(ORT_CALL *GetInputFn)(const OrtKernelContext *, size_t, const OrtValue **);
typedef OrtStatus *(ORT_CALL *GetOutputFn)(OrtKernelContext *, size_t, const int64_t *, size_t, OrtValue **);
typedef void(ORT_CALL *ReleaseShapeFn)(OrtTensorTypeAndShapeInfo *);
typedef OrtStatus *(ORT_CALL *ParallelForFn)(const OrtKernelContext *, void (*)(void *, size_t), size_t, size_t,
                                             void *);

/* OrtCustomOp, field for field up to version 17's GetEndVersion; the four fields later versions added follow,
 * zero, so that no onnxruntime finds garbage there. */
typedef struct OrtCustomOp OrtCustomOp;
struct OrtCustomOp {
    uint32_t version;
    void *(ORT_CALL *CreateKernel)(const OrtCustomOp *, const OrtApi *, const OrtKernelInfo *);
    const char *(ORT_CALL *GetName)(const OrtCustomOp *);
    const char *(ORT_CALL *GetExecutionProviderType)(const OrtCustomOp *);
    int(ORT_CALL *GetInputType)(const OrtCustomOp *, size_t);
    size_t(ORT_CALL *GetInputTypeCount)(const OrtCustomOp *);
    int(ORT_CALL *GetOutputType)(const OrtCustomOp *, size_t);
    size_t(ORT_CALL *GetOutputTypeCount)(const OrtCustomOp *);
    void(ORT_CALL *KernelCompute)(void *, OrtKernelContext *);
    void(ORT_CALL *KernelDestroy)(void *);
    int(ORT_CALL *GetInputCharacteristic)(const OrtCustomOp *, size_t);   /* version 8 */
    int(ORT_CALL *GetOutputCharacteristic)(const OrtCustomOp *, size_t);
    int(ORT_CALL *GetInputMemoryType)(const OrtCustomOp *, size_t);       /* version 13 */
    int(ORT_CALL *GetVariadicInputMinArity)(const OrtCustomOp *);         /* version 14, for variadic inputs */
    int(ORT_CALL *GetVariadicInputHomogeneity)(const OrtCustomOp *);
    int(ORT_CALL *GetVariadicOutputMinArity)(const OrtCustomOp *);
    int(ORT_CALL *GetVariadicOutputHomogeneity)(const OrtCustomOp *);
    OrtStatus *(ORT_CALL *CreateKernelV2)(const OrtCustomOp *, const OrtApi *, const OrtKernelInfo *, void **);  /* 16 */
    OrtStatus *(ORT_CALL *KernelComputeV2)(void *, OrtKernelContext *);
    OrtStatus *(ORT_CALL *InferOutputShapeFn)(const OrtCustomOp *, void *);  /* version 17 */
    int(ORT_CALL *GetStartVersion)(const OrtCustomOp *);
    int(ORT_CALL *GetEndVersion)(const OrtCustomOp *);
    void *later[4];  /* GetMayInplace, ReleaseMayInplace, GetAliasMap, ReleaseAliasMap */
};

/* The op. */
enum { INPUT_A, INPUT_W, INPUT_S, INPUT_Z, INPUTS, MAX_RANK = 8 };

typedef struct {
    const OrtApi *api;
    int64_t k, n;
} Kernel;

static OrtStatus *failure(const OrtApi *api, int code, const char *message) {
    return API_CALL(api, CREATE_STATUS, CreateStatusFn)(code, message);
}

static OrtStatus *ORT_CALL create_kernel(const OrtCustomOp *op, const OrtApi *api, const OrtKernelInfo *info,
                                         void **out) {
    (void)op;
    int64_t k = 0, n = 0;
    AttributeInt64Fn attribute = API_CALL(api, KERNEL_INFO_GET_ATTRIBUTE_INT64, AttributeInt64Fn);
    OrtStatus *status = attribute(info, "K", &k);
    if (!status) status = attribute(info, "N", &n);
    if (status) return status;
    if (k <= 0 || n <= 0 || k % 32 || n % 16) {
        char message[200];
        snprintf(message, sizeof message,
                 "Q4MatMul: K is %lld and N is %lld; K must be a positive multiple of 32 and N of 16.",
                 (long long)k, (long long)n);
        return failure(api, ORT_INVALID_ARGUMENT, message);
    }
    Kernel *kernel = malloc(sizeof *kernel);
    if (!kernel) return failure(api, ORT_FAIL, "Q4MatMul: out of memory.");
    *kernel = (Kernel){api, k, n};
    *out = kernel;
    return NULL;
}

static void ORT_CALL destroy_kernel(void *kernel) { free(kernel); }

/* An input's data and shape; *rank is the number of dimensions. */
static OrtStatus *input(const Kernel *kernel, OrtKernelContext *context, size_t index, void **data, int64_t *dims,
                        size_t *rank) {
    const OrtApi *api = kernel->api;
    const OrtValue *value = NULL;
    OrtTensorTypeAndShapeInfo *shape = NULL;
    OrtStatus *status = API_CALL(api, KERNEL_CONTEXT_GET_INPUT, GetInputFn)(context, index, &value);
    if (!status && !value) return failure(api, ORT_INVALID_ARGUMENT, "Q4MatMul: an input is missing.");
    if (!status) status = API_CALL(api, GET_TENSOR_TYPE_AND_SHAPE, TypeAndShapeFn)(value, &shape);
    if (!status) status = API_CALL(api, GET_DIMENSIONS_COUNT, DimensionsCountFn)(shape, rank);
    if (!status && (*rank < 1 || *rank > MAX_RANK))
        status = failure(api, ORT_INVALID_ARGUMENT, "Q4MatMul: an input has no dimensions or more than 8.");
    if (!status) status = API_CALL(api, GET_DIMENSIONS, DimensionsFn)(shape, dims, *rank);
    if (shape) API_CALL(api, RELEASE_TENSOR_TYPE_AND_SHAPE_INFO, ReleaseShapeFn)(shape);
    if (!status) status = API_CALL(api, GET_TENSOR_MUTABLE_DATA, MutableDataFn)((OrtValue *)value, data);
    return status;
}

/* NULL when dims are [a, b, c]; else the error naming the input and both shapes. */
static OrtStatus *check_shape(const Kernel *kernel, const char *name, const int64_t *dims, size_t rank, int64_t a,
                              int64_t b, int64_t c) {
    if (rank == 3 && dims[0] == a && dims[1] == b && dims[2] == c) return NULL;
    char message[300], got[200] = "";
    size_t used = 0;
    for (size_t i = 0; i < rank && used < sizeof got; i++)
        used += (size_t)snprintf(got + used, sizeof got - used, i ? ", %lld" : "%lld", (long long)dims[i]);
    snprintf(message, sizeof message,
             "Q4MatMul: %s has shape [%s]; for K %lld and N %lld it must be [%lld, %lld, %lld].", name, got,
             (long long)kernel->k, (long long)kernel->n, (long long)a, (long long)b, (long long)c);
    return failure(kernel->api, ORT_INVALID_ARGUMENT, message);
}

typedef struct {
    const int8_t *qa;
    const float *sa;
    const int32_t *suma;
    int64_t rows, k, n, groups, chunks;
    const uint8_t *w, *z;
    const float *s;
    float *y;
} Job;

/* Chunk i of the job: its share of the column groups, for every row. */
static void columns(void *data, size_t i) {
    const Job *job = data;
    const int64_t g0 = job->groups * (int64_t)i / job->chunks, g1 = job->groups * ((int64_t)i + 1) / job->chunks;
    if (g0 < g1)
        ds_q4_columns(job->qa, job->sa, job->suma, job->rows, job->k, job->w, job->s, job->z, job->n, g0, g1, job->y);
}

/* About four chunks a thread, so that threads finishing early take more; ORT does not tell a kernel its
 * intra-op thread count, so the processors online stand for it (the pool never has more threads than that
 * unless asked to). */
static int64_t chunk_count(int64_t groups) {
#ifdef _WIN32
    SYSTEM_INFO system;
    GetSystemInfo(&system);
    int64_t processors = system.dwNumberOfProcessors;
#else
    int64_t processors = sysconf(_SC_NPROCESSORS_ONLN);
#endif
    const int64_t chunks = 4 * (processors > 0 ? processors : 1);
    return chunks < groups ? chunks : groups;
}

static OrtStatus *ORT_CALL compute(void *data, OrtKernelContext *context) {
    const Kernel *kernel = data;
    const OrtApi *api = kernel->api;
    const int64_t k = kernel->k, n = kernel->n, groups = n / 16, blocks = k / 32;
    void *pointers[INPUTS];
    int64_t dims[INPUTS][MAX_RANK];
    size_t ranks[INPUTS];
    for (size_t i = 0; i < INPUTS; i++) {
        OrtStatus *status = input(kernel, context, i, &pointers[i], dims[i], &ranks[i]);
        if (status) return status;
    }
    const size_t rank = ranks[INPUT_A];
    if (dims[INPUT_A][rank - 1] != k) {
        char message[200];
        snprintf(message, sizeof message, "Q4MatMul: A's last dimension is %lld; it must be K, %lld.",
                 (long long)dims[INPUT_A][rank - 1], (long long)k);
        return failure(api, ORT_INVALID_ARGUMENT, message);
    }
    OrtStatus *status = check_shape(kernel, "W", dims[INPUT_W], ranks[INPUT_W], groups, blocks, 256);
    if (!status) status = check_shape(kernel, "S", dims[INPUT_S], ranks[INPUT_S], groups, blocks, 16);
    if (!status) status = check_shape(kernel, "Z", dims[INPUT_Z], ranks[INPUT_Z], groups, blocks, 16);
    if (status) return status;

    int64_t out_dims[MAX_RANK], rows = 1;
    for (size_t i = 0; i + 1 < rank; i++) {
        out_dims[i] = dims[INPUT_A][i];
        rows *= dims[INPUT_A][i];
    }
    out_dims[rank - 1] = n;
    OrtValue *output = NULL;
    void *y = NULL;
    status = API_CALL(api, KERNEL_CONTEXT_GET_OUTPUT, GetOutputFn)(context, 0, out_dims, rank, &output);
    if (!status) status = API_CALL(api, GET_TENSOR_MUTABLE_DATA, MutableDataFn)(output, &y);
    if (status || rows == 0) return status;

    /* Scratch: the quantized rows, then their block scales and sums. */
    const size_t count = (size_t)(rows * k), row_blocks = (size_t)(rows * blocks);
    char *scratch = malloc(count + row_blocks * (sizeof(float) + sizeof(int32_t)));
    if (!scratch) return failure(api, ORT_FAIL, "Q4MatMul: out of memory for the quantized activations.");
    int8_t *qa = (int8_t *)scratch;
    float *sa = (float *)(scratch + count);  /* count is a multiple of 32: aligned for floats and ints */
    int32_t *suma = (int32_t *)(sa + row_blocks);
    ds_q4_quantize(pointers[INPUT_A], rows, k, qa, sa, suma);
    Job job = {qa, sa, suma, rows, k, n, groups, chunk_count(groups), pointers[INPUT_W], pointers[INPUT_Z],
               pointers[INPUT_S], y};
    status = API_CALL(api, KERNEL_CONTEXT_PARALLEL_FOR, ParallelForFn)(context, columns, (size_t)job.chunks, 0, &job);
    free(scratch);
    return status;
}

static const char *ORT_CALL name(const OrtCustomOp *op) { (void)op; return "Q4MatMul"; }
static const char *ORT_CALL provider(const OrtCustomOp *op) { (void)op; return NULL; }  /* NULL: the CPU */
static size_t ORT_CALL input_count(const OrtCustomOp *op) { (void)op; return INPUTS; }
static size_t ORT_CALL output_count(const OrtCustomOp *op) { (void)op; return 1; }
static int ORT_CALL output_type(const OrtCustomOp *op, size_t i) { (void)op; (void)i; return TENSOR_FLOAT; }
static int ORT_CALL required(const OrtCustomOp *op, size_t i) { (void)op; (void)i; return INPUT_OUTPUT_REQUIRED; }
static int ORT_CALL memory_type(const OrtCustomOp *op, size_t i) { (void)op; (void)i; return MEM_TYPE_DEFAULT; }

static int ORT_CALL input_type(const OrtCustomOp *op, size_t i) {
    (void)op;
    return i == INPUT_A || i == INPUT_S ? TENSOR_FLOAT : TENSOR_UINT8;
}

static const OrtCustomOp q4_matmul = {
    .version = API_VERSION,
    .GetName = name,
    .GetExecutionProviderType = provider,
    .GetInputType = input_type,
    .GetInputTypeCount = input_count,
    .GetOutputType = output_type,
    .GetOutputTypeCount = output_count,
    .KernelDestroy = destroy_kernel,
    .GetInputCharacteristic = required,
    .GetOutputCharacteristic = required,
    .GetInputMemoryType = memory_type,
    .CreateKernelV2 = create_kernel,
    .KernelComputeV2 = compute,
};

/* The entry point SessionOptions.register_custom_ops_library looks for. The domain lives as long as the
 * process: the sessions made from these options keep pointing at it. */
EXPORT OrtStatus *ORT_CALL RegisterCustomOps(OrtSessionOptions *options, const OrtApiBase *base) {
    const OrtApi *api = base->GetApi(API_VERSION);
    if (!api) {
        const OrtApi *oldest = base->GetApi(1);
        return oldest ? failure(oldest, ORT_FAIL, "describe-screen's Q4MatMul needs onnxruntime 1.17 or newer.")
                      : NULL;
    }
    OrtCustomOpDomain *domain = NULL;
    OrtStatus *status = API_CALL(api, CREATE_CUSTOM_OP_DOMAIN, CreateDomainFn)("describe_screen", &domain);
    if (!status) status = API_CALL(api, CUSTOM_OP_DOMAIN_ADD, DomainAddFn)(domain, &q4_matmul);
    if (!status) status = API_CALL(api, ADD_CUSTOM_OP_DOMAIN, AddDomainFn)(options, domain);
    return status;
}
