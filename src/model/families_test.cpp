// Every family make-model writes loads with its description and runs; the sliding-window rule is exactly
// llama.cpp's (a query at p sees keys at p - n_swa + 1 .. p); a context shift on a sliding-window model keeps it.
#include <gtest/gtest.h>

#include <cmath>

#include "llama_crab/context.h"
#include "llama_crab/llama.h"
#include "llama_crab/model.h"
#include "model/random_model.h"
#include "ops/vec_ops.h"
#include "support/test_models.h"
#include "support/testdata.h"

namespace llama_crab {
namespace {

std::shared_ptr<Model> make_and_load(const testing::TempDir& dir, const RandomModelSpec& spec, const std::string& name) {
    const std::string path = (dir / (name + ".gguf")).string();
    auto st = write_random_model(spec, path);
    EXPECT_TRUE(st.ok()) << st.error().to_string();
    auto m = Model::load(path);
    EXPECT_TRUE(m.ok()) << (m.ok() ? "" : m.error().to_string());
    return m.ok() ? *m : nullptr;
}

std::unique_ptr<Context> make_context(const std::shared_ptr<Model>& m, KvType kv = KvType::kF32, int32_t n_ubatch = 512) {
    ContextParams p;
    p.n_ctx = 256;
    p.n_threads = 2;
    p.kv_type = kv;
    p.n_ubatch = n_ubatch;
    auto c = Context::create(m, p);
    EXPECT_TRUE(c.ok());
    return c.ok() ? std::move(c).value() : nullptr;
}

// The logits of the last token of `tokens` decoded as positions 0.. in one sequence.
std::vector<float> last_logits(Context& c, const std::vector<Token>& tokens) {
    Batch b;
    b.add_sequence(tokens, 0, false);
    EXPECT_TRUE(c.decode(b).ok());
    const float* lg = c.logits_ith(-1);
    return std::vector<float>(lg, lg + c.n_vocab());
}

std::vector<Token> tokens_from(uint64_t seed, size_t n, int64_t n_vocab) {
    std::vector<Token> t(n);
    for (size_t i = 0; i < n; ++i) t[i] = (Token)(3 + (seed * 7919 + i * 104729) % (uint64_t)(n_vocab - 3));
    return t;
}

std::string fmt_name(int64_t n_layer) { return "g" + std::to_string(n_layer); }

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
    double d = 0.0;
    for (size_t i = 0; i < a.size(); ++i) d = std::max(d, (double)std::fabs(a[i] - b[i]));
    return d;
}

TEST(Families, EveryFamilyLoadsWithItsDescriptionAndRunsTheSameInOneOrManyBatches) {
    testing::TempDir dir;
    for (const std::string arch : {"llama", "qwen2", "qwen3", "gemma2", "gemma3", "phi3"}) {
        SCOPED_TRACE(arch);
        RandomModelSpec spec = testing::tiny_model_spec(5);
        spec.arch = arch;
        spec.n_swa = 8;
        if (arch == "qwen3" || arch == "gemma3") spec.head_dim = 32;  // wider than n_embd / n_head = 16
        auto m = make_and_load(dir, spec, arch);
        ASSERT_NE(m, nullptr);
        const ModelHparams& hp = m->hparams();
        EXPECT_EQ(hp.qk_norm, arch == "qwen3" || arch == "gemma3");
        EXPECT_EQ(hp.post_norms, arch == "gemma2" || arch == "gemma3");
        EXPECT_EQ(hp.fused_qkv, arch == "phi3");
        EXPECT_EQ(hp.fused_gate_up, arch == "phi3");
        EXPECT_EQ(hp.ffn_act == FfnActivation::kGeluTanh, arch == "gemma2" || arch == "gemma3");
        EXPECT_EQ(hp.n_swa, arch == "gemma2" || arch == "gemma3" ? 8 : 0);
        EXPECT_EQ(hp.head_dim, arch == "qwen3" || arch == "gemma3" ? 32 : 16);
        EXPECT_FLOAT_EQ(hp.embd_scale, arch == "gemma2" || arch == "gemma3" ? 8.0f : 1.0f);
        EXPECT_EQ(hp.attn_softcap > 0.0f && hp.final_softcap > 0.0f, arch == "gemma2");
        const auto lines = m->layer_description();
        ASSERT_EQ(lines.size(), 6u);
        EXPECT_NE(lines[2].find(arch == "gemma2" || arch == "gemma3" ? "see only the last 8 positions" : "none"), std::string::npos)
            << lines[2];

        // A 20-token prompt (longer than the window) in one batch, and in batches of 3 tokens: the same logits.
        const auto prompt = tokens_from(1, 20, hp.n_vocab);
        auto one = make_context(m);
        auto chunked = make_context(m, KvType::kF32, 3);
        const auto a = last_logits(*one, prompt);
        const auto b = last_logits(*chunked, prompt);
        for (float x : a) ASSERT_TRUE(std::isfinite(x));
        EXPECT_LT(max_abs_diff(a, b), 1e-4);
    }
}

TEST(Families, MakeModelRefusesAnUnknownFamilyAndAHeadDimItCannotWrite) {
    testing::TempDir dir;
    RandomModelSpec spec = testing::tiny_model_spec(1);
    spec.arch = "mamba";
    auto st = write_random_model(spec, (dir / "x.gguf").string());
    ASSERT_FALSE(st.ok());
    EXPECT_NE(st.error().message.find("gemma3"), std::string::npos);
    spec.arch = "llama";
    spec.head_dim = 32;
    EXPECT_FALSE(write_random_model(spec, (dir / "x.gguf").string()).ok());
}

// One sliding-window layer (layer 0 of a 1-layer gemma3): the logits at position p depend on the token at p - 7
// (inside a window of 8) but not, by a single bit, on the token at p - 8.
TEST(Families, SlidingWindowSeesExactlyTheLastNSwaPositions) {
    testing::TempDir dir;
    RandomModelSpec spec = testing::tiny_gemma3_spec(9, 8);
    spec.n_layer = 1;
    auto m = make_and_load(dir, spec, "g1");
    ASSERT_NE(m, nullptr);
    ASSERT_TRUE(m->hparams().is_swa_layer(0));
    for (KvType kv : {KvType::kF32, KvType::kF16}) {
        const auto base = tokens_from(2, 20, m->hparams().n_vocab);
        auto changed_at = [&](size_t i) {
            auto t = base;
            t[i] = t[i] == 5 ? 6 : 5;
            return t;
        };
        const auto want = last_logits(*make_context(m, kv), base);
        EXPECT_EQ(last_logits(*make_context(m, kv), changed_at(19 - 8)), want);
        EXPECT_EQ(last_logits(*make_context(m, kv), changed_at(0)), want);
        EXPECT_NE(last_logits(*make_context(m, kv), changed_at(19 - 7)), want);
    }
}

// Decodes `tokens` at positions p0.. in a fresh context, applies `edit` to it, then decodes `next` at `next_pos`
// and returns its logits.
template <typename Edit>
std::vector<float> next_logits_after(const std::shared_ptr<Model>& m, const std::vector<Token>& tokens, Pos p0, Edit edit, Token next,
                                     Pos next_pos) {
    auto c = make_context(m);
    Batch b;
    b.add_sequence(tokens, 0, false, p0);
    EXPECT_TRUE(c->decode(b).ok());
    edit(*c);
    Batch one;
    one.add(next, next_pos, {0}, true);
    EXPECT_TRUE(c->decode(one).ok());
    return std::vector<float>(c->logits_ith(0), c->logits_ith(0) + c->n_vocab());
}

// Context shift on models whose sliding-window layers rotate with their own RoPE base.
// 1. One sliding-window layer (its K depends on nothing but the token and its position): drop the oldest 10 of 60
//    tokens and shift the rest down by 10; the next token, at 50, must see exactly positions 35..50 as a fresh
//    computation of the kept tokens does.
// 2. Six layers (5 sliding, 1 global with another base): shift a whole sequence from 100..159 down to 0..59; the
//    next logits agree with computing it at 0..59 (RoPE is relative), which fails if a layer re-rotates with the
//    wrong base.
TEST(Families, ContextShiftOnASlidingWindowModelKeepsTheWindowRule) {
    testing::TempDir dir;
    RandomModelSpec six_layers = testing::tiny_gemma3_spec(11, 16);
    six_layers.type = TensorType::F32;  // no Q8 rounding of activations to amplify RoPE's float noise
    RandomModelSpec one_layer = six_layers;
    one_layer.n_layer = 1;
    for (const RandomModelSpec& spec : {one_layer, six_layers}) {
        auto m = make_and_load(dir, spec, fmt_name(spec.n_layer));
        ASSERT_NE(m, nullptr);
        ASSERT_NE(m->hparams().rope_freq_base_swa, m->hparams().rope_freq_base);
        const auto all = tokens_from(3, 61, m->hparams().n_vocab);
        const std::vector<Token> first(all.begin(), all.begin() + 60);
        const Token next = all[60];
        if (spec.n_layer == 1) {
            const auto got = next_logits_after(m, first, 0, [](Context& c) {
                ASSERT_TRUE(c.seq_rm(0, 0, 10));
                c.seq_add(0, 10, -1, -10);
                ASSERT_EQ(c.seq_pos_max(0), 49);
            }, next, 50);
            const std::vector<Token> kept(first.begin() + 10, first.end());
            const auto want = next_logits_after(m, kept, 0, [](Context&) {}, next, 50);
            EXPECT_LT(max_abs_diff(got, want), 1e-3);
        } else {
            const auto got = next_logits_after(m, first, 100, [](Context& c) { c.seq_add(0, 0, -1, -100); }, next, 60);
            const auto want = next_logits_after(m, first, 0, [](Context&) {}, next, 60);
            EXPECT_LT(max_abs_diff(got, want), 0.02);  // float noise through 6 layers ~3e-3; a wrong base moves them by > 1
        }
    }
}

// A file without tokenizer.chat_template chats in its family's format (real files carry one, which wins).
TEST(Families, ChatWithoutATemplateUsesTheFamilysFormat) {
    testing::TempDir dir;
    for (const auto& [arch, marker] : std::vector<std::pair<std::string, std::string>>{
             {"gemma3", "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n"},
             {"phi3", "<|user|>\nHi<|end|>\n<|assistant|>\n"},
             {"qwen3", "<|im_start|>user\nHi<|im_end|>"}}) {
        RandomModelSpec spec = testing::tiny_model_spec(3);
        spec.arch = arch;
        const std::string path = (dir / (arch + ".gguf")).string();
        ASSERT_TRUE(write_random_model(spec, path).ok());
        auto llama = Llama::load(LlamaParams(path));
        ASSERT_TRUE(llama.ok()) << llama.error().to_string();
        auto prompt = llama->apply_chat_template({{"user", "Hi"}}, true);
        ASSERT_TRUE(prompt.ok()) << prompt.error().to_string();
        EXPECT_NE(prompt->find(marker), std::string::npos) << arch << ": " << *prompt;
    }
}

TEST(Families, GeluReadsLlamaCppsF16Table) {
    float out[6];
    const float gate[6] = {-12.0f, 12.0f, 0.0f, 1.0f, -1.5f, 0.3337f};
    const float up[6] = {1.0f, 2.0f, 1.0f, 1.0f, 1.0f, 1.0f};
    gelu_mul(gate, up, 6, out);
    EXPECT_EQ(out[0], 0.0f);   // <= -10: 0
    EXPECT_EQ(out[1], 24.0f);  // >= 10: x (times up)
    EXPECT_EQ(out[2], 0.0f);
    for (int i = 3; i < 6; ++i) {
        // The f16 value nearest to the float GELU of the f16 value nearest to the input.
        const float want = fp16_to_fp32(fp32_to_fp16(gelu_tanh(fp16_to_fp32(fp32_to_fp16(gate[i])))));
        EXPECT_EQ(out[i], want) << gate[i];
        EXPECT_NEAR(out[i], gelu_tanh(gate[i]), 2e-3) << gate[i];
    }
    EXPECT_NE(out[5], gelu_tanh(gate[5]));  // rounded, not the float GELU
}

// The dispatching GELU (AVX2 where the CPU has it) equals the scalar reference bit for bit, over inputs that
// cover every f16 rounding case in (-12, 12) and the clamps.
TEST(Families, GeluKernelEqualsItsScalarReference) {
    std::vector<float> gate, up;
    for (int i = -1200000; i <= 1200000; ++i) gate.push_back((float)i * 1e-5f);
    for (float x : {-10.0f, 10.0f, -9.999f, 9.999f, 1e-8f, -1e-8f, 6.1e-5f, -0.0f}) gate.push_back(x);
    for (size_t i = 0; i < gate.size(); ++i) up.push_back(1.0f + (float)(i % 7) * 0.25f);
    std::vector<float> a(gate.size()), b(gate.size());
    gelu_mul(gate.data(), up.data(), (int64_t)gate.size(), a.data());
    gelu_mul_ref(gate.data(), up.data(), (int64_t)gate.size(), b.data());
    size_t mismatches = 0;
    for (size_t i = 0; i < a.size(); ++i) mismatches += a[i] != b[i] ? 1 : 0;
    EXPECT_EQ(mismatches, 0u);
}

}  // namespace
}  // namespace llama_crab
