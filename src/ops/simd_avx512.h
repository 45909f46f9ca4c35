// Small helpers shared by the AVX-512 kernel files (*_avx512.cpp). Include only from files compiled with the
// AVX-512 flags (CMakeLists.txt); `static inline` for the reason given in simd_avx2.h, which this includes.
#pragma once

#if !defined(__AVX512F__) || !defined(__AVX512BW__) || !defined(__AVX512VL__) || !defined(__AVX512VNNI__)
#error "simd_avx512.h is for files compiled with -mavx512f -mavx512bw -mavx512dq -mavx512vl -mavx512vnni"
#endif

// GCC 12's AVX-512 intrinsics use _mm512_undefined_*() and then warn that it "may be used uninitialized" (GCC bug
// 105593, fixed in 13): the warning is silenced for the intrinsic headers' own lines only.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#endif

#include "ops/simd_avx2.h"

namespace llama_crab {

static inline __m512i loadu512(const void* p) { return _mm512_loadu_si512(p); }
static inline void storeu512(void* p, __m512i v) { _mm512_storeu_si512(p, v); }

// The 4-byte group at p in every 32-bit lane of a ZMM.
static inline __m512i bcast32x16(const void* p) { return _mm512_set1_epi32(load_i32(p)); }

// Pins a running sum in a register (see keep_in_register in simd_avx2.h).
static inline void keep_in_register(__m512i& v) { __asm__("" : "+v"(v)); }

// Writes the first n (1..16) lanes of v to y; the others are not touched (masked store: no read or write there).
static inline void store_rows16(float* y, __m512 v, int n) {
    _mm512_mask_storeu_ps(y, (__mmask16)((1u << n) - 1u), v);
}

}  // namespace llama_crab
