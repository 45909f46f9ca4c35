#include "ops/attention_kernels.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

namespace llama_crab {
namespace {

TEST(AttentionKernels, DispatchMatchesScalarReference) {
    std::mt19937 rng(5);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    for (int64_t hd : {8, 64, 128}) {
        for (int n_q = 1; n_q <= kMaxQueriesPerKvRow; ++n_q) {
            std::vector<float> q((size_t)(hd * n_q)), kf((size_t)hd), p((size_t)n_q);
            std::vector<fp16_t> kh((size_t)hd);
            for (auto& x : q) x = nd(rng);
            for (auto& x : p) x = std::fabs(nd(rng));
            for (int64_t d = 0; d < hd; ++d) {
                kf[(size_t)d] = nd(rng);
                kh[(size_t)d] = fp32_to_fp16(kf[(size_t)d]);
            }
            float a[8], b[8];
            kq_dot_f16(hd, kh.data(), q.data(), n_q, a);
            kq_dot_f16_ref(hd, kh.data(), q.data(), n_q, b);
            for (int i = 0; i < n_q; ++i) EXPECT_NEAR(a[i], b[i], 1e-4 * std::sqrt((double)hd)) << hd << " " << n_q;
            kq_dot_f32(hd, kf.data(), q.data(), n_q, a);
            kq_dot_f32_ref(hd, kf.data(), q.data(), n_q, b);
            for (int i = 0; i < n_q; ++i) EXPECT_NEAR(a[i], b[i], 1e-4 * std::sqrt((double)hd));
            // Against a double-precision dot.
            for (int i = 0; i < n_q; ++i) {
                double s = 0;
                for (int64_t d = 0; d < hd; ++d) s += (double)kf[(size_t)d] * q[(size_t)(i * hd + d)];
                EXPECT_NEAR(a[i], s, 1e-4 * std::sqrt((double)hd));
            }

            std::vector<float> acc1((size_t)(hd * n_q), 0.5f), acc2 = acc1;
            pv_axpy_f16(hd, kh.data(), p.data(), n_q, acc1.data());
            pv_axpy_f16_ref(hd, kh.data(), p.data(), n_q, acc2.data());
            for (size_t i = 0; i < acc1.size(); ++i) EXPECT_NEAR(acc1[i], acc2[i], 1e-5);
            acc1.assign(acc1.size(), 0.25f);
            acc2 = acc1;
            pv_axpy_f32(hd, kf.data(), p.data(), n_q, acc1.data());
            pv_axpy_f32_ref(hd, kf.data(), p.data(), n_q, acc2.data());
            for (size_t i = 0; i < acc1.size(); ++i) EXPECT_NEAR(acc1[i], acc2[i], 1e-5);
        }
    }
}

}  // namespace
}  // namespace llama_crab
