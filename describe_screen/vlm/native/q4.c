/* 4-bit block-32 matrix products in describe-screen's layout (see q4.h). */
#include "q4.h"

#include <math.h>
#include <stdlib.h>

void ds_q4_quantize(const float *a, int64_t rows, int64_t k, int8_t *qa, float *sa, int32_t *suma) {
    for (int64_t block = 0; block < rows * k / 32; block++) {
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

void ds_q4_columns(const int8_t *qa, const float *sa, const int32_t *suma, int64_t rows, int64_t k,
                   const uint8_t *w, const float *s, const uint8_t *z, int64_t n, int64_t g0, int64_t g1,
                   float *y) {
    columns_scalar(qa, sa, suma, rows, k, w, s, z, n, g0, g1, y);
}

const char *ds_q4_isa(void) { return "scalar"; }
