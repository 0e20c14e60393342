/* 4-bit block-32 matrix products (MatMulNBits' numbers) in describe-screen's own layout.
 *
 * Layout (written by describe_screen.vlm.q4pack from MatMulNBits' B, scales and zero points), columns in
 * groups of 16, K in blocks of 32:
 *   w[g][b][256]: four 64-byte chunks; in chunk c, byte 4*l + i holds column 16*g + l's weight at
 *                 k = 32*b + 8*c + i in its low nibble and at k = 32*b + 8*c + 4 + i in its high nibble;
 *   s[g][b][16]:  float scales;  z[g][b][16]: uint8 zero points (0..15).
 * The activation rows are quantized per block of 32 as MLAS does at accuracy level 4:
 *   scale = max|a| / 127, q = round-to-nearest-even(a / scale) (0 when the block is all zero), sum = sum of q.
 * Then y[r][n] = sum over b of s * scale_a[r][b] * (dot(q_a, w) - z * sum_a[r][b]).
 */
#ifndef DESCRIBE_SCREEN_Q4_H
#define DESCRIBE_SCREEN_Q4_H
#include <stdint.h>

/* Quantize `rows` rows of `k` floats (k a multiple of 32): qa[rows*k], sa and suma [rows*k/32]. */
void ds_q4_quantize(const float *a, int64_t rows, int64_t k, int8_t *qa, float *sa, int32_t *suma);

/* y[r][16*g0 .. 16*g1) for every row r (y's rows are n floats apart); groups [g0, g1) of 16 columns. */
void ds_q4_columns(const int8_t *qa, const float *sa, const int32_t *suma, int64_t rows, int64_t k,
                   const uint8_t *w, const float *s, const uint8_t *z, int64_t n, int64_t g0, int64_t g1,
                   float *y);

/* The instruction set ds_q4_columns uses on this CPU: "avx512vnni", or "scalar" (too slow to be chosen). */
const char *ds_q4_isa(void);
#endif
