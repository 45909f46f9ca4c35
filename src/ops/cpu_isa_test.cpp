// Tests of the ISA level choice (ops/cpu_isa.h): consistent answers, and a level in use that the CPU supports.
#include "ops/cpu_isa.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "llama_crab/system.h"

namespace llama_crab {
namespace {

TEST(CpuIsa, LevelsAreNamedAndOrdered) {
    EXPECT_STREQ(isa_name(IsaLevel::kScalar), "scalar");
    EXPECT_STREQ(isa_name(IsaLevel::kAvx2), "avx2");
    EXPECT_STREQ(isa_name(IsaLevel::kAvx512), "avx512");
    EXPECT_LT(IsaLevel::kScalar, IsaLevel::kAvx2);
    EXPECT_LT(IsaLevel::kAvx2, IsaLevel::kAvx512);
}

TEST(CpuIsa, SupportAgreesWithMissingFeatures) {
    EXPECT_TRUE(cpu_supports(IsaLevel::kScalar));
    EXPECT_EQ(isa_missing_features(IsaLevel::kScalar), "");
    for (IsaLevel l : kIsaLevels) {
        EXPECT_EQ(cpu_supports(l), isa_missing_features(l).empty()) << isa_name(l) << ": " << isa_missing_features(l);
        // A level needs everything the levels under it need.
        if (l > IsaLevel::kScalar && cpu_supports(l)) {
            EXPECT_TRUE(cpu_supports((IsaLevel)((int)l - 1)));
        }
    }
    EXPECT_TRUE(cpu_supports(cpu_isa_detected()));
    if (cpu_isa_detected() < IsaLevel::kAvx512) {
        EXPECT_NE(isa_missing_features(IsaLevel::kAvx512), "");
        std::printf("this CPU lacks for avx512: %s\n", isa_missing_features(IsaLevel::kAvx512).c_str());
    }
}

// The level in use is the detected one, or the one LLAMA_CRAB_ISA names when the CPU has it; never more than the
// CPU supports.
TEST(CpuIsa, LevelInUseFollowsTheEnvironment) {
    const IsaLevel used = cpu_isa();
    EXPECT_TRUE(cpu_supports(used));
    EXPECT_LE(used, cpu_isa_detected());
    EXPECT_STREQ(kernel_isa_name(), isa_name(used));
    EXPECT_EQ(cpu_has_avx2(), used >= IsaLevel::kAvx2);
    const char* env = std::getenv("LLAMA_CRAB_ISA");
    bool named = false;
    for (IsaLevel l : kIsaLevels) {
        if (env != nullptr && std::strcmp(env, isa_name(l)) == 0 && cpu_supports(l)) {
            EXPECT_EQ(used, l);
            named = true;
        }
    }
    if (!named) {
        EXPECT_EQ(used, cpu_isa_detected()) << "LLAMA_CRAB_ISA=" << (env != nullptr ? env : "(unset)");
    }
}

}  // namespace
}  // namespace llama_crab
