#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <random>

#include "llama_crab/text.h"

namespace llama_crab {
namespace {

// What the server's JSON writes for a string (nlohmann's replace handler), decoded back to bytes.
std::string as_nlohmann_replaces(const std::string& bytes) {
    const std::string dumped = nlohmann::json(bytes).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    return nlohmann::json::parse(dumped).get<std::string>();
}

TEST(Utf8, WellFormedTextIsUnchanged) {
    for (const std::string s : {"", "plain", "h\xC3\xA9llo", "\xE2\x82\xAC 5", "\xF0\x9F\x98\x80!", "\xF4\x8F\xBF\xBF"}) {
        EXPECT_TRUE(is_valid_utf8(s)) << s;
        EXPECT_EQ(to_valid_utf8(s), s);
    }
}

TEST(Utf8, IllFormedPartsBecomeOneReplacementEach) {
    const std::string r = "\xEF\xBF\xBD";
    EXPECT_EQ(to_valid_utf8("time\xF2\x85\xB2on\x98"), "time" + r + "on" + r);  // a cut 4-byte form, a stray byte
    EXPECT_EQ(to_valid_utf8("ab\xE2\x82"), "ab" + r);                             // cut at the end (reply cut by -n)
    EXPECT_EQ(to_valid_utf8("\xC0\xAF"), r + r);                                  // overlong: both bytes are bad
    EXPECT_EQ(to_valid_utf8("\xED\xA0\x80"), r + r + r);                          // a surrogate
    EXPECT_EQ(to_valid_utf8("\xF4\x90\x80\x80"), r + r + r + r);                  // above U+10FFFF
    EXPECT_EQ(to_valid_utf8("\xE2\x82x"), r + "x");                              // the byte that broke it is kept
    EXPECT_FALSE(is_valid_utf8("ab\xE2\x82"));
    EXPECT_FALSE(is_valid_utf8("\xFF"));
}

TEST(Utf8, AgreesWithTheServersJsonOnRandomBytes) {
    std::mt19937 rng(7);
    const uint8_t interesting[] = {0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2,
                                   0xDF, 0xE0, 0xE1, 0xEC, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xFF};
    for (int iter = 0; iter < 20000; ++iter) {
        std::string s;
        const int len = (int)(rng() % 12);
        for (int i = 0; i < len; ++i) s += (char)interesting[rng() % sizeof(interesting)];
        const std::string ours = to_valid_utf8(s);
        ASSERT_EQ(ours, as_nlohmann_replaces(s)) << testing::PrintToString(s);
        ASSERT_TRUE(is_valid_utf8(ours));
        ASSERT_EQ(is_valid_utf8(s), ours == s);
    }
}

}  // namespace
}  // namespace llama_crab
