// Tokenizer tests against llama.cpp's own test vectors (../shared/testdata/vocab) and the stories260K references.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>

#include "support/testdata.h"
#include "vocab/unicode.h"
#include "vocab/vocab.h"
#include "vocab/vocab_data.h"

namespace llama_crab {
namespace {

using testing::testdata_path;

std::string read_text(const std::filesystem::path& p) {
    auto bytes = testing::read_file_bytes(p);
    return std::string(bytes.begin(), bytes.end());
}

std::shared_ptr<const Vocab> load_vocab(const std::filesystem::path& path) {
    auto file = GgufFile::open(path.string());
    if (!file.ok()) {
        ADD_FAILURE() << path << ": " << file.error().to_string();
        return nullptr;
    }
    auto vocab = Vocab::from_gguf(*file);
    if (!vocab.ok()) {
        ADD_FAILURE() << path << ": " << vocab.error().to_string();
        return nullptr;
    }
    return *vocab;
}

struct TestCase {
    std::string text;
    std::vector<int32_t> ids;
};

// The framing of llama.cpp's tests/test-tokenizer-0.cpp: inputs separated by "\n__ggml_vocab_test__\n" (a final
// separator does not start another input), one output line per input with space-separated ids.
std::vector<TestCase> read_cases(const std::string& gguf_name) {
    const std::string inp = read_text(testdata_path("vocab/" + gguf_name + ".inp"));
    const std::string outp = read_text(testdata_path("vocab/" + gguf_name + ".out"));
    const std::string sep = "\n__ggml_vocab_test__\n";
    std::vector<std::string> inputs;
    for (size_t pos = 0; pos < inp.size();) {
        const size_t next = inp.find(sep, pos);
        if (next == std::string::npos) {
            inputs.push_back(inp.substr(pos));
            break;
        }
        inputs.push_back(inp.substr(pos, next - pos));
        pos = next + sep.size();
    }
    std::vector<std::vector<int32_t>> outputs;
    std::istringstream lines(outp);
    for (std::string line; std::getline(lines, line);) {
        std::vector<int32_t> ids;
        std::istringstream words(line);
        for (long id; words >> id;) ids.push_back(static_cast<int32_t>(id));
        outputs.push_back(std::move(ids));
    }
    EXPECT_EQ(inputs.size(), outputs.size()) << gguf_name;
    std::vector<TestCase> cases;
    for (size_t i = 0; i < std::min(inputs.size(), outputs.size()); ++i) cases.push_back({inputs[i], outputs[i]});
    return cases;
}

std::string ids_to_string(const std::vector<int32_t>& ids) {
    std::string s;
    for (int32_t id : ids) {
        s += ' ';
        s += std::to_string(id);
    }
    return s;
}

std::string escape(const std::string& s) {
    std::string out;
    for (unsigned char c : s) {
        if (c == '\n') out += "\\n";
        else if (c == '\t') out += "\\t";
        else if (c < 0x20) out += fmt::format("\\x{:02x}", c);
        else out += static_cast<char>(c);
    }
    return out;
}

const char* const kVocabFiles[] = {
    "ggml-vocab-bert-bge.gguf",  "ggml-vocab-deepseek-coder.gguf", "ggml-vocab-deepseek-llm.gguf",
    "ggml-vocab-falcon.gguf",    "ggml-vocab-gpt-2.gguf",          "ggml-vocab-llama-bpe.gguf",
    "ggml-vocab-llama-spm.gguf", "ggml-vocab-mpt.gguf",            "ggml-vocab-phi-3.gguf",
    "ggml-vocab-qwen2.gguf",     "ggml-vocab-refact.gguf",         "ggml-vocab-starcoder.gguf",
};

// Test strings whose detokenisation differs from the input in llama.cpp too, and why. Everything else must round-trip.
// - BPE vocabs with clean_spaces drop the space in " ?" (and similar) when detokenising;
// - WordPiece lowercases, strips accents and spaces around punctuation.
bool round_trip_expected(const Vocab& v, const std::string& text) {
    if (v.type() == VocabType::kWpm) return false;
    if (v.clean_spaces()) {
        for (const char* p : {" ?", " !", " .", " ,", " 's", " 'm", " 're", " 've", " ' "}) {
            if (text.find(p) != std::string::npos) return false;
        }
    }
    return true;
}

class VocabTestVectors : public ::testing::TestWithParam<const char*> {
protected:
    void SetUp() override {
        if (!testing::testdata_available()) GTEST_SKIP() << "test data not found";
        vocab_ = load_vocab(testdata_path(std::string("vocab/") + GetParam()));
        ASSERT_TRUE(vocab_);
        cases_ = read_cases(GetParam());
        ASSERT_FALSE(cases_.empty());
    }
    std::shared_ptr<const Vocab> vocab_;
    std::vector<TestCase> cases_;
};

TEST_P(VocabTestVectors, TokenizeMatchesLlamaCpp) {
    int passed = 0;
    for (const TestCase& c : cases_) {
        const auto ids = vocab_->tokenize(c.text, /*add_special=*/false, /*parse_special=*/false);
        if (ids == c.ids) {
            ++passed;
        } else {
            ADD_FAILURE() << GetParam() << ": '" << escape(c.text) << "'\n  expected:" << ids_to_string(c.ids)
                          << "\n  got:     " << ids_to_string(ids);
        }
    }
    std::printf("[ vectors  ] %s: %d/%zu test strings match llama.cpp\n", GetParam(), passed, cases_.size());
}

TEST_P(VocabTestVectors, DetokenizeRoundTrips) {
    int checked = 0;
    for (const TestCase& c : cases_) {
        // As llama.cpp's common_detokenize: remove_special=false, unparse_special=true.
        const std::string back = vocab_->detokenize(c.ids, false, true);
        if (!round_trip_expected(*vocab_, c.text)) {
            // The only difference allowed is the space clean-up.
            if (vocab_->type() != VocabType::kWpm) {
                EXPECT_EQ(back, vocab_detail::clean_up_spaces(c.text)) << GetParam();
            }
            continue;
        }
        ++checked;
        EXPECT_EQ(escape(back), escape(c.text)) << GetParam();
    }
    std::printf("[ roundtrip] %s: %d/%zu test strings checked\n", GetParam(), checked, cases_.size());
}

// Byte positions of `text` that lie strictly inside a well-formed multi-byte UTF-8 character.
std::vector<bool> inside_char(const std::string& text) {
    std::vector<bool> inside(text.size() + 1, false);
    for (size_t i = 0; i < text.size();) {
        const auto b = static_cast<uint8_t>(text[i]);
        const size_t len = b < 0x80 ? 1 : (b >= 0xC2 && b <= 0xDF) ? 2 : (b >= 0xE0 && b <= 0xEF) ? 3
                         : (b >= 0xF0 && b <= 0xF4) ? 4 : 1;
        bool ok = i + len <= text.size();
        for (size_t k = 1; ok && k < len; ++k) ok = (static_cast<uint8_t>(text[i + k]) & 0xC0) == 0x80;
        if (!ok) {
            ++i;
            continue;
        }
        for (size_t k = 1; k < len; ++k) inside[i + k] = true;
        i += len;
    }
    return inside;
}

std::string stream_all(const std::shared_ptr<const Vocab>& v, const std::vector<int32_t>& ids, bool remove_special,
                       bool unparse_special) {
    StreamingDecoder dec(v, remove_special, unparse_special);
    std::string out;
    std::vector<size_t> cuts;
    for (int32_t id : ids) {
        out += dec.push(id);
        cuts.push_back(out.size());
    }
    out += dec.finish();
    // Only complete UTF-8 characters come out before finish(): no push() result ends inside a character.
    const std::vector<bool> inside = inside_char(out);
    for (size_t cut : cuts) EXPECT_FALSE(inside[cut]) << "a push() result splits a UTF-8 character at byte " << cut;
    return out;
}

TEST_P(VocabTestVectors, StreamingDecoderMatchesDetokenize) {
    for (const TestCase& c : cases_) {
        std::vector<int32_t> ids = vocab_->tokenize(c.text, true, false);
        for (bool rs : {false, true}) {
            for (bool us : {false, true}) {
                ASSERT_EQ(stream_all(vocab_, ids, rs, us), vocab_->detokenize(ids, rs, us))
                    << GetParam() << " '" << escape(c.text) << "' remove_special=" << rs << " unparse=" << us;
            }
        }
    }
}

TEST_P(VocabTestVectors, StreamingDecoderMatchesDetokenizeOnRandomStreams) {
    std::mt19937 rng(1234);
    const int32_t n = vocab_->n_tokens();
    // Bias towards special, byte and punctuation-like tokens, where the tricky cases are.
    std::vector<int32_t> interesting;
    for (int32_t id = 0; id < n; ++id) {
        const std::string_view t = vocab_->token_text(id);
        if (!vocab_->is_normal(id) || t.size() <= 2 || t.find('\'') != std::string_view::npos) interesting.push_back(id);
    }
    for (int round = 0; round < 300; ++round) {
        std::vector<int32_t> ids(1 + rng() % 40);
        for (auto& id : ids) {
            const unsigned r = rng() % 10;
            if (r < 5 && !interesting.empty()) id = interesting[rng() % interesting.size()];
            else if (r == 5) id = vocab_->bos() >= 0 ? vocab_->bos() : 0;
            else if (r == 6) id = vocab_->eos() >= 0 ? vocab_->eos() : 0;
            else id = static_cast<int32_t>(rng() % n);
        }
        for (bool rs : {false, true}) {
            for (bool us : {false, true}) {
                ASSERT_EQ(stream_all(vocab_, ids, rs, us), vocab_->detokenize(ids, rs, us)) << GetParam();
            }
        }
    }
}

TEST_P(VocabTestVectors, ParseSpecialRecognisesControlTokens) {
    // Every control token written in text with parse_special comes back as its id (llama.cpp's
    // test-tokenizer-1 does the same for all tokens).
    int checked = 0;
    for (int32_t id = 0; id < vocab_->n_tokens(); ++id) {
        if (!vocab_->is_control(id)) continue;
        const std::string text(vocab_->token_text(id));
        const auto ids = vocab_->tokenize(text, false, true);
        ASSERT_FALSE(ids.empty()) << GetParam() << " " << text;
        EXPECT_NE(std::find(ids.begin(), ids.end(), id), ids.end()) << GetParam() << " " << text;
        ++checked;
    }
    EXPECT_GT(checked, 0);
}

INSTANTIATE_TEST_SUITE_P(AllVocabs, VocabTestVectors, ::testing::ValuesIn(kVocabFiles),
                         [](const ::testing::TestParamInfo<const char*>& info) {
                             std::string name = info.param;
                             name = name.substr(11, name.size() - 11 - 5);  // strip "ggml-vocab-" and ".gguf"
                             for (char& c : name) {
                                 if (c == '-') c = '_';
                             }
                             return name;
                         });

// llama.cpp's tests/test-tokenizer-1-spm.cpp on the Llama SentencePiece vocab: every token's text tokenises back to
// the same text, and every code point survives tokenize + detokenize.
TEST(VocabLlamaSpm, EveryTokenAndCodepointRoundTrips) {
    if (!testing::testdata_available()) GTEST_SKIP() << "test data not found";
    auto v = load_vocab(testdata_path("vocab/ggml-vocab-llama-spm.gguf"));
    ASSERT_TRUE(v);
    for (int32_t id = 0; id < v->n_tokens(); ++id) {
        const std::string str = v->detokenize({id}, false, true);
        const auto ids = v->tokenize(str, false, true);
        ASSERT_EQ(v->detokenize(ids, false, true), str) << "token " << id;
    }
    for (uint32_t cp = 0; cp < 0x110000; ++cp) {
        if ((cp >= 0xD800 && cp <= 0xDFFF) || (cp >= 0x40000 && cp <= 0xE0000)) continue;
        const std::string str = unicode::to_utf8(cp);
        const auto ids = v->tokenize(str, false, true);
        if (cp != 0x2581) {
            ASSERT_EQ(v->detokenize(ids, false, true), str) << "code point " << cp;
        }
    }
}

std::string hex_to_bytes(const std::string& hex) {
    std::string out;
    for (size_t i = 0; i + 1 < hex.size(); i += 2) out += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
    return out;
}

TEST(VocabStories260K, TextCasesMatchLlamaCpp) {
    if (!testing::testdata_available()) GTEST_SKIP() << "test data not found";
    auto v = load_vocab(testdata_path("models/stories260K.gguf"));
    ASSERT_TRUE(v);
    EXPECT_EQ(v->type(), VocabType::kSpm);
    EXPECT_TRUE(v->add_bos());
    EXPECT_TRUE(v->add_space_prefix());
    EXPECT_EQ(v->bos(), 1);
    EXPECT_EQ(v->eos(), 2);
    EXPECT_EQ(v->n_tokens(), 512);
    std::ifstream in(testdata_path("refs/stories260K.json"));
    const auto refs = nlohmann::json::parse(in);
    int n_cases = 0;
    for (const auto& c : refs.at("text_cases").at("cases")) {
        const std::string prompt = c.at("prompt");
        const auto prompt_tokens = c.at("prompt_tokens").get<std::vector<int32_t>>();
        const auto greedy = c.at("greedy").get<std::vector<int32_t>>();
        EXPECT_EQ(v->tokenize(prompt, true, false), prompt_tokens) << prompt;

        std::string pieces;
        for (int32_t id : greedy) pieces += v->token_to_piece(id, false);
        EXPECT_EQ(pieces, hex_to_bytes(c.at("continuation_text").at("hex"))) << prompt;
        EXPECT_EQ(v->detokenize(greedy, false, false), hex_to_bytes(c.at("continuation_detok").at("hex"))) << prompt;

        std::vector<int32_t> full = prompt_tokens;
        full.insert(full.end(), greedy.begin(), greedy.end());
        EXPECT_EQ(v->detokenize(full, false, false), hex_to_bytes(c.at("full_detok").at("hex"))) << prompt;
        EXPECT_EQ(v->detokenize(full, true, false), hex_to_bytes(c.at("full_detok_remove_special").at("hex")))
            << prompt;
        EXPECT_EQ(stream_all(v, greedy, false, false), hex_to_bytes(c.at("continuation_detok").at("hex")));
        EXPECT_EQ(stream_all(v, full, false, false), hex_to_bytes(c.at("full_detok").at("hex")));
        EXPECT_EQ(stream_all(v, full, true, false), hex_to_bytes(c.at("full_detok_remove_special").at("hex")));
        ++n_cases;
    }
    EXPECT_EQ(n_cases, 2);
}

TEST(VocabModels, LoadsModelVocabularies) {
    if (!testing::testdata_available()) GTEST_SKIP() << "test data not found";
    auto v = load_vocab(testdata_path("models/llama-2-tiny-random.gguf"));
    ASSERT_TRUE(v);
    EXPECT_EQ(v->n_tokens(), 32000);
    EXPECT_EQ(v->nl(), 13);  // <0x0A>
    EXPECT_EQ(v->tokenize("Hello world", true, false), (std::vector<int32_t>{1, 15043, 3186}));
}

}  // namespace
}  // namespace llama_crab

namespace llama_crab {
namespace {

// llama.cpp's tests/test-tokenizer-1-bpe.cpp (disabled upstream for slowness): every token's text tokenises back to
// text that detokenizes the same, and every code point survives tokenize + detokenize.
class VocabBpeRoundTrip : public ::testing::TestWithParam<const char*> {};

TEST_P(VocabBpeRoundTrip, EveryTokenAndCodepointRoundTrips) {
    if (!testing::testdata_available()) GTEST_SKIP() << "test data not found";
    auto v = load_vocab(testdata_path(std::string("vocab/") + GetParam()));
    ASSERT_TRUE(v);
    int failures = 0;
    for (int32_t id = 0; id < v->n_tokens() && failures < 10; ++id) {
        const std::string str = v->detokenize({id}, false, true);
        // llama.cpp skips texts that are not valid UTF-8 (its decoder throws there).
        bool valid = true;
        for (uint32_t cpt : unicode::decode_lenient(str)) valid = valid && cpt != unicode::kReplacement;
        if (!valid && str.find("\xef\xbf\xbd") == std::string::npos) continue;
        const auto ids = v->tokenize(str, false, true);
        const std::string check = v->detokenize(ids, false, true);
        if (check != str) {
            ++failures;
            ADD_FAILURE() << GetParam() << ": token " << id << " '" << escape(str) << "' comes back as '" << escape(check)
                          << "'";
        }
    }
    for (uint32_t cp = 0; cp < 0x110000 && failures < 10; ++cp) {
        if ((cp >= 0xD800 && cp <= 0xDFFF) || (cp >= 0x40000 && cp <= 0xE0000)) continue;
        const std::string str = unicode::to_utf8(cp);
        // Falcon's vocabulary has no token for 28 of the 256 bytes; llama.cpp drops such bytes as well.
        bool bytes_known = true;
        for (char c : str) {
            bytes_known = bytes_known && v->find_token(unicode::byte_to_token_text(static_cast<uint8_t>(c))) >= 0;
        }
        if (!bytes_known) continue;
        const std::string check = v->detokenize(v->tokenize(str, false, false), false, true);
        if (cp != 0x2581 && check != str) {
            ++failures;
            ADD_FAILURE() << GetParam() << ": code point " << cp << " comes back as '" << escape(check) << "'";
        }
    }
}

INSTANTIATE_TEST_SUITE_P(BpeVocabs, VocabBpeRoundTrip,
                         ::testing::Values("ggml-vocab-gpt-2.gguf", "ggml-vocab-llama-bpe.gguf", "ggml-vocab-falcon.gguf",
                                           "ggml-vocab-mpt.gguf", "ggml-vocab-refact.gguf",
                                           "ggml-vocab-starcoder.gguf", "ggml-vocab-qwen2.gguf",
                                           "ggml-vocab-deepseek-llm.gguf", "ggml-vocab-deepseek-coder.gguf"));

// The CLI commands and their output shapes.
TEST(VocabCli, TokenizeAndDetokenize) {
    if (!testing::testdata_available()) GTEST_SKIP() << "test data not found";
    const std::string cli = testing::cli_path().string();
    const std::string model = testdata_path("models/stories260K.gguf").string();
    const std::string vocab_only = testdata_path("vocab/ggml-vocab-llama-bpe.gguf").string();
    std::string out;
    ASSERT_EQ(testing::run_command(cli + " tokenize --model " + model + " --text 'Once upon a time' --json", &out), 0);
    EXPECT_EQ(nlohmann::json::parse(out), nlohmann::json::parse(R"({"tokens":[1,403,407,261,378]})"));
    out.clear();
    ASSERT_EQ(testing::run_command(cli + " tokenize --model " + model + " --text 'Once upon a time' --no-bos", &out), 0);
    EXPECT_EQ(out, "403 407 261 378\n");
    out.clear();
    ASSERT_EQ(testing::run_command(cli + " tokenize --model " + vocab_only +
                                       " --text 'Hello<|eot_id|>' --parse-special --json 2>/dev/null",
                                   &out),
              0);
    EXPECT_EQ(nlohmann::json::parse(out).at("tokens"), nlohmann::json::parse("[128000, 9906, 128009]"));
    out.clear();
    ASSERT_EQ(testing::run_command(cli + " detokenize --model " + model + " --tokens 1,403,407,261,378 --json", &out), 0);
    EXPECT_EQ(nlohmann::json::parse(out).at("text"), " Once upon a time");
    out.clear();
    EXPECT_NE(testing::run_command(cli + " detokenize --model " + model + " --tokens 1,99999 2>/dev/null", &out), 0);
    EXPECT_NE(testing::run_command(cli + " tokenize --model /nonexistent.gguf --text x 2>/dev/null", &out), 0);
    EXPECT_NE(testing::run_command(cli + " tokenize --model " + model + " 2>/dev/null", &out), 0);
}

}  // namespace
}  // namespace llama_crab
