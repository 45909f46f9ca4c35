// Llama::embed against llama.cpp's reference embeddings (../shared/testdata/refs/embeddings, README section 7):
// every case of every file, one text at a time and all six texts batched, f16 KV against <stem>.json with the f16
// tolerances and f32 KV against <stem>.kvf32.json with the tight ones; errors; the completion KV left alone.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>

#include "llama_crab/llama.h"
#include "support/testdata.h"

namespace llama_crab {
namespace {

using nlohmann::json;

struct Tolerance {
    double l2_abs, raw_rel, one_minus_cos;
};
constexpr Tolerance kF16Tol{1e-3, 5e-3, 2e-6};
constexpr Tolerance kF32Tol{1e-6, 5e-6, 1e-8};

PoolingType pooling_from(const std::string& s) {
    if (s == "mean") return PoolingType::kMean;
    if (s == "last") return PoolingType::kLast;
    return PoolingType::kCls;
}

// Compares one vector with the reference; returns an empty string or what is off.
std::string compare(const std::vector<float>& got, const json& want, double tol_abs) {
    if (got.size() != want.size()) return "size " + std::to_string(got.size()) + " vs " + std::to_string(want.size());
    double max_diff = 0;
    size_t worst = 0;
    for (size_t i = 0; i < got.size(); ++i) {
        const double w = want[i].get<double>();
        if (std::fabs(got[i] - w) > max_diff) {
            max_diff = std::fabs(got[i] - w);
            worst = i;
        }
    }
    if (max_diff > tol_abs) {
        return "max |diff| " + std::to_string(max_diff) + " at " + std::to_string(worst) + " > " + std::to_string(tol_abs);
    }
    return "";
}

double one_minus_cos(const std::vector<float>& a, const json& b) {
    double ab = 0, aa = 0, bb = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        const double y = b[i].get<double>();
        ab += a[i] * y;
        aa += (double)a[i] * a[i];
        bb += y * y;
    }
    return 1.0 - ab / std::sqrt(aa * bb);
}

double max_abs(const json& v) {
    double m = 0;
    for (const auto& x : v) m = std::max(m, std::fabs(x.get<double>()));
    return m;
}

struct RefFile {
    const char* stem;
    bool kv_f32;
};

class EmbedRefs : public ::testing::TestWithParam<RefFile> {
protected:
    void SetUp() override {
        if (!testing::testdata_available()) GTEST_SKIP() << "no test data";
        const RefFile rf = GetParam();
        const std::string suffix = rf.kv_f32 ? ".kvf32.json" : ".json";
        std::ifstream in(testing::testdata_path(std::string("refs/embeddings/") + rf.stem + suffix));
        ASSERT_TRUE(in.good());
        ref_ = json::parse(in);
        auto l = Llama::load(LlamaParams(testing::testdata_path(ref_["model_file"].get<std::string>()).string())
                                 .with_n_ctx(512)
                                 .with_n_threads(2)
                                 .with_kv_type(rf.kv_f32 ? KvType::kF32 : KvType::kF16));
        ASSERT_TRUE(l.ok()) << l.error().to_string();
        llama_ = std::make_unique<Llama>(std::move(l).value());
        tol_ = rf.kv_f32 ? kF32Tol : kF16Tol;
    }

    // Checks the raw and L2 vectors of one case.
    void check_case(const json& c, const std::vector<float>& raw, const std::vector<float>& l2, const std::string& what) {
        const std::string name = what + " " + c["name"].get<std::string>() + "/" + c["pooling"].get<std::string>();
        const std::string e_l2 = compare(l2, c["embedding_l2"], tol_.l2_abs);
        EXPECT_EQ(e_l2, "") << name << " (l2)";
        const std::string e_raw = compare(raw, c["embedding_raw"], tol_.raw_rel * max_abs(c["embedding_raw"]));
        EXPECT_EQ(e_raw, "") << name << " (raw)";
        EXPECT_LE(one_minus_cos(raw, c["embedding_raw"]), tol_.one_minus_cos) << name;
    }

    json ref_;
    std::unique_ptr<Llama> llama_;
    Tolerance tol_{};
};

TEST_P(EmbedRefs, EveryCaseOneTextAtATime) {
    for (const auto& c : ref_["cases"]) {
        const std::string text = c["text"].get<std::string>();
        ASSERT_EQ(llama_->tokenize(text, true, false), c["tokens"].get<std::vector<Token>>()) << text;
        EmbedOptions o;
        o.pooling = pooling_from(c["pooling"].get<std::string>());
        auto l2 = llama_->embed({text}, o);
        ASSERT_TRUE(l2.ok()) << l2.error().to_string();
        o.normalize = false;
        auto raw = llama_->embed({text}, o);
        ASSERT_TRUE(raw.ok()) << raw.error().to_string();
        ASSERT_EQ(raw->vectors.size(), 1u);
        EXPECT_EQ(raw->n_tokens[0], (int32_t)c["tokens"].size());
        EXPECT_EQ(raw->pooling, *o.pooling);
        check_case(c, raw->vectors[0], l2->vectors[0], "single");
    }
}

TEST_P(EmbedRefs, SixTextsInOneDecodeMatchTheReferencesAndTheSingleRuns) {
    for (const char* pooling : {"mean", "last", "cls"}) {
        std::vector<std::string> texts;
        std::vector<const json*> cases;
        for (const auto& c : ref_["cases"]) {
            if (c["pooling"] != pooling) continue;
            texts.push_back(c["text"].get<std::string>());
            cases.push_back(&c);
        }
        ASSERT_EQ(texts.size(), 6u);
        EmbedOptions o;
        o.pooling = pooling_from(pooling);
        auto l2 = llama_->embed(texts, o);
        ASSERT_TRUE(l2.ok()) << l2.error().to_string();
        o.normalize = false;
        auto raw = llama_->embed(texts, o);
        ASSERT_TRUE(raw.ok()) << raw.error().to_string();
        int32_t total = 0;
        for (size_t i = 0; i < texts.size(); ++i) {
            check_case(*cases[i], raw->vectors[i], l2->vectors[i], "batched");
            total += (int32_t)(*cases[i])["tokens"].size();
            auto single = llama_->embed({texts[i]}, o);
            ASSERT_TRUE(single.ok());
            double diff = 0;
            for (size_t k = 0; k < single->vectors[0].size(); ++k) {
                diff = std::max(diff, (double)std::fabs(single->vectors[0][k] - raw->vectors[i][k]));
            }
            // llama.cpp's own batch-vs-single spread is rounding only; ours must be no worse than that.
            EXPECT_LE(diff, std::max(2 * ref_["batch"]["kv_unified_true"][pooling]["raw"].get<double>(), 1e-6))
                << pooling << " text " << i;
        }
        EXPECT_EQ(raw->total_tokens, total);
    }
}

INSTANTIATE_TEST_SUITE_P(, EmbedRefs,
                         ::testing::Values(RefFile{"stories260K", false}, RefFile{"stories260K", true},
                                           RefFile{"synth-llama-f32", false}, RefFile{"synth-llama-f32", true},
                                           RefFile{"synth-qwen2-f32", false}, RefFile{"synth-qwen2-f32", true},
                                           RefFile{"synth-qwen3-f32", false}, RefFile{"synth-qwen3-f32", true}),
                         [](const auto& info) {
                             std::string s = info.param.stem;
                             for (char& ch : s) {
                                 if (ch == '-') ch = '_';
                             }
                             return s + (info.param.kv_f32 ? "_kvf32" : "_kvf16");
                         });

// A text spanning several micro-batches is pooled over all of its tokens (llama.cpp pools per ubatch; the
// references keep every text in one, which is what a whole-text pooling must equal).
TEST(EmbedMicroBatches, TextsLongerThanAMicroBatchPoolOverTheWholeText) {
    if (!testing::testdata_available()) GTEST_SKIP() << "no test data";
    std::ifstream in(testing::testdata_path("refs/embeddings/synth-qwen2-f32.kvf32.json"));
    const json ref = json::parse(in);
    auto l = Llama::load(LlamaParams(testing::testdata_path(ref["model_file"].get<std::string>()).string())
                             .with_n_ctx(512)
                             .with_n_ubatch(7)
                             .with_n_threads(2)
                             .with_kv_type(KvType::kF32));
    ASSERT_TRUE(l.ok()) << l.error().to_string();
    for (const auto& c : ref["cases"]) {
        EmbedOptions o;
        o.pooling = pooling_from(c["pooling"].get<std::string>());
        auto e = l->embed({c["text"].get<std::string>()}, o);
        ASSERT_TRUE(e.ok()) << e.error().to_string();
        EXPECT_EQ(compare(e->vectors[0], c["embedding_l2"], kF32Tol.l2_abs), "") << c["name"] << "/" << c["pooling"];
    }
}

// The low level: an embeddings context gives final-norm rows per output entry and no logits; last pooling is the
// row of the last token.
TEST(EmbedContext, RowsPerEntryAndNoLogits) {
    if (!testing::testdata_available()) GTEST_SKIP() << "no test data";
    auto model = Model::load(testing::testdata_path("models/stories260K.gguf").string());
    ASSERT_TRUE(model.ok());
    ContextParams cp;
    cp.n_ctx = 64;
    cp.n_threads = 2;
    cp.n_seq_max = 2;
    cp.embeddings = true;
    cp.pooling = PoolingType::kLast;
    auto ctx = Context::create(*model, cp);
    ASSERT_TRUE(ctx.ok());
    Batch b;
    b.add_sequence({1, 400, 401, 402}, 0, false);  // output only for the last token of sequence 0
    b.add_sequence({1, 403}, 1, true);
    ASSERT_TRUE((*ctx)->decode(b).ok());
    EXPECT_EQ((*ctx)->n_outputs(), 3);
    EXPECT_EQ((*ctx)->logits_ith(3), nullptr);
    EXPECT_EQ((*ctx)->embeddings_ith(0), nullptr);  // asked for no output
    const float* last0 = (*ctx)->embeddings_ith(3);
    ASSERT_NE(last0, nullptr);
    ASSERT_NE((*ctx)->embeddings_seq(0), nullptr);
    ASSERT_NE((*ctx)->embeddings_seq(1), nullptr);
    const int64_t n = (*ctx)->n_embd();
    EXPECT_TRUE(std::equal(last0, last0 + n, (*ctx)->embeddings_seq(0)));
    EXPECT_TRUE(std::equal((*ctx)->embeddings_ith(-1), (*ctx)->embeddings_ith(-1) + n, (*ctx)->embeddings_seq(1)));
    EXPECT_FALSE(std::equal(last0, last0 + n, (*ctx)->embeddings_seq(1)));
    EXPECT_EQ((*ctx)->embeddings_seq(5), nullptr);
}

class EmbedStories : public ::testing::Test {
protected:
    void SetUp() override {
        if (!testing::testdata_available()) GTEST_SKIP() << "no test data";
        auto l = Llama::load(LlamaParams(testing::testdata_path("models/stories260K.gguf").string()).with_n_ctx(64).with_n_threads(2));
        ASSERT_TRUE(l.ok()) << l.error().to_string();
        llama_ = std::make_unique<Llama>(std::move(l).value());
    }
    std::unique_ptr<Llama> llama_;
};

TEST_F(EmbedStories, BadInputsAreRefusedNamingTheInput) {
    auto none = llama_->embed(std::vector<std::string>{});
    ASSERT_FALSE(none.ok());
    EXPECT_NE(none.error().message.find("no inputs"), std::string::npos) << none.error().message;

    auto empty = llama_->embed_tokens({{1, 2}, {}});
    ASSERT_FALSE(empty.ok());
    EXPECT_EQ(empty.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(empty.error().message.find("input 1 is empty"), std::string::npos) << empty.error().message;

    std::string long_text;
    for (int i = 0; i < 40; ++i) long_text += "Once upon a time ";
    auto too_long = llama_->embed({"hi", long_text});
    ASSERT_FALSE(too_long.ok());
    EXPECT_NE(too_long.error().message.find("input 1 has"), std::string::npos) << too_long.error().message;
    EXPECT_NE(too_long.error().message.find("n_ctx 64"), std::string::npos) << too_long.error().message;

    auto bad_token = llama_->embed_tokens({{1, 999999}});
    ASSERT_FALSE(bad_token.ok());
    EXPECT_NE(bad_token.error().message.find("999999"), std::string::npos) << bad_token.error().message;

    EmbedOptions o;
    o.pooling = PoolingType::kNone;
    EXPECT_FALSE(llama_->embed({"hi"}, o).ok());
}

TEST_F(EmbedStories, DefaultPoolingIsMeanAndVectorsAreUnitLength) {
    auto p = llama_->model_pooling();
    ASSERT_TRUE(p.ok());
    EXPECT_EQ(*p, PoolingType::kMean);  // stories260K names no pooling_type
    auto e = llama_->embed({"Once upon a time", "Lily and Ben went to the park."});
    ASSERT_TRUE(e.ok()) << e.error().to_string();
    EXPECT_EQ(e->pooling, PoolingType::kMean);
    ASSERT_EQ(e->vectors.size(), 2u);
    EXPECT_EQ(e->n_tokens, (std::vector<int32_t>{5, 13}));
    EXPECT_EQ(e->total_tokens, 18);
    for (const auto& v : e->vectors) {
        double n = 0;
        for (float x : v) n += (double)x * x;
        EXPECT_NEAR(n, 1.0, 1e-5);
    }
    EXPECT_NE(e->vectors[0], e->vectors[1]);
}

TEST_F(EmbedStories, ManyTextsSpanSeveralDecodes) {
    // 40 texts: more than the embeddings context's sequences per decode, so they go in several decodes.
    std::vector<std::string> texts;
    for (int i = 0; i < 40; ++i) texts.push_back(i % 2 ? "Once upon a time" : "Tom had a red ball.");
    auto e = llama_->embed(texts);
    ASSERT_TRUE(e.ok()) << e.error().to_string();
    ASSERT_EQ(e->vectors.size(), 40u);
    for (size_t i = 2; i < texts.size(); ++i) EXPECT_EQ(e->vectors[i], e->vectors[i % 2]) << i;
}

TEST_F(EmbedStories, TheCompletionKvIsLeftAlone) {
    auto a = llama_->create_completion("Once upon a time", CompletionOptions::greedy(8));
    ASSERT_TRUE(a.ok());
    const std::vector<Token> kv = llama_->kv_tokens();
    const int32_t used = llama_->context().kv_used_cells();
    auto e = llama_->embed({"Lily and Ben went to the park.", "Tom had a red ball."});
    ASSERT_TRUE(e.ok()) << e.error().to_string();
    EXPECT_EQ(llama_->kv_tokens(), kv);
    EXPECT_EQ(llama_->context().kv_used_cells(), used);
    // The next completion reuses the whole prompt and gives the same tokens as the first.
    llama_->reset();
    auto b = llama_->create_completion("Once upon a time", CompletionOptions::greedy(8));
    ASSERT_TRUE(b.ok());
    EXPECT_EQ(b->tokens, a->tokens);
}

}  // namespace
}  // namespace llama_crab
