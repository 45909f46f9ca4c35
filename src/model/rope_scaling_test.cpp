// RoPE scaling: YaRN and Phi-3 LongRoPE tables against a double-precision evaluation of the published formulas
// (YaRN paper / llama.cpp's ggml_rope_yarn_corr_dims; Phi-3's LongRoPE as its converter and llama.cpp describe it),
// written here from the formulas; make-model files with these keys load, run, say which scaling `info` shows, and a
// context shift on them equals recomputation.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "gguf/gguf.h"
#include "gguf/gguf_writer.h"
#include "llama_crab/context.h"
#include "llama_crab/model.h"
#include "model/arch.h"
#include "model/forward.h"
#include "model/random_model.h"
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

RandomModelSpec yarn_llama_spec() {
    RandomModelSpec spec = testing::tiny_model_spec(21);
    spec.type = TensorType::F32;
    spec.n_ctx_train = 8192;
    spec.rope_scaling = "yarn";
    spec.rope_scaling_factor = 4.0f;
    spec.n_ctx_orig = 2048;
    return spec;
}

// Phi-4-mini-like: partial rotary (12 of 16 dims), 4x LongRoPE from 1024 to 4096 positions.
RandomModelSpec longrope_phi3_spec() {
    RandomModelSpec spec = testing::tiny_model_spec(22);
    spec.arch = "phi3";
    spec.type = TensorType::F32;
    spec.n_rot = 12;
    spec.n_ctx_train = 4096;
    spec.rope_scaling = "longrope";
    spec.rope_scaling_factor = 4.0f;
    spec.n_ctx_orig = 1024;
    return spec;
}

// The YaRN angle and magnitude of pair i at pos, in double, from the formulas: frequencies base^(-2i/d); the
// correction dims where a wavelength makes beta turns over the original context, d ln(L / (2 pi beta)) / (2 ln base),
// floored/ceiled and clamped; a ramp between them mixing extrapolation (high frequencies) and interpolation by s;
// the magnitude 0.1 ln s + 1.
void yarn_reference(double pos, int i, int d, double base, double s, double L, double beta_fast, double beta_slow, double* angle,
                    double* mag) {
    const double pi = 3.14159265358979323846;
    auto corr = [&](double beta) { return d * std::log(L / (2.0 * pi * beta)) / (2.0 * std::log(base)); };
    const double lo = std::max(0.0, std::floor(corr(beta_fast)));
    const double hi = std::min(d - 1.0, std::ceil(corr(beta_slow)));
    const double ramp = 1.0 - std::min(1.0, std::max(0.0, (i - lo) / std::max(0.001, hi - lo)));
    const double freq = std::pow(base, -2.0 * i / d);
    *angle = pos * freq * ((1.0 - ramp) / s + ramp);
    *mag = 0.1 * std::log(s) + 1.0;
}

TEST(RopeScaling, YarnTablesMatchTheFormulas) {
    testing::TempDir dir;
    auto m = make_and_load(dir, yarn_llama_spec(), "yarn");
    ASSERT_NE(m, nullptr);
    const ModelHparams& hp = m->hparams();
    ASSERT_EQ(hp.rope_scaling, RopeScaling::kYarn);
    EXPECT_EQ(hp.n_ctx_orig, 2048);
    EXPECT_FLOAT_EQ(hp.yarn_ext_factor, 1.0f);
    const RopeParams rp = layer_rope_params(hp, m->weights(), false, 256);
    const int d = (int)hp.n_rot;
    std::vector<float> table((size_t)d);
    int n_mixed = 0;  // pairs strictly inside the ramp: the test must reach them
    for (double pos : {0.0, 1.0, 7.0, 50.0, 200.0}) {
        rope_cache((float)pos, rp, table.data());
        for (int i = 0; i < d / 2; ++i) {
            double angle = 0, mag = 0;
            yarn_reference(pos, i, d, hp.rope_freq_base, 4.0, 2048.0, 32.0, 1.0, &angle, &mag);
            const double tol = 4e-6 * (pos + 10.0);
            EXPECT_NEAR(table[(size_t)2 * i], std::cos(angle) * mag, tol) << "pos " << pos << " pair " << i;
            EXPECT_NEAR(table[(size_t)2 * i + 1], std::sin(angle) * mag, tol) << "pos " << pos << " pair " << i;
            if (pos == 1.0) {
                const double freq = std::pow((double)hp.rope_freq_base, -2.0 * i / d);
                if (angle > freq / 4.0 * 1.01 && angle < freq * 0.99) ++n_mixed;  // neither interpolated nor extrapolated
            }
        }
    }
    EXPECT_GT(n_mixed, 0);
    // The rotation used by a context shift: the same angles, magnitude 1.
    rope_cache(50.0f, rp, table.data(), true);
    for (int i = 0; i < d / 2; ++i) EXPECT_NEAR(std::hypot(table[(size_t)2 * i], table[(size_t)2 * i + 1]), 1.0, 1e-5);
}

TEST(RopeScaling, LongRopeTablesMatchTheFormulasAndPickFactorsByContextSize) {
    testing::TempDir dir;
    const RandomModelSpec spec = longrope_phi3_spec();
    auto m = make_and_load(dir, spec, "longrope");
    ASSERT_NE(m, nullptr);
    const ModelHparams& hp = m->hparams();
    ASSERT_EQ(hp.rope_scaling, RopeScaling::kLongRope);
    ASSERT_EQ(hp.n_rot, 12);
    ASSERT_EQ(hp.head_dim, 16);
    // The factors as stored in the file, read independently of the model.
    auto f = GgufFile::open((dir / "longrope.gguf").string());
    ASSERT_TRUE(f.ok());
    const GgufTensorInfo* lt = f->find_tensor("rope_factors_long.weight");
    const GgufTensorInfo* st = f->find_tensor("rope_factors_short.weight");
    ASSERT_TRUE(lt != nullptr && st != nullptr);
    ASSERT_EQ(lt->ne[0], 6);
    std::vector<float> lf(6), sf(6);
    std::memcpy(lf.data(), lt->data, 24);
    std::memcpy(sf.data(), st->data, 24);
    ASSERT_NE(lf, sf);
    // llama.cpp: the context padded to 256 > original context (1024) takes the long factors.
    EXPECT_EQ(rope_freq_factors(hp, m->weights(), 1024), rope_freq_factors(hp, m->weights(), 256));
    EXPECT_NE(rope_freq_factors(hp, m->weights(), 1025), rope_freq_factors(hp, m->weights(), 1024));
    const double mag = std::sqrt(1.0 + std::log(4096.0 / 1024.0) / std::log(1024.0));
    for (int32_t n_ctx : {256, 2048}) {
        const std::vector<float>& factors = n_ctx > 1024 ? lf : sf;
        const RopeParams rp = layer_rope_params(hp, m->weights(), false, n_ctx);
        std::vector<float> table(12);
        for (double pos : {1.0, 33.0, 200.0}) {
            rope_cache((float)pos, rp, table.data());
            for (int i = 0; i < 6; ++i) {
                const double angle = pos * std::pow((double)hp.rope_freq_base, -2.0 * i / 12.0) / factors[(size_t)i];
                const double tol = 4e-6 * (pos + 10.0);
                EXPECT_NEAR(table[(size_t)2 * i], std::cos(angle) * mag, tol) << n_ctx << " " << pos << " " << i;
                EXPECT_NEAR(table[(size_t)2 * i + 1], std::sin(angle) * mag, tol) << n_ctx << " " << pos << " " << i;
            }
        }
    }
}

TEST(RopeScaling, InfoSaysWhichScalingIsInUse) {
    testing::TempDir dir;
    auto yarn = make_and_load(dir, yarn_llama_spec(), "yarn");
    auto longrope = make_and_load(dir, longrope_phi3_spec(), "longrope");
    RandomModelSpec linear_spec = testing::tiny_model_spec(23);
    linear_spec.rope_scaling = "linear";
    auto linear = make_and_load(dir, linear_spec, "linear");
    ASSERT_TRUE(yarn && longrope && linear);
    auto rope_line = [](const Model& m) {
        for (const auto& l : describe_layer(m.hparams())) {
            if (l.rfind("RoPE", 0) == 0) return l;
        }
        return std::string();
    };
    EXPECT_NE(rope_line(*yarn).find("YaRN scaling x4 from 2048 positions"), std::string::npos) << rope_line(*yarn);
    EXPECT_NE(rope_line(*longrope).find("LongRoPE"), std::string::npos) << rope_line(*longrope);
    EXPECT_NE(rope_line(*longrope).find("12 of 16 dims"), std::string::npos) << rope_line(*longrope);
    EXPECT_NE(rope_line(*linear).find("linear scaling"), std::string::npos) << rope_line(*linear);
    EXPECT_FLOAT_EQ(linear->hparams().rope_freq_scale, 0.25f);
}

// An unknown scaling type is refused by name, with the types we know.
TEST(RopeScaling, UnknownScalingTypeIsRefusedByName) {
    testing::TempDir dir;
    const std::string src = (dir / "src.gguf").string(), bad = (dir / "bad.gguf").string();
    ASSERT_TRUE(write_random_model(testing::tiny_model_spec(24), src).ok());
    auto f = GgufFile::open(src);
    ASSERT_TRUE(f.ok());
    GgufWriter w;
    for (const auto& kv : f->metadata()) w.set(std::string(kv.key), GgufWriteValue::from(kv.value));
    w.set("llama.rope.scaling.type", GgufWriteValue::string("dynamic"));
    for (const auto& t : f->tensors()) {
        ASSERT_TRUE(w.add_tensor(std::string(t.name), t.type, std::vector<int64_t>(t.ne, t.ne + t.n_dims),
                                 std::vector<uint8_t>(t.data, t.data + t.n_bytes)).ok());
    }
    ASSERT_TRUE(w.write(bad).ok());
    auto m = Model::load(bad);
    ASSERT_FALSE(m.ok());
    EXPECT_NE(m.error().to_string().find("rope scaling type 'dynamic' is not supported (none, linear, yarn, longrope)"), std::string::npos)
        << m.error().to_string();
}

std::vector<float> next_logits(const std::shared_ptr<Model>& m, int32_t n_ctx, const std::vector<Token>& tokens, Pos p0, Pos shift,
                               Token next, Pos next_pos) {
    ContextParams p;
    p.n_ctx = n_ctx;
    p.n_threads = 2;
    p.kv_type = KvType::kF32;
    auto c = Context::create(m, p);
    EXPECT_TRUE(c.ok());
    if (!c.ok()) return {};
    Batch b;
    b.add_sequence(tokens, 0, false, p0);
    EXPECT_TRUE((*c)->decode(b).ok());
    if (shift != 0) (*c)->seq_add(0, 0, -1, shift);
    Batch one;
    one.add(next, next_pos, {0}, true);
    EXPECT_TRUE((*c)->decode(one).ok());
    return std::vector<float>((*c)->logits_ith(0), (*c)->logits_ith(0) + (*c)->n_vocab());
}

// Shift a sequence decoded at 300..359 down to 0..59: the next logits equal decoding it at 0..59 (the same limit as
// the families' shift test). Re-applying the YaRN magnitude or the LongRoPE attention factor on shift breaks this.
TEST(RopeScaling, ContextShiftEqualsRecomputation) {
    testing::TempDir dir;
    for (const RandomModelSpec& spec : {yarn_llama_spec(), longrope_phi3_spec()}) {
        SCOPED_TRACE(spec.arch);
        auto m = make_and_load(dir, spec, spec.arch);
        ASSERT_NE(m, nullptr);
        std::vector<Token> tokens(61);
        for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = (Token)(3 + (i * 104729) % (uint64_t)(m->hparams().n_vocab - 3));
        const Token next = tokens.back();
        tokens.pop_back();
        for (int32_t n_ctx : {512, 2048}) {  // LongRoPE: short factors, then long ones
            const auto got = next_logits(m, n_ctx, tokens, 300, -300, next, 60);
            const auto want = next_logits(m, n_ctx, tokens, 0, 0, next, 60);
            ASSERT_EQ(got.size(), want.size());
            double d = 0.0;
            for (size_t i = 0; i < got.size(); ++i) d = std::max(d, (double)std::fabs(got[i] - want[i]));
            EXPECT_LT(d, 0.02) << "n_ctx " << n_ctx;
        }
    }
}

}  // namespace
}  // namespace llama_crab
