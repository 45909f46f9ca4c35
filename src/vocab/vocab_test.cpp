// Unit tests on small hand-made vocabularies written with the GGUF writer.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "gguf/gguf_writer.h"
#include "vocab/unicode.h"
#include "vocab/vocab.h"
#include "vocab/vocab_data.h"

namespace llama_crab {
namespace {

constexpr const char* kSp = "\xe2\x96\x81";  // U+2581, SentencePiece's space

struct TokenSpec {
    std::string text;
    float score;
    int32_t type;
};

Result<std::shared_ptr<const Vocab>> build(const std::vector<std::pair<std::string, GgufWriteValue>>& kvs) {
    GgufWriter w;
    for (const auto& [k, v] : kvs) w.set(k, v);
    const std::vector<uint8_t> bytes = w.to_bytes();
    auto file = GgufFile::from_memory(bytes.data(), bytes.size());
    if (!file.ok()) return file.error();
    return Vocab::from_gguf(*file);
}

// A SentencePiece vocabulary: <unk> <s> </s>, 256 byte tokens, then the given pieces.
std::vector<std::pair<std::string, GgufWriteValue>> spm_kvs(const std::vector<TokenSpec>& pieces,
                                                             const std::string& name = "test-spm") {
    std::vector<TokenSpec> all = {{"<unk>", 0, 2}, {"<s>", 0, 3}, {"</s>", 0, 3}};
    for (int b = 0; b < 256; ++b) all.push_back({fmt::format("<0x{:02X}>", b), 0, 6});
    all.insert(all.end(), pieces.begin(), pieces.end());
    std::vector<std::string> texts;
    std::vector<float> scores;
    std::vector<int32_t> types;
    for (const auto& t : all) {
        texts.push_back(t.text);
        scores.push_back(t.score);
        types.push_back(t.type);
    }
    return {
        {"general.architecture", GgufWriteValue::string("llama")},
        {"general.name", GgufWriteValue::string(name)},
        {"tokenizer.ggml.model", GgufWriteValue::string("llama")},
        {"tokenizer.ggml.tokens", GgufWriteValue::strings(texts)},
        {"tokenizer.ggml.scores", GgufWriteValue::floats(scores)},
        {"tokenizer.ggml.token_type", GgufWriteValue::i32s(types)},
        {"tokenizer.ggml.bos_token_id", GgufWriteValue::u32(1)},
        {"tokenizer.ggml.eos_token_id", GgufWriteValue::u32(2)},
    };
}

constexpr int32_t kFirstPiece = 3 + 256;

std::shared_ptr<const Vocab> spm_vocab() {
    const std::vector<TokenSpec> pieces = {
        {kSp, -1, 1},                         // 259
        {"h", -2, 1},                         // 260
        {"e", -2, 1},                         // 261
        {"l", -2, 1},                         // 262
        {"o", -2, 1},                         // 263
        {"ll", -3, 1},                        // 264
        {"he", -4, 1},                        // 265
        {"llo", -3.5f, 1},                    // 266
        {"hello", -5, 1},                     // 267
        {std::string(kSp) + "hello", -1, 1},  // 268
        {std::string(kSp) + "h", -6, 1},      // 269
        {"<tool>", 0, 4},                     // 270: user-defined
        {"w", -2, 1},                         // 271
    };
    auto v = build(spm_kvs(pieces));
    EXPECT_TRUE(v.ok()) << v.error().to_string();
    return v.ok() ? *v : nullptr;
}

TEST(VocabSpm, LoadsDefaultsAndSpecialIds) {
    auto v = spm_vocab();
    ASSERT_TRUE(v);
    EXPECT_EQ(v->type(), VocabType::kSpm);
    EXPECT_EQ(v->bos(), 1);
    EXPECT_EQ(v->eos(), 2);
    EXPECT_EQ(v->unk(), 0);
    EXPECT_EQ(v->eot(), -1);
    EXPECT_EQ(v->pad(), -1);
    EXPECT_EQ(v->nl(), 3 + '\n');
    EXPECT_TRUE(v->add_bos());
    EXPECT_FALSE(v->add_eos());
    EXPECT_TRUE(v->add_space_prefix());
    EXPECT_TRUE(v->is_eog(2));
    EXPECT_TRUE(v->is_control(1));
    EXPECT_TRUE(v->is_byte(3));
    EXPECT_TRUE(v->is_user_defined(kFirstPiece + 11));
    EXPECT_EQ(v->token_text(kFirstPiece + 1), "h");
    EXPECT_FLOAT_EQ(v->token_score(kFirstPiece + 1), -2.0f);
    EXPECT_EQ(v->token_type(3), 6);
    EXPECT_EQ(v->find_token("llo"), kFirstPiece + 7);
    EXPECT_EQ(v->find_token("nope"), -1);
}

TEST(VocabSpm, MergesByScoreWithSpacePrefixAndByteFallback) {
    auto v = spm_vocab();
    ASSERT_TRUE(v);
    // "▁hello" is a token with a better score than any partial path.
    EXPECT_EQ(v->tokenize("hello", false, false), (std::vector<int32_t>{kFirstPiece + 9}));
    EXPECT_EQ(v->tokenize("hello", true, false), (std::vector<int32_t>{1, kFirstPiece + 9}));
    // "é" is not a piece: its two UTF-8 bytes become <0xC3> <0xA9>.
    EXPECT_EQ(v->tokenize("\xc3\xa9", false, false), (std::vector<int32_t>{kFirstPiece, 3 + 0xC3, 3 + 0xA9}));
    // Invalid UTF-8 is kept byte for byte.
    EXPECT_EQ(v->tokenize("\xff", false, false), (std::vector<int32_t>{kFirstPiece, 3 + 0xFF}));
    // "ll" (-3) first, then "he" (-4); "▁h" (-6) is stale by then: ▁ he ll.
    EXPECT_EQ(v->tokenize("hell", false, false), (std::vector<int32_t>{kFirstPiece, kFirstPiece + 6, kFirstPiece + 5}));
    EXPECT_TRUE(v->tokenize("", false, false).empty());
    EXPECT_EQ(v->tokenize("", true, false), (std::vector<int32_t>{1}));
}

TEST(VocabSpm, SpecialTokensAndSpacePrefixAfterThem) {
    auto v = spm_vocab();
    ASSERT_TRUE(v);
    // Control tokens are text unless parse_special.
    const auto plain = v->tokenize("<s>", false, false);
    EXPECT_EQ(std::count(plain.begin(), plain.end(), 1), 0);
    EXPECT_EQ(v->tokenize("<s>", false, true), (std::vector<int32_t>{1}));
    // A text after a special token gets the space prefix again.
    EXPECT_EQ(v->tokenize("<s>hello", false, true), (std::vector<int32_t>{1, kFirstPiece + 9}));
    // User-defined tokens are always recognised.
    EXPECT_EQ(v->tokenize("hello<tool>hello", false, false),
              (std::vector<int32_t>{kFirstPiece + 9, kFirstPiece + 11, kFirstPiece + 9}));
}

TEST(VocabSpm, DetokenizeStripsOneLeadingSpace) {
    auto v = spm_vocab();
    ASSERT_TRUE(v);
    const auto ids = v->tokenize("hello hello", true, false);
    // The BOS renders as "" but takes the one-space strip; with the BOS removed the strip is off (llama.cpp).
    EXPECT_EQ(v->detokenize(ids, false, false), " hello hello");
    EXPECT_EQ(v->detokenize(ids, true, false), " hello hello");
    EXPECT_EQ(v->detokenize(ids, false, true), "<s> hello hello");
    std::vector<int32_t> no_bos(ids.begin() + 1, ids.end());
    EXPECT_EQ(v->detokenize(no_bos, false, false), "hello hello");
    EXPECT_EQ(v->token_to_piece(kFirstPiece + 9, false), " hello");
    EXPECT_EQ(v->token_to_piece(1, false), "");
    EXPECT_EQ(v->token_to_piece(1, true), "<s>");
    EXPECT_EQ(v->token_to_piece(3 + 'A', false), "A");
}

TEST(VocabSpm, OutOfRangeIdsDoNotCrash) {
    auto v = spm_vocab();
    ASSERT_TRUE(v);
    EXPECT_EQ(v->token_to_piece(-1, true), "");
    EXPECT_EQ(v->token_to_piece(v->n_tokens(), true), "");
    // An out-of-range id renders as nothing (and, like any first token, takes the leading-space strip).
    EXPECT_EQ(v->detokenize({-7, kFirstPiece + 9, 1 << 30}, false, true), " hello");
    EXPECT_EQ(v->detokenize({kFirstPiece + 9, 1 << 30}, false, true), "hello");
    EXPECT_EQ(v->token_text(-1), "");
    EXPECT_FALSE(v->is_control(123456));
    StreamingDecoder dec(v);
    std::string out = dec.push(-3);
    out += dec.push(kFirstPiece + 9);
    EXPECT_EQ(out + dec.finish(), " hello");
}

TEST(VocabSpm, Phi3NameSetsRstripOnSpecialTokens) {
    std::vector<TokenSpec> pieces = {{"<|user|>", 0, 4}, {"a", -1, 1}, {kSp, -1, 1}, {std::string(kSp) + "a", -0.5f, 1}};
    auto v = build(spm_kvs(pieces, "Phi3"));
    ASSERT_TRUE(v.ok()) << v.error().to_string();
    const int32_t user = (*v)->find_token("<|user|>");
    EXPECT_TRUE((*v)->token_attr(user) & kTokenAttrRstrip);
    EXPECT_FALSE((*v)->token_attr(1) & kTokenAttrRstrip);  // <s> is excluded
    // rstrip eats the spaces after the token; the text after it gets the space prefix again.
    EXPECT_EQ((*v)->tokenize("<|user|>   a", false, false), (std::vector<int32_t>{user, (*v)->find_token("\xe2\x96\x81" "a")}));
}

TEST(VocabSpm, ConcurrentTokenizeIsConsistent) {
    auto v = spm_vocab();
    ASSERT_TRUE(v);
    const std::string text = "hello hell \xc3\xa9 <tool> hello";
    const auto expected = v->tokenize(text, true, true);
    std::vector<std::thread> threads;
    std::atomic<int> mismatches{0};
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&] {
            for (int i = 0; i < 200; ++i) {
                if (v->tokenize(text, true, true) != expected) ++mismatches;
            }
        });
    }
    for (auto& th : threads) th.join();
    EXPECT_EQ(mismatches.load(), 0);
}

// ---- BPE -------------------------------------------------------------------------------------------------------

std::string enc(std::string_view raw) {
    std::string out;
    for (char c : raw) out += unicode::byte_to_token_text(static_cast<uint8_t>(c));
    return out;
}

// A byte-level BPE vocabulary: the 256 byte tokens (GPT-2 encoded) + merged tokens, and an <|endoftext|> control.
std::vector<std::pair<std::string, GgufWriteValue>> bpe_kvs(const std::string& pre, bool with_merges = true) {
    std::vector<std::string> tokens;
    for (int b = 0; b < 256; ++b) tokens.push_back(unicode::byte_to_token_text(static_cast<uint8_t>(b)));
    const std::vector<std::pair<std::string, std::string>> pairs = {{"t", "h"},  {"th", "e"}, {" ", "the"}, {"l", "o"},
                                                                    {" ", "lo"}, {"e", "r"},  {"lo", "w"}};
    std::vector<std::string> merges, merged;
    for (const auto& [a, b] : pairs) {
        merges.push_back(enc(a) + " " + enc(b));
        merged.push_back(enc(a + b));
    }
    tokens.insert(tokens.end(), merged.begin(), merged.end());
    tokens.push_back("<|endoftext|>");
    std::vector<int32_t> types(tokens.size(), 1);
    types.back() = 3;
    std::vector<std::pair<std::string, GgufWriteValue>> kvs = {
        {"general.architecture", GgufWriteValue::string("gpt2")},
        {"tokenizer.ggml.model", GgufWriteValue::string("gpt2")},
        {"tokenizer.ggml.tokens", GgufWriteValue::strings(tokens)},
        {"tokenizer.ggml.token_type", GgufWriteValue::i32s(types)},
        {"tokenizer.ggml.bos_token_id", GgufWriteValue::u32(static_cast<uint32_t>(tokens.size() - 1))},
        {"tokenizer.ggml.eos_token_id", GgufWriteValue::u32(static_cast<uint32_t>(tokens.size() - 1))},
    };
    if (!pre.empty()) kvs.push_back({"tokenizer.ggml.pre", GgufWriteValue::string(pre)});
    if (with_merges) kvs.push_back({"tokenizer.ggml.merges", GgufWriteValue::strings(merges)});
    return kvs;
}

std::vector<int32_t> ids_of(const Vocab& v, const std::vector<std::string>& raw_pieces) {
    std::vector<int32_t> ids;
    for (const auto& p : raw_pieces) ids.push_back(v.find_token(enc(p)));
    return ids;
}

TEST(VocabBpe, MergesByRankWithinPreTokenizedWords) {
    auto v = build(bpe_kvs("gpt-2"));
    ASSERT_TRUE(v.ok()) << v.error().to_string();
    const Vocab& vocab = **v;
    EXPECT_EQ(vocab.type(), VocabType::kBpe);
    EXPECT_FALSE(vocab.add_bos());
    EXPECT_TRUE(vocab.clean_spaces());
    EXPECT_TRUE(vocab.warnings().empty());
    EXPECT_EQ(vocab.tokenize("the lower", false, false), ids_of(vocab, {"the", " lo", "w", "er"}));
    // " lower": "l o" (3), " lo" (4), "e r" (5); "lo w" (6) is stale. "lower": "lo", "er", then "low".
    EXPECT_EQ(vocab.tokenize("lower", false, false), ids_of(vocab, {"low", "er"}));
    EXPECT_EQ(vocab.detokenize(vocab.tokenize("the lower", false, false), false, false), "the lower");
    // Non-ASCII text goes through the byte tokens.
    EXPECT_EQ(vocab.detokenize(vocab.tokenize("h\xc3\xa9 \xe2\x82\xac", false, false), false, false), "h\xc3\xa9 \xe2\x82\xac");
    EXPECT_EQ(vocab.nl(), vocab.find_token(enc("\n")));
}

TEST(VocabBpe, ControlTokensOnlyWithParseSpecial) {
    auto v = build(bpe_kvs("gpt-2"));
    ASSERT_TRUE(v.ok());
    const int32_t eot = (*v)->find_token("<|endoftext|>");
    EXPECT_EQ((*v)->eot(), eot);  // found by its text
    EXPECT_TRUE((*v)->is_eog(eot));
    EXPECT_EQ((*v)->tokenize("the<|endoftext|>", false, true), (std::vector<int32_t>{(*v)->find_token(enc("the")), eot}));
    const auto plain = (*v)->tokenize("the<|endoftext|>", false, false);
    EXPECT_EQ(std::count(plain.begin(), plain.end(), eot), 0);
    EXPECT_EQ((*v)->detokenize({eot}, false, false), "");
    EXPECT_EQ((*v)->detokenize({eot}, false, true), "<|endoftext|>");
}

TEST(VocabBpe, UnknownOrMissingPreTokenizerFallsBackToDefaultWithWarning) {
    for (const std::string pre : {"no-such-pre", ""}) {
        auto v = build(bpe_kvs(pre));
        ASSERT_TRUE(v.ok()) << v.error().to_string();
        ASSERT_FALSE((*v)->warnings().empty()) << pre;
        EXPECT_EQ((*v)->tokenize("the lower", false, false), ids_of(**v, {"the", " lo", "w", "er"}));
    }
}

TEST(VocabBpe, Llama3PreTokenizerIgnoresMergesForWholeTokensAndAddsBos) {
    auto v = build(bpe_kvs("llama-bpe"));
    ASSERT_TRUE(v.ok()) << v.error().to_string();
    EXPECT_TRUE((*v)->add_bos());
    // " lo" is a token: with ignore_merges the word " lo" is emitted directly.
    EXPECT_EQ((*v)->tokenize(" lo", true, false), (std::vector<int32_t>{(*v)->bos(), (*v)->find_token(enc(" lo"))}));
}

TEST(VocabBpe, MissingMergesIsAnError) {
    auto v = build(bpe_kvs("gpt-2", false));
    ASSERT_FALSE(v.ok());
    EXPECT_NE(v.error().message.find("merges"), std::string::npos);
}

TEST(VocabLoad, RejectsBadMetadata) {
    {
        auto kvs = spm_kvs({});
        kvs.erase(kvs.begin() + 2);  // tokenizer.ggml.model
        auto v = build(kvs);
        ASSERT_FALSE(v.ok());
        EXPECT_NE(v.error().message.find("tokenizer.ggml.model"), std::string::npos);
    }
    {
        auto kvs = spm_kvs({});
        kvs[2].second = GgufWriteValue::string("t5");
        auto v = build(kvs);
        ASSERT_FALSE(v.ok());
        EXPECT_EQ(v.error().code, ErrorCode::kUnsupported);
    }
    {
        auto kvs = spm_kvs({});
        kvs[4].second = GgufWriteValue::floats({1.0f});  // fewer scores than tokens
        auto v = build(kvs);
        ASSERT_FALSE(v.ok());
        EXPECT_NE(v.error().message.find("scores"), std::string::npos);
    }
    {
        auto kvs = spm_kvs({});
        kvs[3].second = GgufWriteValue::i32s({1, 2, 3});  // tokens of the wrong type
        auto v = build(kvs);
        ASSERT_FALSE(v.ok());
        EXPECT_NE(v.error().message.find("tokenizer.ggml.tokens"), std::string::npos);
    }
    {
        auto kvs = spm_kvs({});
        kvs.push_back({"tokenizer.ggml.add_eos_token", GgufWriteValue::boolean(true)});
        kvs.push_back({"tokenizer.ggml.eos_token_id", GgufWriteValue::u32(999999)});  // out of range: keeps 2
        auto v = build(kvs);
        ASSERT_TRUE(v.ok()) << v.error().to_string();
        EXPECT_EQ((*v)->eos(), 2);
        EXPECT_FALSE((*v)->warnings().empty());
        EXPECT_EQ((*v)->tokenize("", true, false), (std::vector<int32_t>{1, 2}));
    }
}

// ---- clean-up and streaming ----------------------------------------------------------------------------------

TEST(VocabDetokenize, CleanUpSpacesLikeLlamaCpp) {
    using vocab_detail::clean_up_spaces;
    EXPECT_EQ(clean_up_spaces("Hello , world !"), "Hello, world!");
    EXPECT_EQ(clean_up_spaces("a ' b"), "a'b");
    EXPECT_EQ(clean_up_spaces("it 's he 'll I 'm we 're you 've don 't I 'd"), "it's he 'll I'm we're you've don 't I 'd");
    EXPECT_EQ(clean_up_spaces("a ' ' b"), "a'' b");
    EXPECT_EQ(clean_up_spaces(" ?"), "?");
    EXPECT_EQ(clean_up_spaces(""), "");
}

TEST(VocabStreaming, HoldsPartialUtf8AndSpaceCleanUp) {
    auto v = build(bpe_kvs("gpt-2"));
    ASSERT_TRUE(v.ok());
    const Vocab& vocab = **v;
    StreamingDecoder dec(*v);
    // "é" as two byte tokens: nothing comes out until the second byte.
    EXPECT_EQ(dec.push(vocab.find_token(enc("\xc3"))), "");
    // Complete, but held while the last three bytes could still take part in the space clean-up.
    EXPECT_EQ(dec.push(vocab.find_token(enc("\xa9"))), "");
    std::string out = dec.push(vocab.find_token(enc("x")));
    out += dec.push(vocab.find_token(enc(" ")));
    out += dec.push(vocab.find_token(enc(",")));  // " ," becomes ","
    out += dec.finish();
    EXPECT_EQ(out, "\xc3\xa9x,");
}

TEST(VocabStreaming, SentencePieceBytesAndLeadingSpace) {
    auto v = spm_vocab();
    ASSERT_TRUE(v);
    StreamingDecoder dec(v);
    EXPECT_EQ(dec.push(1), "");                 // BOS renders as nothing and takes the leading-space strip
    EXPECT_EQ(dec.push(kFirstPiece + 9), " hello");
    EXPECT_EQ(dec.push(3 + 0xE2), "");
    EXPECT_EQ(dec.push(3 + 0x82), "");
    EXPECT_EQ(dec.push(3 + 0xAC), "\xe2\x82\xac");
    EXPECT_EQ(dec.push(3 + 0xE2), "");
    EXPECT_EQ(dec.finish(), "\xe2");  // incomplete at the end: flushed as is
    // The decoder is reusable after finish(); the first token loses its leading space.
    EXPECT_EQ(dec.push(kFirstPiece + 9), "hello");
    EXPECT_EQ(dec.finish(), "");
}

TEST(VocabStreaming, TrailingEosIsDroppedOnlyAtTheEnd) {
    auto kvs = spm_kvs({{"x", -1, 1}});
    kvs.push_back({"tokenizer.ggml.add_eos_token", GgufWriteValue::boolean(true)});
    auto v = build(kvs);
    ASSERT_TRUE(v.ok());
    const int32_t x = (*v)->find_token("x");
    const std::vector<int32_t> ids = {1, x, 2, x, 2};
    StreamingDecoder dec(*v, /*remove_special=*/true, /*unparse_special=*/true);
    std::string out;
    for (int32_t id : ids) out += dec.push(id);
    out += dec.finish();
    EXPECT_EQ(out, (*v)->detokenize(ids, true, true));
    EXPECT_EQ(out, "x</s>x");
}

}  // namespace
}  // namespace llama_crab
