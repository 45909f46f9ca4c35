#include "llama/stop_matcher.h"

#include <gtest/gtest.h>

namespace llama_crab {
namespace {

TEST(StopMatcher, StopSplitAcrossPiecesIsNeverEmitted) {
    StopMatcher m({"###", "User:"});
    std::string shown;
    for (const char* piece : {"Hello", " wor", "ld #", "#", "# tail"}) {
        auto step = m.push(piece);
        shown += step.emit;
        if (step.hit) {
            EXPECT_EQ(*step.hit, "###");
            break;
        }
    }
    EXPECT_EQ(shown, "Hello world ");
    EXPECT_EQ(m.text(), "Hello world ");
}

TEST(StopMatcher, PartialMatchIsReleasedWhenItDiverges) {
    StopMatcher m({"User:"});
    auto a = m.push("ok Us");
    EXPECT_EQ(a.emit, "ok ");
    auto b = m.push("ed it");
    EXPECT_FALSE(b.hit);
    EXPECT_EQ(b.emit, "Used it");
    EXPECT_EQ(m.flush(), "");
}

TEST(StopMatcher, EarliestStopWinsAndFlushReleasesTheRest) {
    StopMatcher m({"b c", "a"});
    auto s = m.push("xx b c a");
    ASSERT_TRUE(s.hit);
    EXPECT_EQ(*s.hit, "b c");
    EXPECT_EQ(s.emit, "xx ");

    StopMatcher n({"END"});
    EXPECT_EQ(n.push("the EN").emit, "the ");
    EXPECT_EQ(n.flush(), "EN");
    EXPECT_EQ(n.text(), "the EN");

    StopMatcher none({});
    EXPECT_EQ(none.push("abc").emit, "abc");
}

}  // namespace
}  // namespace llama_crab
