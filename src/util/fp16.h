// Scalar IEEE half and bfloat16 conversions (round to nearest even), portable and bit-exact with F16C.
// static: every file gets its own copy, so the copies compiled into *_avx2.cpp files (with AVX2 enabled)
// can never be the ones the linker picks for portable code.
#pragma once

#include <cstdint>
#include <cstring>

namespace llama_crab {

using fp16_t = uint16_t;
using bf16_t = uint16_t;

static inline uint32_t float_bits(float f) {
    uint32_t u;
    std::memcpy(&u, &f, sizeof(u));
    return u;
}

static inline float bits_float(uint32_t u) {
    float f;
    std::memcpy(&f, &u, sizeof(f));
    return f;
}

static inline float fp16_to_fp32(fp16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    if (exp == 0x1f) return bits_float(sign | 0x7f800000u | (mant << 13));  // inf / nan
    if (exp == 0) {
        if (mant == 0) return bits_float(sign);
        // subnormal: normalise
        int e = -1;
        do {
            e++;
            mant <<= 1;
        } while ((mant & 0x400u) == 0);
        mant &= 0x3ffu;
        return bits_float(sign | ((uint32_t)(127 - 15 - e) << 23) | (mant << 13));
    }
    return bits_float(sign | ((exp + (127 - 15)) << 23) | (mant << 13));
}

static inline fp16_t fp32_to_fp16(float f) {
    const uint32_t x = float_bits(f);
    const uint32_t sign = (x >> 16) & 0x8000u;
    const uint32_t abs = x & 0x7fffffffu;
    if (abs > 0x7f800000u) return (fp16_t)(sign | 0x7e00u);  // nan
    if (abs >= 0x477ff000u) return (fp16_t)(sign | 0x7c00u);  // overflow (rounds to inf) or inf
    if (abs < 0x38800000u) {
        // result is subnormal or zero: add 0.5 (magic) so the FPU rounds to nearest even
        const float magic = bits_float(0x3f000000u);  // 0.5
        const float v = bits_float(abs) + magic;
        return (fp16_t)(sign | (uint16_t)(float_bits(v) - float_bits(magic)));
    }
    const uint32_t mant_odd = (abs >> 13) & 1u;
    uint32_t r = abs + 0xc8000fffu + mant_odd;  // rebias exponent (-112 << 23) and round to nearest even
    return (fp16_t)(sign | (r >> 13));
}

static inline float bf16_to_fp32(bf16_t h) { return bits_float((uint32_t)h << 16); }

static inline bf16_t fp32_to_bf16(float f) {
    const uint32_t x = float_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (bf16_t)((x >> 16) | 64);  // quiet nan
    return (bf16_t)((x + (0x7fffu + ((x >> 16) & 1u))) >> 16);
}

}  // namespace llama_crab
