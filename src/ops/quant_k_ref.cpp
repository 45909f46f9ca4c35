// k-quants: reference weight quantizers. They follow ggml's reference algorithms (a weighted least-squares search
// over a few candidate scales per sub-block, then 6/8-bit quantization of the sub-block scales, then a final
// re-quantization of every value with the scales actually stored), so files we write dequantize like ggml's.
// The float operations are kept in ggml's order: on the synth-llama test models every block came out identical
// to llama-quantize's output. That equality is a bonus, not a promise; valid blocks with ggml's error are.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "ops/quant_k.h"

namespace llama_crab {
namespace {

constexpr float kGroupMaxEps = 1e-15f;  // below this a group counts as all zero

// Round half to even for |v| < 2^22 (see quant_k.cpp). The callers clamp v into a small range first, so
// pathological inputs (tiny divisors) give an in-range level instead of a wrapped one.
inline int nearest_int(float v) {
    const float t = v + 12582912.f;
    int32_t i;
    std::memcpy(&i, &t, sizeof(i));
    return (i & 0x007fffff) - 0x00400000;
}

inline int round_clamped(float v, int lo, int hi) {
    if (!(v >= (float)lo)) return lo;  // also catches NaN
    if (v > (float)hi) return hi;
    return nearest_int(v);
}

// Asymmetric fit x ~ scale * L + min (L in 0..nmax, min <= 0) minimising sum w * err, where err is |diff| or
// diff^2. Tries nstep+1 candidate inverse scales around nmax / (max - min), each followed by a closed-form least
// squares fit of scale and min for the levels it gives. Returns scale; *neg_min = -min (>= 0).
float fit_scale_min(int n, int nmax, const float* x, const float* w, uint8_t* L, float* neg_min, float rmin,
                    float rdelta, int nstep, bool use_mad) {
    float min = x[0], max = x[0], sum_w = 0.f, sum_x = 0.f;
    for (int i = 0; i < n; ++i) {
        min = std::min(min, x[i]);
        max = std::max(max, x[i]);
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    min = std::min(min, 0.f);  // the offset only ever shifts down: a group of positives keeps min 0
    if (max == min) {
        std::memset(L, 0, (size_t)n);
        *neg_min = -min;
        return 0.f;
    }
    auto error_of = [&](float scale, float mn, const uint8_t* lv) {
        float err = 0.f;
        for (int i = 0; i < n; ++i) {
            const float diff = scale * (float)lv[i] + mn - x[i];
            err += w[i] * (use_mad ? std::fabs(diff) : diff * diff);
        }
        return err;
    };
    float iscale = (float)nmax / (max - min);
    float scale = 1.f / iscale;
    for (int i = 0; i < n; ++i) L[i] = (uint8_t)round_clamped(iscale * (x[i] - min), 0, nmax);
    float best = error_of(scale, min, L);

    uint8_t aux[32];
    for (int is = 0; is <= nstep; ++is) {
        iscale = (rmin + rdelta * (float)is + (float)nmax) / (max - min);
        float sum_l = 0.f, sum_l2 = 0.f, sum_xl = 0.f;
        for (int i = 0; i < n; ++i) {
            const int l = round_clamped(iscale * (x[i] - min), 0, nmax);
            aux[i] = (uint8_t)l;
            sum_l += w[i] * (float)l;
            sum_l2 += w[i] * (float)l * (float)l;
            sum_xl += w[i] * (float)l * x[i];
        }
        const float det = sum_w * sum_l2 - sum_l * sum_l;
        if (!(det > 0.f)) continue;
        float this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
        float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
        if (this_min > 0.f) {  // a positive offset is not representable: refit the scale alone
            this_min = 0.f;
            this_scale = sum_xl / sum_l2;
        }
        const float err = error_of(this_scale, this_min, aux);
        if (err < best) {
            std::memcpy(L, aux, (size_t)n);
            best = err;
            scale = this_scale;
            min = this_min;
        }
    }
    *neg_min = -min;
    return scale;
}

// Symmetric fit x ~ scale * l, l in -nmax..nmax-1, weights x^2 (ggml's make_qx_quants, rmse_type 1): tries 19
// inverse scales around -nmax / max and keeps the one with the best weighted least-squares fit.
// L receives l + nmax. The sign of scale follows the value of largest magnitude, so that value gets -nmax.
float fit_scale_symmetric(int n, int nmax, const float* x, int8_t* L) {
    float amax = 0.f, max = 0.f;
    for (int i = 0; i < n; ++i) {
        if (std::fabs(x[i]) > amax) {
            amax = std::fabs(x[i]);
            max = x[i];
        }
    }
    if (amax < kGroupMaxEps) {
        std::memset(L, 0, (size_t)n);
        return 0.f;
    }
    auto fit = [&](float iscale, float* sumlx, float* suml2) {
        *sumlx = *suml2 = 0.f;
        for (int i = 0; i < n; ++i) {
            const int l = round_clamped(iscale * x[i], -nmax, nmax - 1);
            const float w = x[i] * x[i];
            *sumlx += w * x[i] * (float)l;
            *suml2 += w * (float)l * (float)l;
        }
    };
    auto assign = [&](float iscale) {
        for (int i = 0; i < n; ++i) L[i] = (int8_t)(round_clamped(iscale * x[i], -nmax, nmax - 1) + nmax);
    };
    float sumlx, suml2;
    float iscale = -(float)nmax / max;
    fit(iscale, &sumlx, &suml2);
    assign(iscale);
    float scale = suml2 > 0.f ? sumlx / suml2 : 0.f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; ++is) {
        if (is == 0) continue;
        iscale = -((float)nmax + 0.1f * (float)is) / max;
        fit(iscale, &sumlx, &suml2);
        if (suml2 > 0.f && sumlx * sumlx > best * suml2) {
            assign(iscale);
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

// Symmetric 3-bit fit (ggml's make_q3_quants with rmse): start from -nmax / max, then up to 5 passes of
// coordinate descent moving single levels when that improves the weighted fit. L receives l + nmax.
float fit_scale_q3(int n, int nmax, const float* x, int8_t* L) {
    float amax = 0.f, max = 0.f;
    for (int i = 0; i < n; ++i) {
        if (std::fabs(x[i]) > amax) {
            amax = std::fabs(x[i]);
            max = x[i];
        }
    }
    if (amax < kGroupMaxEps) {
        std::memset(L, 0, (size_t)n);
        return 0.f;
    }
    const float iscale = -(float)nmax / max;
    float sumlx = 0.f, suml2 = 0.f;
    for (int i = 0; i < n; ++i) {
        const int l = round_clamped(iscale * x[i], -nmax, nmax - 1);
        L[i] = (int8_t)l;
        const float w = x[i] * x[i];
        sumlx += w * x[i] * (float)l;
        suml2 += w * (float)l * (float)l;
    }
    for (int pass = 0; pass < 5; ++pass) {
        int changed = 0;
        for (int i = 0; i < n; ++i) {
            const float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * (float)L[i];
            if (!(slx > 0.f)) continue;
            float sl2 = suml2 - w * (float)L[i] * (float)L[i];
            const int nl = round_clamped(x[i] * sl2 / slx, -nmax, nmax - 1);
            if (nl == L[i]) continue;
            slx += w * x[i] * (float)nl;
            sl2 += w * (float)nl * (float)nl;
            // keep the move if it raises sumlx^2 / suml2, i.e. lowers the weighted squared error
            if (sl2 > 0.f && slx * slx * suml2 > sumlx * sumlx * sl2) {
                L[i] = (int8_t)nl;
                sumlx = slx;
                suml2 = sl2;
                ++changed;
            }
        }
        if (!changed) break;
    }
    for (int i = 0; i < n; ++i) L[i] = (int8_t)(L[i] + nmax);
    return suml2 > 0.f ? sumlx / suml2 : 0.f;
}

// 2-bit codes L (0..3) of 256 values into the qs layout shared by Q2_K and Q3_K.
void pack_2bit(const uint8_t* L, uint8_t* qs) {
    for (int h = 0; h < 2; ++h) {
        for (int l = 0; l < 32; ++l) {
            const uint8_t* p = L + 128 * h + l;
            qs[32 * h + l] = (uint8_t)(p[0] | (p[32] << 2) | (p[64] << 4) | (p[96] << 6));
        }
    }
}

// 4-bit codes (0..15) of 256 values into the qs layout shared by Q4_K and Q5_K.
void pack_4bit(const uint8_t* L, uint8_t* qs) {
    for (int c = 0; c < 4; ++c) {
        for (int l = 0; l < 32; ++l) qs[32 * c + l] = (uint8_t)(L[64 * c + l] | (L[64 * c + 32 + l] << 4));
    }
}

// Shared tail of Q4_K/Q5_K: quantize 8 sub-block scales and mins to 6 bits against their maxima, store them,
// then re-quantize every value with the stored (rounded) scales so the codes match what dequantization sees.
template <typename Block>
void store_k4_scales_and_requantize(Block& b, const float* x, const float* scales, const float* mins, int nmax,
                                    uint8_t* L) {
    float max_scale = 0.f, max_min = 0.f;
    for (int j = 0; j < 8; ++j) {
        max_scale = std::max(max_scale, scales[j]);
        max_min = std::max(max_min, mins[j]);
    }
    const float inv_scale = max_scale > 0.f ? 63.f / max_scale : 0.f;
    const float inv_min = max_min > 0.f ? 63.f / max_min : 0.f;
    uint8_t ls[8], lm[8];
    for (int j = 0; j < 8; ++j) {
        ls[j] = (uint8_t)round_clamped(inv_scale * scales[j], 0, 63);
        lm[j] = (uint8_t)round_clamped(inv_min * mins[j], 0, 63);
    }
    pack_scales_mins_k4(ls, lm, b.scales);
    b.d = fp32_to_fp16(max_scale / 63.f);
    b.dmin = fp32_to_fp16(max_min / 63.f);
    const float d_all = fp16_to_fp32(b.d), dmin_all = fp16_to_fp32(b.dmin);
    for (int j = 0; j < 8; ++j) {
        const float d = d_all * (float)ls[j];
        if (d == 0.f) continue;  // keep the fit's codes: every value of this group dequantizes to -min anyway
        const float dm = dmin_all * (float)lm[j];
        for (int l = 0; l < 32; ++l) L[32 * j + l] = (uint8_t)round_clamped((x[32 * j + l] + dm) / d, 0, nmax);
    }
}

// The per-value weights of ggml's Q4_K/Q5_K reference: |x| plus the group's RMS.
void k4_fit_groups(const float* x, int nmax, float rmin, float rdelta, int nstep, float* scales, float* mins,
                   uint8_t* L) {
    float w[32];
    for (int j = 0; j < 8; ++j) {
        const float* xg = x + 32 * j;
        float sum_x2 = 0.f;
        for (int l = 0; l < 32; ++l) sum_x2 += xg[l] * xg[l];
        const float av_x = std::sqrt(sum_x2 / 32.f);
        for (int l = 0; l < 32; ++l) w[l] = av_x + std::fabs(xg[l]);
        scales[j] = fit_scale_min(32, nmax, xg, w, L + 32 * j, &mins[j], rmin, rdelta, nstep, false);
    }
}

}  // namespace

void quantize_q2_k_ref(const float* src, void* dst, int64_t n) {
    BlockQ2K* y = static_cast<BlockQ2K*>(dst);
    uint8_t L[kQK_K];
    float scales[16], mins[16], w[16];
    for (int64_t i = 0; i < n / kQK_K; ++i) {
        const float* x = src + i * kQK_K;
        float max_scale = 0.f, max_min = 0.f;
        for (int j = 0; j < 16; ++j) {
            for (int l = 0; l < 16; ++l) w[l] = std::fabs(x[16 * j + l]);
            scales[j] = fit_scale_min(16, 3, x + 16 * j, w, L + 16 * j, &mins[j], -0.5f, 0.1f, 15, true);
            max_scale = std::max(max_scale, scales[j]);
            max_min = std::max(max_min, mins[j]);
        }
        BlockQ2K& b = y[i];
        const float is = max_scale > 0.f ? 15.f / max_scale : 0.f;
        const float im = max_min > 0.f ? 15.f / max_min : 0.f;
        for (int j = 0; j < 16; ++j) {
            b.scales[j] = (uint8_t)(round_clamped(is * scales[j], 0, 15) | (round_clamped(im * mins[j], 0, 15) << 4));
        }
        b.d = fp32_to_fp16(max_scale / 15.f);
        b.dmin = fp32_to_fp16(max_min / 15.f);
        const float d_all = fp16_to_fp32(b.d), dmin_all = fp16_to_fp32(b.dmin);
        for (int j = 0; j < 16; ++j) {
            const float d = d_all * (float)(b.scales[j] & 0x0f);
            if (d == 0.f) continue;
            const float dm = dmin_all * (float)(b.scales[j] >> 4);
            for (int l = 0; l < 16; ++l) L[16 * j + l] = (uint8_t)round_clamped((x[16 * j + l] + dm) / d, 0, 3);
        }
        pack_2bit(L, b.qs);
    }
}

void quantize_q3_k_ref(const float* src, void* dst, int64_t n) {
    BlockQ3K* y = static_cast<BlockQ3K*>(dst);
    int8_t L[kQK_K];
    float scales[16];
    for (int64_t i = 0; i < n / kQK_K; ++i) {
        const float* x = src + i * kQK_K;
        float amax = 0.f, max_scale = 0.f;
        for (int j = 0; j < 16; ++j) {
            scales[j] = fit_scale_q3(16, 4, x + 16 * j, L + 16 * j);
            if (std::fabs(scales[j]) > amax) {
                amax = std::fabs(scales[j]);
                max_scale = scales[j];
            }
        }
        BlockQ3K& b = y[i];
        uint8_t s6[16] = {};
        if (max_scale != 0.f) {
            // signed, like the values: the largest scale maps to -32 and the 6-bit range -32..31 is fully used
            const float iscale = -32.f / max_scale;
            for (int j = 0; j < 16; ++j) s6[j] = (uint8_t)(round_clamped(iscale * scales[j], -32, 31) + 32);
            b.d = fp32_to_fp16(1.f / iscale);
        } else {
            b.d = fp32_to_fp16(0.f);
        }
        pack_scales_q3_k(s6, b.scales);
        int8_t sc[16];
        unpack_scales_q3_k(b.scales, sc);
        const float d_all = fp16_to_fp32(b.d);
        for (int j = 0; j < 16; ++j) {
            const float d = d_all * (float)sc[j];
            if (d == 0.f) continue;
            for (int l = 0; l < 16; ++l) L[16 * j + l] = (int8_t)(round_clamped(x[16 * j + l] / d, -4, 3) + 4);
        }
        // codes 0..7: bit 2 goes to hmask, bits 0-1 to qs
        std::memset(b.hmask, 0, sizeof(b.hmask));
        uint8_t low[kQK_K];
        for (int v = 0; v < kQK_K; ++v) {
            if (L[v] > 3) b.hmask[v % 32] |= (uint8_t)(1u << (v / 32));
            low[v] = (uint8_t)(L[v] & 3);
        }
        pack_2bit(low, b.qs);
    }
}

void quantize_q4_k_ref(const float* src, void* dst, int64_t n) {
    BlockQ4K* y = static_cast<BlockQ4K*>(dst);
    uint8_t L[kQK_K];
    float scales[8], mins[8];
    for (int64_t i = 0; i < n / kQK_K; ++i) {
        const float* x = src + i * kQK_K;
        k4_fit_groups(x, 15, -1.f, 0.1f, 20, scales, mins, L);
        store_k4_scales_and_requantize(y[i], x, scales, mins, 15, L);
        pack_4bit(L, y[i].qs);
    }
}

void quantize_q5_k_ref(const float* src, void* dst, int64_t n) {
    BlockQ5K* y = static_cast<BlockQ5K*>(dst);
    uint8_t L[kQK_K];
    float scales[8], mins[8];
    for (int64_t i = 0; i < n / kQK_K; ++i) {
        const float* x = src + i * kQK_K;
        k4_fit_groups(x, 31, -0.5f, 0.1f, 15, scales, mins, L);
        store_k4_scales_and_requantize(y[i], x, scales, mins, 31, L);
        // codes 0..31: bit 4 goes to qh, bits 0-3 to qs
        std::memset(y[i].qh, 0, sizeof(y[i].qh));
        uint8_t low[kQK_K];
        for (int v = 0; v < kQK_K; ++v) {
            if (L[v] > 15) y[i].qh[v % 32] |= (uint8_t)(1u << (v / 32));
            low[v] = (uint8_t)(L[v] & 15);
        }
        pack_4bit(low, y[i].qs);
    }
}

void quantize_q6_k_ref(const float* src, void* dst, int64_t n) {
    BlockQ6K* y = static_cast<BlockQ6K*>(dst);
    int8_t L[kQK_K];
    float scales[16];
    for (int64_t i = 0; i < n / kQK_K; ++i) {
        const float* x = src + i * kQK_K;
        BlockQ6K& b = y[i];
        float amax = 0.f, max_scale = 0.f;
        for (int j = 0; j < 16; ++j) {
            scales[j] = fit_scale_symmetric(16, 32, x + 16 * j, L + 16 * j);
            if (std::fabs(scales[j]) > amax) {
                amax = std::fabs(scales[j]);
                max_scale = scales[j];
            }
        }
        if (amax < kGroupMaxEps) {
            std::memset(&b, 0, sizeof(b));
            continue;
        }
        const float iscale = -128.f / max_scale;
        b.d = fp32_to_fp16(1.f / iscale);
        for (int j = 0; j < 16; ++j) b.scales[j] = (int8_t)round_clamped(iscale * scales[j], -128, 127);
        const float d_all = fp16_to_fp32(b.d);
        for (int j = 0; j < 16; ++j) {
            const float d = d_all * (float)b.scales[j];
            if (d == 0.f) continue;
            for (int l = 0; l < 16; ++l) L[16 * j + l] = (int8_t)(round_clamped(x[16 * j + l] / d, -32, 31) + 32);
        }
        for (int h = 0; h < 2; ++h) {
            const int8_t* p = L + 128 * h;
            for (int l = 0; l < 32; ++l) {
                b.ql[64 * h + l] = (uint8_t)((p[l] & 0x0f) | ((p[l + 64] & 0x0f) << 4));
                b.ql[64 * h + 32 + l] = (uint8_t)((p[l + 32] & 0x0f) | ((p[l + 96] & 0x0f) << 4));
                b.qh[32 * h + l] = (uint8_t)((p[l] >> 4) | ((p[l + 32] >> 4) << 2) | ((p[l + 64] >> 4) << 4) |
                                             ((p[l + 96] >> 4) << 6));
            }
        }
    }
}

}  // namespace llama_crab
