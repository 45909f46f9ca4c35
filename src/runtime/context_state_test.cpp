// Saving and restoring sequence state: restored KV gives bit-identical logits; mismatches are typed errors.
#include <gtest/gtest.h>

#include <cstring>

#include "llama_crab/context.h"
#include "support/test_models.h"
#include "support/testdata.h"

namespace llama_crab {
namespace {

class ContextStateTest : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        dir_ = new testing::TempDir();
        for (int i = 0; i < 2; ++i) {
            std::string name = "m";  // not "m" + to_string(i): g++ 12 gives a bogus -Wrestrict for that
            name += std::to_string(i);
            const std::string path = (*dir_ / (name + ".gguf")).string();
            ASSERT_TRUE(write_random_model(testing::tiny_model_spec(11 + (uint64_t)i), path).ok());
            auto m = Model::load(path);
            ASSERT_TRUE(m.ok());
            models_[i] = new std::shared_ptr<Model>(*m);
        }
    }
    static void TearDownTestSuite() {
        delete models_[0];
        delete models_[1];
        delete dir_;
    }

    static std::unique_ptr<Context> make(int model = 0, KvType kv = KvType::kF16, int32_t n_ctx = 64, int32_t n_seq = 4) {
        ContextParams p;
        p.n_ctx = n_ctx;
        p.n_seq_max = n_seq;
        p.kv_type = kv;
        p.n_threads = 2;
        auto c = Context::create(*models_[model], p);
        EXPECT_TRUE(c.ok());
        return std::move(c).value();
    }

    static std::vector<float> next_logits(Context& c, SeqId seq, Token tok) {
        Batch b;
        b.add(tok, c.seq_pos_max(seq) + 1, {seq}, true);
        EXPECT_TRUE(c.decode(b).ok());
        return std::vector<float>(c.logits_ith(0), c.logits_ith(0) + c.n_vocab());
    }

    static void prefill(Context& c, const std::vector<Token>& t, SeqId seq) {
        Batch b;
        b.add_sequence(t, seq, false);
        ASSERT_TRUE(c.decode(b).ok());
    }

    static testing::TempDir* dir_;
    static std::shared_ptr<Model>* models_[2];
};
testing::TempDir* ContextStateTest::dir_ = nullptr;
std::shared_ptr<Model>* ContextStateTest::models_[2] = {nullptr, nullptr};

const std::vector<Token> kPrompt = {1, 40, 41, 42, 43, 44, 45, 46, 47};

TEST_F(ContextStateTest, TypedRoundTripIsBitIdentical) {
    for (KvType kv : {KvType::kF16, KvType::kF32}) {
        auto a = make(0, kv);
        prefill(*a, kPrompt, 0);
        auto st = a->state_seq_export(0);
        ASSERT_TRUE(st.ok());
        EXPECT_EQ(st->tokens, kPrompt);
        EXPECT_EQ(st->positions.size(), kPrompt.size());
        EXPECT_EQ(st->kv.size(), kPrompt.size() * st->layout.token_bytes());
        EXPECT_EQ(st->model_fingerprint, (*models_[0])->fingerprint());

        auto b = make(0, kv);
        prefill(*b, {1, 2, 3}, 2);  // unrelated content in another sequence stays
        auto n = b->state_seq_import(1, *st);
        ASSERT_TRUE(n.ok()) << n.error().to_string();
        EXPECT_EQ(*n, (int32_t)kPrompt.size());
        EXPECT_EQ(b->seq_pos_max(1), (Pos)kPrompt.size() - 1);
        EXPECT_EQ(b->seq_pos_max(2), 2);
        EXPECT_EQ(next_logits(*a, 0, 77), next_logits(*b, 1, 77)) << "restored KV must give bit-identical logits";
    }
}

TEST_F(ContextStateTest, ImportReplacesTheSequence) {
    auto a = make();
    prefill(*a, kPrompt, 0);
    auto st = a->state_seq_export(0);
    ASSERT_TRUE(st.ok());
    auto b = make();
    prefill(*b, {1, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9}, 0);
    ASSERT_TRUE(b->state_seq_import(0, *st).ok());
    EXPECT_EQ(b->kv_used_cells(), (int32_t)kPrompt.size());
    EXPECT_EQ(next_logits(*a, 0, 5), next_logits(*b, 0, 5));
}

TEST_F(ContextStateTest, MismatchesAreTypedAndChangeNothing) {
    auto a = make();
    prefill(*a, kPrompt, 0);
    auto st = a->state_seq_export(0);
    ASSERT_TRUE(st.ok());

    auto other_model = make(1);
    prefill(*other_model, {1, 2}, 0);
    auto r = other_model->state_seq_import(0, *st);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ErrorCode::kStateMismatch);
    EXPECT_NE(r.error().message.find("another model"), std::string::npos);
    EXPECT_EQ(other_model->seq_pos_max(0), 1) << "a refused import must not touch the sequence";

    auto f32 = make(0, KvType::kF32);
    r = f32->state_seq_import(0, *st);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ErrorCode::kStateMismatch);
    EXPECT_NE(r.error().message.find("dtype"), std::string::npos);

    auto small = make(0, KvType::kF16, 4);
    r = small->state_seq_import(0, *st);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ErrorCode::kNoKvSpace);

    SequenceState bad = *st;
    bad.positions[3] = bad.positions[2];
    r = make()->state_seq_import(0, bad);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidFormat);

    bad = *st;
    bad.kv.pop_back();
    EXPECT_EQ(make()->state_seq_import(0, bad).error().code, ErrorCode::kInvalidFormat);

    bad = *st;
    bad.layout.n_head_kv = 1;
    EXPECT_EQ(make()->state_seq_import(0, bad).error().code, ErrorCode::kStateMismatch);

    EXPECT_FALSE(a->state_seq_import(9, *st).ok());
}

TEST_F(ContextStateTest, BytesAndSessionFilesRoundTrip) {
    auto a = make();
    prefill(*a, kPrompt, 0);
    const std::vector<uint8_t> bytes = a->state_seq_get(0);
    ASSERT_FALSE(bytes.empty());
    EXPECT_EQ(a->state_seq_size(0), bytes.size());
    auto b = make();
    auto n = b->state_seq_set(0, bytes.data(), bytes.size());
    ASSERT_TRUE(n.ok()) << n.error().to_string();

    const std::string path = (*dir_ / "seq.session").string();
    ASSERT_TRUE(a->save_session(path, 0).ok());
    auto c = make();
    auto m = c->load_session(path, 3);
    ASSERT_TRUE(m.ok()) << m.error().to_string();
    const auto want = next_logits(*a, 0, 21);
    EXPECT_EQ(want, next_logits(*b, 0, 21));
    EXPECT_EQ(want, next_logits(*c, 3, 21));

    // Corrupt blobs: truncated, bit-flipped. Typed errors, no partial load.
    auto d = make();
    prefill(*d, {1, 2, 3}, 0);
    for (size_t cut : {size_t{0}, size_t{7}, bytes.size() / 2, bytes.size() - 1}) {
        auto r = d->state_seq_set(0, bytes.data(), cut);
        EXPECT_FALSE(r.ok()) << "truncated to " << cut;
    }
    for (size_t at : {size_t{3}, size_t{40}, bytes.size() / 2, bytes.size() - 3}) {
        auto flipped = bytes;
        flipped[at] ^= 0x10;
        auto r = d->state_seq_set(0, flipped.data(), flipped.size());
        EXPECT_FALSE(r.ok()) << "bit flip at " << at;
    }
    EXPECT_EQ(d->seq_pos_max(0), 2) << "failed loads must leave the sequence alone";
}

TEST_F(ContextStateTest, WholeContextStateKeepsSharedCells) {
    auto a = make();
    prefill(*a, kPrompt, 0);
    a->seq_cp(0, 1, -1, -1);
    Batch b;
    b.add(60, (Pos)kPrompt.size(), {1}, false);
    ASSERT_TRUE(a->decode(b).ok());
    const auto bytes = a->state_get();
    auto c = make();
    ASSERT_TRUE(c->state_set(bytes.data(), bytes.size()).ok());
    EXPECT_EQ(c->kv_used_cells(), a->kv_used_cells());
    EXPECT_EQ(next_logits(*a, 0, 70), next_logits(*c, 0, 70));
    EXPECT_EQ(next_logits(*a, 1, 71), next_logits(*c, 1, 71));
    auto wrong = make(0, KvType::kF16, 64, 2);
    EXPECT_EQ(wrong->state_set(bytes.data(), bytes.size()).error().code, ErrorCode::kStateMismatch);
    auto flipped = bytes;
    flipped[30] ^= 1;
    EXPECT_FALSE(c->state_set(flipped.data(), flipped.size()).ok());
}

}  // namespace
}  // namespace llama_crab
