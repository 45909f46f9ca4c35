// Structured output end to end on stories260K (a tiny model whose text has nothing to do with JSON): every sampled
// generation under a JSON schema parses and validates, a run cut by max_tokens is a valid prefix, and a bad
// grammar or schema fails before anything is decoded.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <regex>

#include "llama_crab/grammar.h"
#include "llama_crab/llama.h"
#include "sampling/grammar_internal.h"
#include "support/testdata.h"

namespace llama_crab {
namespace {

using nlohmann::json;

const char* kSchema = R"({"type":"object","properties":{
  "name":{"type":"string","maxLength":6},
  "age":{"type":"integer","minimum":0,"maximum":120},
  "tags":{"type":"array","items":{"enum":["a","b","c"]},"maxItems":3},
  "ok":{"type":"boolean"},
  "when":{"anyOf":[{"type":"null"},{"type":"string","format":"date"}]}},
  "required":["name","age","ok"],"additionalProperties":false})";

size_t code_points(const std::string& s) {
    size_t n = 0;
    for (unsigned char c : s) n += (c & 0xC0) != 0x80;
    return n;
}

// Validates the schema above by hand; returns what is wrong, or "".
std::string check(const std::string& text) {
    json doc;
    try {
        doc = json::parse(text);
    } catch (const json::exception& e) {
        return std::string("not JSON: ") + e.what();
    }
    if (!doc.is_object()) return "not an object";
    for (const char* key : {"name", "age", "ok"}) {
        if (!doc.contains(key)) return std::string("missing ") + key;
    }
    for (const auto& [key, v] : doc.items()) {
        if (key == "name") {
            if (!v.is_string() || code_points(v.get<std::string>()) > 6) return "bad name";
        } else if (key == "age") {
            if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > 120) return "bad age";
        } else if (key == "tags") {
            if (!v.is_array() || v.size() > 3) return "bad tags";
            for (const auto& t : v) {
                if (t != "a" && t != "b" && t != "c") return "bad tag";
            }
        } else if (key == "ok") {
            if (!v.is_boolean()) return "bad ok";
        } else if (key == "when") {
            static const std::regex date("[0-9]{4}-[0-9]{2}-[0-9]{2}");
            if (!v.is_null() && !(v.is_string() && std::regex_match(v.get<std::string>(), date))) return "bad when";
        } else {
            return "extra key " + key;
        }
    }
    return "";
}

class GrammarStories : public ::testing::Test {
protected:
    void SetUp() override {
        if (!testing::testdata_available()) GTEST_SKIP() << "no test data";
        auto l = Llama::load(LlamaParams(testing::testdata_path("models/stories260K.gguf").string()).with_n_ctx(512).with_n_threads(2));
        ASSERT_TRUE(l.ok()) << l.error().to_string();
        llama_ = std::make_unique<Llama>(std::move(l).value());
    }
    std::unique_ptr<Llama> llama_;
};

TEST_F(GrammarStories, SampledGenerationsValidateAgainstTheSchema) {
    int ended = 0;
    for (uint32_t seed = 0; seed < 200; ++seed) {
        CompletionOptions o;
        o.max_tokens = 300;
        o.json_schema = kSchema;
        o.seed = seed;
        o.sampling.temperature = 1.0f;
        o.sampling.top_k = seed % 2 == 0 ? 40 : 0;  // the lazy top-k path and the full mask
        o.sampling.top_p = 1.0f;
        o.sampling.min_p = 0.0f;
        auto out = llama_->create_completion("Once upon a time", o);
        ASSERT_TRUE(out.ok()) << out.error().to_string();
        ASSERT_EQ(out->stop_reason, StopReason::Eos) << "seed " << seed << ": " << out->text;
        EXPECT_EQ(check(out->text), "") << "seed " << seed << ": " << out->text;
        ++ended;
    }
    EXPECT_EQ(ended, 200);
}

TEST_F(GrammarStories, GreedyJsonObjectMode) {
    CompletionOptions o = CompletionOptions::greedy(200);
    o.grammar = json_grammar();
    auto out = llama_->create_completion("Once upon a time", o);
    ASSERT_TRUE(out.ok()) << out.error().to_string();
    if (out->stop_reason == StopReason::Eos) {
        EXPECT_TRUE(json::accept(out->text)) << out->text;
    }
    auto g = std::make_shared<const grammar::Grammar>(std::move(grammar::parse_grammar(json_grammar())).value());
    grammar::Matcher m(g);
    EXPECT_TRUE(m.accept(out->text)) << out->text;
}

TEST_F(GrammarStories, CutByMaxTokensIsAValidPrefix) {
    auto gbnf = json_schema_to_grammar(kSchema);
    ASSERT_TRUE(gbnf.ok());
    auto g = std::make_shared<const grammar::Grammar>(std::move(grammar::parse_grammar(*gbnf)).value());
    for (uint32_t seed = 0; seed < 10; ++seed) {
        CompletionOptions o;
        o.max_tokens = 6;
        o.json_schema = kSchema;
        o.seed = seed;
        auto out = llama_->create_completion("Once upon a time", o);
        ASSERT_TRUE(out.ok()) << out.error().to_string();
        EXPECT_EQ(out->stop_reason, StopReason::Length);
        grammar::Matcher m(g);
        EXPECT_TRUE(m.accept(out->text)) << out->text;
        EXPECT_FALSE(m.can_end());
    }
}

TEST_F(GrammarStories, BadGrammarOrSchemaFailsBeforeDecoding) {
    CompletionOptions o;
    o.grammar = "root ::= \"a\" |\n  ( \"b\"";
    auto out = llama_->create_completion("Once upon a time", o);
    ASSERT_FALSE(out.ok());
    EXPECT_NE(out.error().message.find("line 2, column"), std::string::npos) << out.error().message;
    o.grammar.clear();
    o.json_schema = R"({"type":"object","properties":{"a":{"type":"string","format":"email"}}})";
    out = llama_->create_completion("Once upon a time", o);
    ASSERT_FALSE(out.ok());
    EXPECT_NE(out.error().message.find("/properties/a/format"), std::string::npos) << out.error().message;
    o.grammar = "root ::= \"a\"";
    out = llama_->create_completion("Once upon a time", o);
    EXPECT_FALSE(out.ok());
}

}  // namespace
}  // namespace llama_crab
