// Model loading: the architecture table's checks, hparams, tied output, fingerprint, progress.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>

#include "gguf/gguf.h"
#include "gguf/gguf_writer.h"
#include "llama_crab/context.h"
#include "llama_crab/model.h"
#include "model/random_model.h"
#include "model/weights.h"
#include "support/testdata.h"

namespace llama_crab {
namespace {

struct Edit {
    std::function<bool(const std::string& key)> drop_key = [](const std::string&) { return false; };
    std::vector<std::pair<std::string, GgufWriteValue>> set_keys;
    std::function<bool(const std::string& name)> drop_tensor = [](const std::string&) { return false; };
    // Replace a tensor: name -> (type, shape, data)
    std::string replace_tensor;
    std::vector<int64_t> replace_shape;
    std::function<void(std::vector<uint8_t>&)> mutate_data;  // applied to every tensor's bytes when set
};

// Copies a GGUF file through our writer with the given edits.
void rewrite(const std::string& src, const std::string& dst, const Edit& e) {
    auto f = GgufFile::open(src);
    ASSERT_TRUE(f.ok()) << f.error().to_string();
    GgufWriter w;
    for (const auto& kv : f->metadata()) {
        if (!e.drop_key(std::string(kv.key))) w.set(std::string(kv.key), GgufWriteValue::from(kv.value));
    }
    for (const auto& [k, v] : e.set_keys) w.set(k, v);
    for (const auto& t : f->tensors()) {
        const std::string name(t.name);
        if (e.drop_tensor(name)) continue;
        std::vector<uint8_t> data(t.data, t.data + t.n_bytes);
        std::vector<int64_t> ne(t.ne, t.ne + t.n_dims);
        if (name == e.replace_tensor) {
            ne = e.replace_shape;
            int64_t n = 1;
            for (int64_t d : ne) n *= d;
            data.assign((size_t)n * 4, 0);
            ASSERT_TRUE(w.add_tensor(name, TensorType::F32, ne, data).ok());
            continue;
        }
        if (e.mutate_data) e.mutate_data(data);
        ASSERT_TRUE(w.add_tensor(name, t.type, ne, data).ok());
    }
    ASSERT_TRUE(w.write(dst).ok());
}

Edit set_key(const std::string& key, GgufWriteValue value) {
    Edit e;
    e.set_keys.emplace_back(key, std::move(value));
    return e;
}

class ModelTest : public ::testing::Test {
protected:
    void SetUp() override {
        RandomModelSpec spec;
        spec.n_embd = 64;
        spec.n_layer = 2;
        spec.n_head = 4;
        spec.n_head_kv = 2;
        spec.n_ff = 128;
        spec.type = TensorType::Q8_0;
        base_ = (dir_ / "base.gguf").string();
        ASSERT_TRUE(write_random_model(spec, base_).ok());
    }
    testing::TempDir dir_;
    std::string base_;
};

TEST_F(ModelTest, LoadsAndReportsHparams) {
    auto m = Model::load(base_);
    ASSERT_TRUE(m.ok()) << m.error().to_string();
    const auto& hp = (*m)->hparams();
    EXPECT_EQ(hp.arch, "llama");
    EXPECT_EQ(hp.n_embd, 64);
    EXPECT_EQ(hp.n_layer, 2);
    EXPECT_EQ(hp.n_head_kv, 2);
    EXPECT_EQ(hp.head_dim, 16);
    EXPECT_EQ(hp.n_vocab, builtin_vocab_size());
    EXPECT_FALSE(hp.tied_output);
    EXPECT_EQ(hp.rope_style, RopeStyle::kNormal);
    EXPECT_GT((*m)->n_params(), 0u);
    EXPECT_EQ((*m)->meta_string("general.architecture").value_or(""), "llama");
    EXPECT_EQ((*m)->meta_int("llama.block_count").value_or(0), 2);
}

TEST_F(ModelTest, UnknownArchitectureIsRefusedWithTheKnownList) {
    const std::string p = (dir_ / "gpt.gguf").string();
    rewrite(base_, p, set_key("general.architecture", GgufWriteValue::string("gptx")));
    auto m = Model::load(p);
    ASSERT_FALSE(m.ok());
    EXPECT_EQ(m.error().code, ErrorCode::kUnsupported);
    EXPECT_NE(m.error().message.find("gptx"), std::string::npos);
    EXPECT_NE(m.error().message.find("llama, qwen2"), std::string::npos);
}

TEST_F(ModelTest, MissingTensorsAreAllListed) {
    const std::string p = (dir_ / "missing.gguf").string();
    Edit e;
    e.drop_tensor = [](const std::string& n) { return n == "blk.1.ffn_up.weight" || n == "output_norm.weight"; };
    rewrite(base_, p, e);
    auto m = Model::load(p);
    ASSERT_FALSE(m.ok());
    EXPECT_EQ(m.error().code, ErrorCode::kMissingTensor);
    EXPECT_NE(m.error().message.find("blk.1.ffn_up.weight"), std::string::npos);
    EXPECT_NE(m.error().message.find("output_norm.weight"), std::string::npos);
}

// A family's own keys and tensors are checked the same way: a Gemma 3 without its window, or without its Q/K norms
// and with a misshapen post-norm, is refused with everything wrong in one message.
TEST_F(ModelTest, FamilyKeysAndTensorsAreCheckedAndAllListed) {
    RandomModelSpec spec;
    spec.arch = "gemma3";
    spec.n_embd = 64;
    spec.n_layer = 2;
    spec.n_head = 4;
    spec.n_head_kv = 1;
    spec.n_ff = 128;
    const std::string g = (dir_ / "gemma3.gguf").string();
    ASSERT_TRUE(write_random_model(spec, g).ok());
    ASSERT_TRUE(Model::load(g).ok());

    const std::string nokey = (dir_ / "gemma3-nokey.gguf").string();
    Edit e;
    e.drop_key = [](const std::string& k) { return k == "gemma3.attention.sliding_window"; };
    rewrite(g, nokey, e);
    auto m = Model::load(nokey);
    ASSERT_FALSE(m.ok());
    EXPECT_NE(m.error().message.find("gemma3.attention.sliding_window' is missing"), std::string::npos) << m.error().message;

    const std::string notensor = (dir_ / "gemma3-notensor.gguf").string();
    Edit t;
    t.drop_tensor = [](const std::string& n) { return n.find("attn_q_norm") != std::string::npos; };
    t.replace_tensor = "blk.1.post_ffw_norm.weight";
    t.replace_shape = {32};
    rewrite(g, notensor, t);
    m = Model::load(notensor);
    ASSERT_FALSE(m.ok());
    EXPECT_EQ(m.error().code, ErrorCode::kMissingTensor);
    for (const char* name : {"blk.0.attn_q_norm.weight", "blk.1.attn_q_norm.weight", "blk.1.post_ffw_norm.weight"}) {
        EXPECT_NE(m.error().message.find(name), std::string::npos) << name << " in: " << m.error().message;
    }
}

TEST_F(ModelTest, MisshapenTensorIsNamedWithBothShapes) {
    const std::string p = (dir_ / "shape.gguf").string();
    Edit e;
    e.replace_tensor = "blk.0.attn_k.weight";
    e.replace_shape = {64, 48};
    rewrite(base_, p, e);
    auto m = Model::load(p);
    ASSERT_FALSE(m.ok());
    EXPECT_EQ(m.error().code, ErrorCode::kShapeMismatch);
    EXPECT_NE(m.error().message.find("blk.0.attn_k.weight"), std::string::npos);
    EXPECT_NE(m.error().message.find("[64, 48]"), std::string::npos);
    EXPECT_NE(m.error().message.find("[64, 32]"), std::string::npos);
}

TEST_F(ModelTest, MissingHparamIsNamed) {
    const std::string p = (dir_ / "nohp.gguf").string();
    Edit e;
    e.drop_key = [](const std::string& k) { return k == "llama.feed_forward_length"; };
    rewrite(base_, p, e);
    auto m = Model::load(p);
    ASSERT_FALSE(m.ok());
    EXPECT_NE(m.error().message.find("llama.feed_forward_length"), std::string::npos);
}

TEST_F(ModelTest, BadHeadCountsAreRefused) {
    const std::string p = (dir_ / "heads.gguf").string();
    rewrite(base_, p, set_key("llama.attention.head_count_kv", GgufWriteValue::u32(3)));
    auto m = Model::load(p);
    ASSERT_FALSE(m.ok());
    EXPECT_NE(m.error().message.find("head_count_kv"), std::string::npos);
}

TEST_F(ModelTest, TiedOutputWhenOutputWeightIsAbsent) {
    const std::string p = (dir_ / "tied.gguf").string();
    Edit e;
    e.drop_tensor = [](const std::string& n) { return n == "output.weight"; };
    rewrite(base_, p, e);
    auto m = Model::load(p);
    ASSERT_TRUE(m.ok()) << m.error().to_string();
    EXPECT_TRUE((*m)->hparams().tied_output);
    EXPECT_EQ((*m)->weights().output.data, (*m)->weights().token_embd.data);
}

TEST_F(ModelTest, RopeFreqsAndScalingFromMetadata) {
    const std::string p = (dir_ / "rope.gguf").string();
    {
        auto f = GgufFile::open(base_);
        ASSERT_TRUE(f.ok());
        GgufWriter w;
        for (const auto& kv : f->metadata()) w.set(std::string(kv.key), GgufWriteValue::from(kv.value));
        w.set("llama.rope.scaling.type", GgufWriteValue::string("linear"));
        w.set("llama.rope.scaling.factor", GgufWriteValue::f32(4.0f));
        w.set("llama.rope.freq_base", GgufWriteValue::f32(500000.0f));
        for (const auto& t : f->tensors()) {
            ASSERT_TRUE(w.add_tensor(std::string(t.name), t.type, std::vector<int64_t>(t.ne, t.ne + t.n_dims),
                                     std::vector<uint8_t>(t.data, t.data + t.n_bytes)).ok());
        }
        std::vector<float> ff(8, 2.0f);
        std::vector<uint8_t> bytes(ff.size() * 4);
        std::memcpy(bytes.data(), ff.data(), bytes.size());
        ASSERT_TRUE(w.add_tensor("rope_freqs.weight", TensorType::F32, {8}, bytes).ok());
        ASSERT_TRUE(w.write(p).ok());
    }
    auto m = Model::load(p);
    ASSERT_TRUE(m.ok()) << m.error().to_string();
    EXPECT_TRUE((*m)->hparams().has_rope_freqs);
    EXPECT_FLOAT_EQ((*m)->hparams().rope_freq_scale, 0.25f);
    EXPECT_FLOAT_EQ((*m)->hparams().rope_freq_base, 500000.0f);

    // The frequency factors change the logits (they divide every RoPE angle by 2).
    auto base = Model::load(base_);
    ASSERT_TRUE(base.ok());
    std::vector<std::vector<float>> out;
    for (auto* model : {&*base, &*m}) {
        ContextParams cp;
        cp.n_ctx = 16;
        cp.n_threads = 1;
        auto ctx = Context::create(*model, cp);
        ASSERT_TRUE(ctx.ok());
        Batch b;
        b.add_sequence({1, 50, 60, 70}, 0, false);
        ASSERT_TRUE((*ctx)->decode(b).ok());
        out.emplace_back((*ctx)->logits_ith(-1), (*ctx)->logits_ith(-1) + (*ctx)->n_vocab());
    }
    double diff = 0;
    for (size_t i = 0; i < out[0].size(); ++i) diff = std::max(diff, (double)std::fabs(out[0][i] - out[1][i]));
    EXPECT_GT(diff, 1e-3);
}

TEST_F(ModelTest, FingerprintIsStableAndSensitive) {
    auto a = Model::load(base_);
    auto b = Model::load(base_);
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ((*a)->fingerprint(), (*b)->fingerprint());
    EXPECT_EQ((*a)->fingerprint().size(), 64u);

    const std::string flipped = (dir_ / "flip.gguf").string();
    Edit e;
    bool done = false;
    e.mutate_data = [&](std::vector<uint8_t>& d) {
        if (!done && d.size() > 100) {
            d[100] ^= 1;
            done = true;
        }
    };
    rewrite(base_, flipped, e);
    auto c = Model::load(flipped);
    ASSERT_TRUE(c.ok());
    EXPECT_NE((*a)->fingerprint(), (*c)->fingerprint());

    const std::string vocab_changed = (dir_ / "vocab.gguf").string();
    rewrite(base_, vocab_changed, set_key("tokenizer.ggml.bos_token_id", GgufWriteValue::u32(2)));
    auto d = Model::load(vocab_changed);
    ASSERT_TRUE(d.ok());
    EXPECT_NE((*a)->fingerprint(), (*d)->fingerprint());
}

TEST_F(ModelTest, ProgressIsReportedAndCanCancel) {
    std::vector<float> seen;
    ModelParams mp;
    mp.progress = [&](float f) {
        seen.push_back(f);
        return true;
    };
    ASSERT_TRUE(Model::load(base_, mp).ok());
    ASSERT_FALSE(seen.empty());
    EXPECT_FLOAT_EQ(seen.back(), 1.0f);
    for (size_t i = 1; i < seen.size(); ++i) EXPECT_GE(seen[i], seen[i - 1]);

    mp.progress = [](float) { return false; };
    auto m = Model::load(base_, mp);
    ASSERT_FALSE(m.ok());
    EXPECT_EQ(m.error().code, ErrorCode::kCancelled);
}

TEST_F(ModelTest, ReadingWithoutMmapGivesTheSameLogits) {
    std::vector<std::vector<float>> out;
    for (bool mmap : {true, false}) {
        ModelParams mp;
        mp.use_mmap = mmap;
        auto m = Model::load(base_, mp);
        ASSERT_TRUE(m.ok());
        ContextParams cp;
        cp.n_ctx = 16;
        cp.n_threads = 1;
        auto ctx = Context::create(*m, cp);
        ASSERT_TRUE(ctx.ok());
        Batch b;
        b.add_sequence({1, 5, 6}, 0, false);
        ASSERT_TRUE((*ctx)->decode(b).ok());
        out.emplace_back((*ctx)->logits_ith(-1), (*ctx)->logits_ith(-1) + (*ctx)->n_vocab());
    }
    EXPECT_EQ(out[0], out[1]);
}

TEST(ModelFiles, NonexistentAndGarbageFiles) {
    auto m = Model::load("/nonexistent/model.gguf");
    ASSERT_FALSE(m.ok());
    EXPECT_EQ(m.error().code, ErrorCode::kIo);
    testing::TempDir dir;
    testing::write_file_bytes(dir / "junk.gguf", std::vector<uint8_t>(1000, 0x41));
    auto j = Model::load((dir / "junk.gguf").string());
    ASSERT_FALSE(j.ok());
    EXPECT_NE(j.error().message.find("magic"), std::string::npos);
}

}  // namespace
}  // namespace llama_crab
