#include <gtest/gtest.h>

#include "vocab/unicode.h"

namespace llama_crab::unicode {
namespace {

TEST(TokenizerUnicode, DecodesLikeLlamaCpp) {
    EXPECT_EQ(decode_lenient("a\xc3\xa9\xe2\x82\xac\xf0\x9f\xa6\x99"), (std::vector<uint32_t>{'a', 0xE9, 0x20AC, 0x1F999}));
    EXPECT_EQ(decode_lenient("\x80"), (std::vector<uint32_t>{kReplacement}));
    EXPECT_EQ(decode_lenient("\xc3"), (std::vector<uint32_t>{kReplacement}));
    EXPECT_EQ(decode_lenient("\xe2\x82" "a"), (std::vector<uint32_t>{kReplacement, kReplacement, 'a'}));
    EXPECT_EQ(decode_lenient("\xc0\x80"), (std::vector<uint32_t>{0}));           // overlong accepted
    EXPECT_EQ(decode_lenient("\xed\xa0\x80"), (std::vector<uint32_t>{0xD800}));  // surrogate accepted
    EXPECT_EQ(decode_lenient("\xf7\xbf\xbf\xbf"), (std::vector<uint32_t>{0x1FFFFF}));
    EXPECT_EQ(decode_lenient("\xf8"), (std::vector<uint32_t>{kReplacement}));
}

TEST(TokenizerUnicode, EncodesAndClassifies) {
    EXPECT_EQ(to_utf8(0x20AC), "\xe2\x82\xac");
    EXPECT_EQ(to_utf8(0xD800), "\xed\xa0\x80");
    EXPECT_EQ(to_utf8(0x110000), "\xef\xbf\xbd");
    EXPECT_TRUE(is_whitespace(' '));
    EXPECT_TRUE(is_whitespace(0x85));
    EXPECT_TRUE(is_whitespace(0x3000));
    EXPECT_FALSE(is_whitespace(0x1C));
    EXPECT_FALSE(is_whitespace(0x200B));
    EXPECT_TRUE(classify(0x301).accent_mark);
    EXPECT_TRUE(classify('!').punctuation);
    EXPECT_TRUE(classify('$').symbol);
    EXPECT_TRUE(classify(0xE0000 + 0x7F).control);  // unassigned counts as \p{C}
    EXPECT_EQ(nfd_first(0xC4), static_cast<uint32_t>('A'));
    EXPECT_EQ(to_lower('Q'), static_cast<uint32_t>('q'));
}

TEST(TokenizerUnicode, ByteTableRoundTrips) {
    for (int b = 0; b < 256; ++b) {
        const auto cpts = decode_lenient(byte_to_token_text(static_cast<uint8_t>(b)));
        ASSERT_EQ(cpts.size(), 1u);
        EXPECT_EQ(token_cpt_to_byte(cpts[0]), b);
    }
    EXPECT_EQ(byte_to_token_text(' '), "\xc4\xa0");  // U+0120 'Ġ'
    EXPECT_EQ(token_cpt_to_byte('a'), 'a');
    EXPECT_EQ(token_cpt_to_byte(0x4E2D), -1);
}

TEST(TokenizerUnicode, IncompleteTail) {
    EXPECT_EQ(incomplete_utf8_tail(""), 0u);
    EXPECT_EQ(incomplete_utf8_tail("ab"), 0u);
    EXPECT_EQ(incomplete_utf8_tail("a\xe2"), 1u);
    EXPECT_EQ(incomplete_utf8_tail("a\xe2\x82"), 2u);
    EXPECT_EQ(incomplete_utf8_tail("a\xe2\x82\xac"), 0u);
    EXPECT_EQ(incomplete_utf8_tail("\xf0\x9f\xa6"), 3u);
    EXPECT_EQ(incomplete_utf8_tail("\x80\x80"), 0u);  // stray continuation bytes can never complete
    EXPECT_EQ(incomplete_utf8_tail("\xff"), 0u);
}

}  // namespace
}  // namespace llama_crab::unicode
