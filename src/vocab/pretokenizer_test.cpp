// Unit tests of the regex rewriting and the PCRE2 splitter.
#include <gtest/gtest.h>

#include "vocab/pretokenizer.h"
#include "vocab/unicode.h"

namespace llama_crab {
namespace {

std::vector<std::string> split(const std::vector<std::string_view>& regexes, std::string_view text,
                               bool byte_encode = false) {
    auto pt = PreTokenizer::create(regexes, byte_encode);
    EXPECT_TRUE(pt.ok()) << pt.error().to_string();
    if (!pt.ok()) return {};
    WordList words;
    (*pt)->split(text, words);
    std::vector<std::string> out;
    for (size_t i = 0; i < words.size(); ++i) out.emplace_back(words[i]);
    return out;
}

const PreTokenizerConfig& config(std::string_view name) {
    const PreTokenizerConfig* c = find_pretokenizer_config(name);
    EXPECT_NE(c, nullptr) << name;
    return c ? *c : default_pretokenizer_config();
}

using Words = std::vector<std::string>;

TEST(TokenizerRegex, AdaptsClassesToAscii) {
    EXPECT_EQ(*adapt_regex_for_pcre2(R"(\s+(?!\S))"), R"([\t\n\x0B\f\r\x20]+(?![^\t\n\x0B\f\r\x20]))");
    EXPECT_EQ(*adapt_regex_for_pcre2(R"([^\s\p{L}])"), R"([^\t\n\x0B\f\r\x20\p{L}])");
    EXPECT_EQ(*adapt_regex_for_pcre2(R"(\d{3})"), "[0-9]{3}");
    EXPECT_EQ(*adapt_regex_for_pcre2(R"([\p{P}\p{S}]+)"), R"((?:(?!~)[\p{P}\p{S}])+)");
    EXPECT_EQ(*adapt_regex_for_pcre2(R"([^\p{L}\p{S}])"), R"((?:~|[^\p{L}\p{S}]))");
    EXPECT_EQ(*adapt_regex_for_pcre2(R"([\p{S}~])"), R"([\p{S}~])");
    EXPECT_EQ(*adapt_regex_for_pcre2(R"(\p{S})"), R"((?:(?!~)\p{S}))");
    EXPECT_EQ(*adapt_regex_for_pcre2(R"([\]a]\\\[)"), R"([\]a]\\\[)");
    EXPECT_FALSE(adapt_regex_for_pcre2("[abc").ok());
    EXPECT_FALSE(adapt_regex_for_pcre2(R"([\S])").ok());
    EXPECT_FALSE(adapt_regex_for_pcre2("abc\\").ok());
}

TEST(TokenizerRegex, EveryTableEntryCompiles) {
    for (std::string_view name : pretokenizer_names()) {
        const PreTokenizerConfig* c = find_pretokenizer_config(name);
        ASSERT_NE(c, nullptr);
        auto pt = PreTokenizer::create(c->regexes, true);
        EXPECT_TRUE(pt.ok()) << name << ": " << (pt.ok() ? "" : pt.error().to_string());
    }
    // The ones the issue names explicitly.
    for (std::string_view name : {"default", "smollm", "command-r", "olmo", "dbrx", "stablelm2", "tekken", "bloom",
                                  "poro", "chatglm-bpe", "viking", "jais", "smaug-bpe", "gpt-4o", "deepseek-coder",
                                  "deepseek-llm", "falcon", "gpt-2", "llama-bpe", "mpt", "qwen2", "refact",
                                  "starcoder"}) {
        EXPECT_NE(find_pretokenizer_config(name), nullptr) << name;
    }
    EXPECT_EQ(find_pretokenizer_config("no-such"), nullptr);
}

TEST(TokenizerSplit, Gpt2) {
    const auto& re = config("gpt-2").regexes;
    EXPECT_EQ(split(re, "Hello world  it's 123!!"),
              (Words{"Hello", " world", " ", " it", "'s", " 123", "!!"}));
    EXPECT_EQ(split(re, "a\n\nb  "), (Words{"a", "\n", "\n", "b", "  "}));
    EXPECT_EQ(split(re, "\xd0\xbd\xd0\xb5 \xe4\xb8\xad"), (Words{"\xd0\xbd\xd0\xb5", " \xe4\xb8\xad"}));
}

TEST(TokenizerSplit, Llama3) {
    const auto& re = config("llama-bpe").regexes;
    EXPECT_EQ(split(re, "I'M 12345 ok\n\n  x"), (Words{"I", "'M", " ", "123", "45", " ok", "\n\n", " ", " x"}));
    EXPECT_EQ(split(re, "  \n"), (Words{"  \n"}));
}

TEST(TokenizerSplit, NonAsciiWhitespaceIsWhitespace) {
    // U+3000 and U+0085 count as \s (llama.cpp's whitespace set; PCRE2 alone would not take U+0085). Before a
    // letter, a run of two splits into two pieces ("\s+(?!\S)" then "\s+"): " ?\p{L}+" only takes an ASCII space.
    const auto& re = config("gpt-2").regexes;
    EXPECT_EQ(split(re, "a\xc2\x85\xc2\x85" "b"), (Words{"a", "\xc2\x85", "\xc2\x85", "b"}));
    EXPECT_EQ(split(re, "a\xe3\x80\x80\xe3\x80\x80" "b"), (Words{"a", "\xe3\x80\x80", "\xe3\x80\x80", "b"}));
    EXPECT_EQ(split(re, "a\xc2\x85 b"), (Words{"a", "\xc2\x85", " b"}));
}

TEST(TokenizerSplit, InvalidUtf8BecomesReplacementCharacters) {
    const auto& re = config("gpt-2").regexes;
    EXPECT_EQ(split(re, "a\xff\xfe"), (Words{"a", "\xef\xbf\xbd\xef\xbf\xbd"}));
    // Overlong forms decode to their code point, as in llama.cpp.
    EXPECT_EQ(split(re, "\xc1\x81" "b"), (Words{"Ab"}));
    // A surrogate is kept (as its 3-byte form) and behaves like punctuation-free "other".
    EXPECT_EQ(split(re, "x\xed\xa0\x80"), (Words{"x", "\xed\xa0\x80"}));
}

TEST(TokenizerSplit, DollarMatchesOnlyAtTheVeryEnd) {
    // deepseek-llm's "\s+$": with std::regex '$' is the end of the piece only, never before a final newline.
    EXPECT_EQ(split({R"(\s+$)"}, "a \n"), (Words{"a", " \n"}));
    EXPECT_EQ(split({R"(\s+$)"}, "a  b"), (Words{"a  b"}));
}

TEST(TokenizerSplit, EmptyMatchesDoNotLoop) {
    // superbpe's lookahead-only regex matches the empty string.
    const auto& re = config("superbpe").regexes;
    const auto words = split(re, "1234567 abc");
    std::string joined;
    for (const auto& w : words) joined += w;
    EXPECT_EQ(joined, "1234567 abc");
}

TEST(TokenizerSplit, ByteEncodingMapsEveryByte) {
    const auto words = split({"[^\\n]+|\\n+"}, std::string("a \x01\n", 4), true);
    ASSERT_EQ(words.size(), 2u);
    EXPECT_EQ(words[0], "a\xc4\xa0\xc4\x81");  // ' ' -> U+0120, 0x01 -> U+0101
    EXPECT_EQ(words[1], "\xc4\x8a");           // '\n' -> U+010A
}

TEST(TokenizerSplit, LongInputsDoNotExhaustTheJitStack) {
    const auto& re = config("gpt-4o").regexes;
    std::string long_word(200000, 'a');
    const auto words = split(re, long_word + " " + std::string(100000, ' ') + "x");
    std::string joined;
    for (const auto& w : words) joined += w;
    EXPECT_EQ(joined.size(), 300002u);
}

}  // namespace
}  // namespace llama_crab
