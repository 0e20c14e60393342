/* 4-bit block-32 matrix products in describe-screen's layout (see q4.h). */
#include "q4.h"

#include <immintrin.h>
#include <math.h>

static void quantize_scalar(const float *a, int64_t blocks, int8_t *qa, float *sa, int32_t *suma) {
    for (int64_t block = 0; block < blocks; block++) {
        const float *x = a + 32 * block;
        float amax = 0.0f;
        for (int i = 0; i < 32; i++) amax = fmaxf(amax, fabsf(x[i]));
        const float scale = amax / 127.0f, inverse = amax != 0.0f ? 127.0f / amax : 0.0f;
        int32_t sum = 0;
        for (int i = 0; i < 32; i++) {
            const int32_t q = (int32_t)nearbyintf(x[i] * inverse);
            qa[32 * block + i] = (int8_t)q;
            sum += q;
        }
        sa[block] = scale;
        suma[block] = sum;
    }
}

static void columns_scalar(const int8_t *qa, const float *sa, const int32_t *suma, int64_t rows, int64_t k,
                           const uint8_t *w, const float *s, const uint8_t *z, int64_t n, int64_t g0, int64_t g1,
                           float *y) {
    const int64_t blocks = k / 32;
    for (int64_t g = g0; g < g1; g++)
        for (int64_t r = 0; r < rows; r++)
            for (int l = 0; l < 16; l++) {
                float total = 0.0f;
                for (int64_t b = 0; b < blocks; b++) {
                    const uint8_t *chunks = w + (g * blocks + b) * 256;
                    const int8_t *q = qa + r * k + 32 * b;
                    int32_t dot = 0;
                    for (int c = 0; c < 4; c++)
                        for (int i = 0; i < 4; i++) {
                            const uint8_t byte = chunks[64 * c + 4 * l + i];
                            dot += (byte & 15) * q[8 * c + i] + (byte >> 4) * q[8 * c + 4 + i];
                        }
                    const int64_t at = (g * blocks + b) * 16 + l;
                    total += s[at] * sa[r * blocks + b] * (float)(dot - (int32_t)z[at] * suma[r * blocks + b]);
                }
                y[r * n + 16 * g + l] = total;
            }
}


#define AVX512VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))

/* One block of 32 for one row: the int32 dot products of 16 columns with the row's quantized block. */
AVX512VNNI static inline __m512i block_dot(const __m512i *nibbles, const int8_t *q) {
    const int32_t *quads = (const int32_t *)q;
    __m512i even = _mm512_dpbusd_epi32(_mm512_setzero_si512(), nibbles[0], _mm512_set1_epi32(quads[0]));
    __m512i odd = _mm512_dpbusd_epi32(_mm512_setzero_si512(), nibbles[1], _mm512_set1_epi32(quads[1]));
    for (int j = 2; j < 8; j += 2) {
        even = _mm512_dpbusd_epi32(even, nibbles[j], _mm512_set1_epi32(quads[j]));
        odd = _mm512_dpbusd_epi32(odd, nibbles[j + 1], _mm512_set1_epi32(quads[j + 1]));
    }
    return _mm512_add_epi32(even, odd);
}

/* total + s * scale_a * dot - s * z * (scale_a * sum_a): the zero point folded in float, as MLAS folds it. */
AVX512VNNI static inline __m512 accumulate(__m512 total, __m512 scales, __m512 shifted, __m512i dot, float scale,
                                           float sum) {
    total = _mm512_fmadd_ps(_mm512_mul_ps(scales, _mm512_set1_ps(scale)), _mm512_cvtepi32_ps(dot), total);
    return _mm512_fnmadd_ps(shifted, _mm512_set1_ps(scale * sum), total);
}

/* The four 64-byte chunks of a block as eight registers of 4-weight lanes (see q4.h). */
AVX512VNNI static inline void unpack(const uint8_t *chunks, __m512i *nibbles) {
    const __m512i low = _mm512_set1_epi8(15);
    for (int c = 0; c < 4; c++) {
        const __m512i v = _mm512_loadu_si512(chunks + 64 * c);
        nibbles[2 * c] = _mm512_and_si512(v, low);
        nibbles[2 * c + 1] = _mm512_and_si512(_mm512_srli_epi16(v, 4), low);
    }
}

/* s * z for 16 columns of a block. */
AVX512VNNI static inline __m512 zero_points(__m512 scales, const uint8_t *z) {
    return _mm512_mul_ps(scales, _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)z))));
}

/* A decode step reads each weight once, from memory: asking for the bytes 2 KB ahead keeps more of them in
 * flight than the hardware prefetcher alone does (a decode step's 97 products 27 -> 22.5 ms here). Past the
 * last group it asks for bytes never read, which a prefetch may. */
enum { AHEAD = 2048 };

static inline void prefetch(const uint8_t *w, const float *s, const uint8_t *z) {
    for (int line = 0; line < 256; line += 64) _mm_prefetch((const char *)(w + line), _MM_HINT_T0);
    _mm_prefetch((const char *)s, _MM_HINT_T0);
    _mm_prefetch((const char *)z, _MM_HINT_T0);
}

/* Rows in fours share each unpacked block (the prompt); a single row (a decode step) streams the weights. */
AVX512VNNI static void columns_avx512vnni(const int8_t *qa, const float *sa, const int32_t *suma, int64_t rows,
                                          int64_t k, const uint8_t *w, const float *s, const uint8_t *z, int64_t n,
                                          int64_t g0, int64_t g1, float *y) {
    const int64_t blocks = k / 32;
    for (int64_t g = g0; g < g1; g++) {
        const uint8_t *wg = w + g * blocks * 256, *zg = z + g * blocks * 16;
        const float *sg = s + g * blocks * 16;
        int64_t r = 0;
        for (; r + 4 <= rows; r += 4) {
            __m512 total[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
            for (int64_t b = 0; b < blocks; b++) {
                __m512i nibbles[8];
                unpack(wg + 256 * b, nibbles);
                const __m512 scales = _mm512_loadu_ps(sg + 16 * b), shifted = zero_points(scales, zg + 16 * b);
                for (int j = 0; j < 4; j++) {
                    const int64_t at = (r + j) * blocks + b;
                    total[j] = accumulate(total[j], scales, shifted, block_dot(nibbles, qa + (r + j) * k + 32 * b),
                                          sa[at], (float)suma[at]);
                }
            }
            for (int j = 0; j < 4; j++) _mm512_storeu_ps(y + (r + j) * n + 16 * g, total[j]);
        }
        for (; r < rows; r++) {
            __m512 total = _mm512_setzero_ps();
            for (int64_t b = 0; b < blocks; b++) {
                __m512i nibbles[8];
                prefetch(wg + 256 * b + AHEAD, sg + 16 * b + AHEAD / 16, zg + 16 * b + AHEAD / 16);
                unpack(wg + 256 * b, nibbles);
                const __m512 scales = _mm512_loadu_ps(sg + 16 * b), shifted = zero_points(scales, zg + 16 * b);
                const int64_t at = r * blocks + b;
                total = accumulate(total, scales, shifted, block_dot(nibbles, qa + r * k + 32 * b), sa[at],
                                   (float)suma[at]);
            }
            _mm512_storeu_ps(y + r * n + 16 * g, total);
        }
    }
}

/* The same numbers as quantize_scalar: the same products, rounded to nearest even as nearbyintf does. */
AVX512VNNI static void quantize_avx512(const float *a, int64_t blocks, int8_t *qa, float *sa, int32_t *suma) {
    for (int64_t block = 0; block < blocks; block++) {
        const __m512 x0 = _mm512_loadu_ps(a + 32 * block), x1 = _mm512_loadu_ps(a + 32 * block + 16);
        const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(x0), _mm512_abs_ps(x1)));
        const float scale = amax / 127.0f, inverse = amax != 0.0f ? 127.0f / amax : 0.0f;
        const __m512 by = _mm512_set1_ps(inverse);
        const __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(x0, by)), q1 = _mm512_cvtps_epi32(_mm512_mul_ps(x1, by));
        _mm_storeu_si128((__m128i *)(qa + 32 * block), _mm512_cvtsepi32_epi8(q0));
        _mm_storeu_si128((__m128i *)(qa + 32 * block + 16), _mm512_cvtsepi32_epi8(q1));
        sa[block] = scale;
        suma[block] = _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
    }
}

static int has_avx512vnni(void) {
    static int known = -1;  /* asked once: the CPU does not change */
    if (known < 0) {
        __builtin_cpu_init();
        known = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
    }
    return known;
}

void ds_q4_quantize(const float *a, int64_t rows, int64_t k, int8_t *qa, float *sa, int32_t *suma) {
    if (has_avx512vnni())
        quantize_avx512(a, rows * k / 32, qa, sa, suma);
    else
        quantize_scalar(a, rows * k / 32, qa, sa, suma);
}

void ds_q4_columns(const int8_t *qa, const float *sa, const int32_t *suma, int64_t rows, int64_t k,
                   const uint8_t *w, const float *s, const uint8_t *z, int64_t n, int64_t g0, int64_t g1,
                   float *y) {
    if (has_avx512vnni())
        columns_avx512vnni(qa, sa, suma, rows, k, w, s, z, n, g0, g1, y);
    else
        columns_scalar(qa, sa, suma, rows, k, w, s, z, n, g0, g1, y);
}

const char *ds_q4_isa(void) { return has_avx512vnni() ? "avx512vnni" : "scalar"; }
