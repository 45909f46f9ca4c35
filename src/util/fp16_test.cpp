#include "util/fp16.h"

#include <gtest/gtest.h>

#include <cmath>

namespace llama_crab {
namespace {

TEST(Fp16, RoundTripsEveryHalf) {
    for (uint32_t h = 0; h < 0x10000u; ++h) {
        const float f = fp16_to_fp32((fp16_t)h);
        if (std::isnan(f)) continue;
        EXPECT_EQ(fp32_to_fp16(f), (fp16_t)h) << "half 0x" << std::hex << h;
    }
}

TEST(Fp16, KnownValues) {
    EXPECT_EQ(fp32_to_fp16(1.0f), 0x3c00);
    EXPECT_EQ(fp32_to_fp16(-2.0f), 0xc000);
    EXPECT_EQ(fp32_to_fp16(65504.0f), 0x7bff);
    EXPECT_EQ(fp32_to_fp16(1e6f), 0x7c00);
    EXPECT_EQ(fp32_to_fp16(5.960464477539063e-08f), 0x0001);
    // halfway between 1 and the next half rounds to even (1.0)
    EXPECT_EQ(fp32_to_fp16(1.0f + 1.0f / 2048.0f), 0x3c00);
    EXPECT_EQ(fp32_to_fp16(1.0f + 3.0f / 2048.0f), 0x3c02);
    EXPECT_FLOAT_EQ(fp16_to_fp32(0x3555), 0.333251953125f);
}

TEST(Bf16, RoundsToNearestEven) {
    EXPECT_EQ(fp32_to_bf16(1.0f), 0x3f80);
    EXPECT_EQ(bf16_to_fp32(0x3f80), 1.0f);
    EXPECT_EQ(fp32_to_bf16(bits_float(0x3f808000u)), 0x3f80);  // tie -> even
    EXPECT_EQ(fp32_to_bf16(bits_float(0x3f818000u)), 0x3f82);  // tie -> even (up)
    EXPECT_TRUE(std::isnan(bf16_to_fp32(fp32_to_bf16(NAN))));
}

}  // namespace
}  // namespace llama_crab
