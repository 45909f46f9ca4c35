#include "ops/flash_attention.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "util/fp16.h"

namespace llama_crab {
namespace {

// A random cache of n_cells rows (f16 or f32), with positions: cells of a sequence in order, then "other" cells
// the caller leaves out, so the visited list has gaps and unordered positions when asked.
struct Case {
    int64_t hd;
    int nq;
    bool f16;
    int64_t n_cells;
    int64_t window;
    float softcap;
    bool shuffled;  // visit cells in a shuffled order (multi-sequence caches are not sorted by position)
};

struct Data {
    std::vector<float> q;
    std::vector<int32_t> q_pos, cells, cell_pos;
    std::vector<uint8_t> k, v;
    size_t stride = 0;
};

Data make_data(const Case& c, std::mt19937& rng) {
    std::normal_distribution<float> nd(0.0f, 1.0f);
    Data d;
    const int64_t total = c.n_cells * 2;  // every other cell belongs to "another sequence" and is not visited
    d.stride = (size_t)c.hd * (c.f16 ? 2 : 4);
    d.k.resize((size_t)total * d.stride);
    d.v.resize((size_t)total * d.stride);
    for (int64_t i = 0; i < total * c.hd; ++i) {
        const float kv[2] = {nd(rng) * 2.0f, nd(rng)};
        uint8_t* dst[2] = {d.k.data(), d.v.data()};
        for (int w = 0; w < 2; ++w) {
            if (c.f16) {
                reinterpret_cast<fp16_t*>(dst[w])[i] = fp32_to_fp16(kv[w]);
            } else {
                reinterpret_cast<float*>(dst[w])[i] = kv[w];
            }
        }
    }
    for (int64_t j = 0; j < c.n_cells; ++j) {
        d.cells.push_back((int32_t)(2 * j + 1));
        d.cell_pos.push_back((int32_t)j);
    }
    if (c.shuffled) {
        std::vector<size_t> idx(d.cells.size());
        for (size_t i = 0; i < idx.size(); ++i) idx[i] = i;
        std::shuffle(idx.begin(), idx.end(), rng);
        std::vector<int32_t> cells, pos;
        for (size_t i : idx) {
            cells.push_back(d.cells[i]);
            pos.push_back(d.cell_pos[i]);
        }
        d.cells = cells;
        d.cell_pos = pos;
    }
    // Queries: the last positions (a prompt's tail), one of them early so most blocks are masked for it.
    for (int i = 0; i < c.nq; ++i) {
        d.q_pos.push_back((int32_t)std::max<int64_t>(0, c.n_cells - 1 - (c.nq - 1 - i) / 2));
    }
    d.q_pos[0] = (int32_t)std::min<int64_t>(3, c.n_cells - 1);
    d.q.resize((size_t)(c.nq * c.hd));
    for (auto& x : d.q) x = c.f16 ? fp16_to_fp32(fp32_to_fp16(nd(rng))) : nd(rng);
    return d;
}

FlashTile tile(const Case& c, const Data& d, float* out) {
    FlashTile t;
    t.hd = c.hd;
    t.nq = c.nq;
    t.q = d.q.data();
    t.q_pos = d.q_pos.data();
    t.k = d.k.data();
    t.v = d.v.data();
    t.row_stride = d.stride;
    t.f16 = c.f16;
    t.cells = d.cells.data();
    t.cell_pos = d.cell_pos.data();
    t.n_cells = (int64_t)d.cells.size();
    t.window = c.window;
    t.kq_scale = 1.0f / std::sqrt((float)c.hd);
    t.softcap = c.softcap;
    t.out = out;
    return t;
}

// The textbook two-pass softmax in double, for the reference to be checked against.
std::vector<double> naive(const Case& c, const Data& d) {
    std::vector<double> out((size_t)(c.nq * c.hd), 0.0);
    auto elem = [&](const std::vector<uint8_t>& m, int32_t cell, int64_t x) -> double {
        const uint8_t* row = m.data() + (size_t)cell * d.stride;
        return c.f16 ? fp16_to_fp32(reinterpret_cast<const fp16_t*>(row)[x]) : reinterpret_cast<const float*>(row)[x];
    };
    for (int i = 0; i < c.nq; ++i) {
        std::vector<double> s(d.cells.size(), -INFINITY);
        double mx = -INFINITY;
        for (size_t j = 0; j < d.cells.size(); ++j) {
            const int64_t cp = d.cell_pos[j], qp = d.q_pos[(size_t)i];
            if (!(cp <= qp && cp + c.window > qp)) continue;
            double dot = 0.0;
            for (int64_t x = 0; x < c.hd; ++x) dot += elem(d.k, d.cells[j], x) * d.q[(size_t)(i * c.hd + x)];
            dot /= std::sqrt((double)c.hd);
            if (c.softcap > 0.0f) dot = std::tanh(dot / c.softcap) * c.softcap;
            s[j] = dot;
            mx = std::max(mx, dot);
        }
        if (mx == -INFINITY) continue;  // sees nothing: 0
        double sum = 0.0;
        for (auto& x : s) sum += x = std::exp(x - mx);
        for (size_t j = 0; j < d.cells.size(); ++j) {
            for (int64_t x = 0; x < c.hd; ++x) out[(size_t)(i * c.hd + x)] += s[j] / sum * elem(d.v, d.cells[j], x);
        }
    }
    return out;
}

std::vector<Case> cases() {
    std::vector<Case> cs;
    for (bool f16 : {true, false}) {
        for (int nq : {1, 3, 8}) {
            for (int64_t n : {1, 31, 32, 33, 200}) {
                cs.push_back({64, nq, f16, n, int64_t{1} << 40, 0.0f, false});
                cs.push_back({64, nq, f16, n, 16, 0.0f, true});  // sliding window, unsorted cells
            }
        }
        cs.push_back({128, 8, f16, 100, int64_t{1} << 40, 30.0f, false});  // soft-capping
        cs.push_back({8, 5, f16, 70, 40, 0.0f, true});
        cs.push_back({12, 4, f16, 70, 1 << 20, 0.0f, false});  // hd % 8 != 0: the reference everywhere
    }
    return cs;
}

// The reference agrees with a double-precision two-pass softmax: the f16 rounding of the weights (relative
// 2^-11 each) bounds the f16 case, f32 rounding the f32 case.
TEST(AttentionFlash, ReferenceMatchesTwoPassSoftmax) {
    std::mt19937 rng(11);
    for (const Case& c : cases()) {
        const Data d = make_data(c, rng);
        std::vector<float> out((size_t)(c.nq * c.hd));
        flash_attend_ref(tile(c, d, out.data()));
        const std::vector<double> want = naive(c, d);
        const double limit = c.f16 ? 2e-3 : 2e-5;
        for (size_t i = 0; i < out.size(); ++i) {
            ASSERT_NEAR(out[i], want[i], limit) << "hd " << c.hd << " nq " << c.nq << " n " << c.n_cells << " i " << i;
        }
    }
}

// Each SIMD level this CPU has agrees with the reference. Limits: f32 1e-5 (sum order of the dots, exp within
// 2 ulps); f16 1e-3, since a weight one f32 ulp away can round to the neighbouring f16 (2^-11 relative).
TEST(AttentionFlash, EveryLevelMatchesReference) {
    for (IsaLevel level : {IsaLevel::kAvx2, IsaLevel::kAvx512}) {
        if (!cpu_supports(level)) {
            std::printf("%s: not on this CPU\n", isa_name(level));
            continue;
        }
        std::mt19937 rng(12);
        double worst[2] = {0.0, 0.0};
        for (const Case& c : cases()) {
            const Data d = make_data(c, rng);
            std::vector<float> a((size_t)(c.nq * c.hd)), b(a.size());
            flash_attend_isa(level, tile(c, d, a.data()));
            flash_attend_ref(tile(c, d, b.data()));
            for (size_t i = 0; i < a.size(); ++i) {
                ASSERT_NEAR(a[i], b[i], c.f16 ? 1e-3 : 1e-5)
                    << isa_name(level) << " hd " << c.hd << " nq " << c.nq << " n " << c.n_cells;
                worst[c.f16] = std::max(worst[c.f16], (double)std::fabs(a[i] - b[i]));
            }
        }
        std::printf("%s: max |simd - reference|: f32 %.3g, f16 %.3g\n", isa_name(level), worst[0], worst[1]);
    }
}

// A query's result does not depend on the other queries of its tile, nor on masked cells next to its own: the
// same query alone, or beside others, gives the same bits.
TEST(AttentionFlash, QueryIndependentOfItsTile) {
    std::mt19937 rng(13);
    for (bool f16 : {true, false}) {
        const Case c{64, 8, f16, 150, 40, 0.0f, false};
        const Data d = make_data(c, rng);
        std::vector<float> all((size_t)(c.nq * c.hd)), one((size_t)c.hd);
        flash_attend(tile(c, d, all.data()));
        for (int i = 0; i < c.nq; ++i) {  // at the level in use
            Case ci = c;
            ci.nq = 1;
            Data di = d;
            di.q.assign(d.q.begin() + i * c.hd, d.q.begin() + (i + 1) * c.hd);
            di.q_pos = {d.q_pos[(size_t)i]};
            flash_attend(tile(ci, di, one.data()));
            for (int64_t x = 0; x < c.hd; ++x) ASSERT_EQ(one[(size_t)x], all[(size_t)(i * c.hd + x)]) << i << " " << x;
        }
    }
}

// Masked cells add exactly 0: a query that sees one cell gets that cell's V row (weight exactly 1).
TEST(AttentionFlash, SingleVisibleCellGivesItsValue) {
    std::mt19937 rng(14);
    const Case c{64, 2, false, 90, 1, 0.0f, true};  // window 1: each query sees only its own position
    const Data d = make_data(c, rng);
    std::vector<float> out((size_t)(c.nq * c.hd));
    flash_attend(tile(c, d, out.data()));
    for (int i = 0; i < c.nq; ++i) {
        size_t j = 0;
        while (d.cell_pos[j] != d.q_pos[(size_t)i]) ++j;
        const float* v = reinterpret_cast<const float*>(d.v.data() + (size_t)d.cells[j] * d.stride);
        for (int64_t x = 0; x < c.hd; ++x) ASSERT_EQ(out[(size_t)(i * c.hd + x)], v[x]);
    }
}

}  // namespace
}  // namespace llama_crab
