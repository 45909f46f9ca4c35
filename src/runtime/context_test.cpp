// Context and KV cache behaviour on small random models made with our GGUF writer.
#include <gtest/gtest.h>

#include <cmath>

#include "llama_crab/context.h"
#include "model/random_model.h"
#include "support/testdata.h"

namespace llama_crab {
namespace {

class ContextTest : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        dir_ = new testing::TempDir();
        RandomModelSpec spec;
        spec.n_embd = 64;
        spec.n_layer = 2;
        spec.n_head = 4;
        spec.n_head_kv = 2;
        spec.n_ff = 128;
        spec.seed = 7;
        const std::string path = (*dir_ / "tiny.gguf").string();
        ASSERT_TRUE(write_random_model(spec, path).ok());
        auto m = Model::load(path);
        ASSERT_TRUE(m.ok()) << m.error().to_string();
        model_ = new std::shared_ptr<Model>(*m);
    }
    static void TearDownTestSuite() {
        delete model_;
        delete dir_;
    }

    std::unique_ptr<Context> make(int32_t n_ctx = 64, int32_t n_seq = 4, KvType kv = KvType::kF32, int32_t n_ubatch = 512) {
        ContextParams p;
        p.n_ctx = n_ctx;
        p.n_seq_max = n_seq;
        p.kv_type = kv;
        p.n_threads = 2;
        p.n_ubatch = n_ubatch;
        auto c = Context::create(*model_, p);
        EXPECT_TRUE(c.ok());
        return std::move(c).value();
    }

    std::vector<float> logits_of(Context& c, int32_t i) {
        const float* p = c.logits_ith(i);
        EXPECT_NE(p, nullptr);
        if (!p) return {};
        return std::vector<float>(p, p + c.n_vocab());
    }

    static double max_diff(const std::vector<float>& a, const std::vector<float>& b) {
        double d = 0;
        for (size_t i = 0; i < a.size() && i < b.size(); ++i) d = std::max(d, (double)std::fabs(a[i] - b[i]));
        return a.size() == b.size() ? d : 1e9;
    }

    static std::vector<Token> toks(std::initializer_list<Token> t) { return t; }

    static testing::TempDir* dir_;
    static std::shared_ptr<Model>* model_;
};
testing::TempDir* ContextTest::dir_ = nullptr;
std::shared_ptr<Model>* ContextTest::model_ = nullptr;

TEST_F(ContextTest, RejectsMalformedBatches) {
    auto c = make(8, 2);
    Batch empty;
    EXPECT_EQ(c->decode(empty).error().code, ErrorCode::kInvalidBatch);

    Batch bad_token;
    bad_token.add(100000, 0, {0}, true);
    auto st = c->decode(bad_token);
    EXPECT_EQ(st.error().code, ErrorCode::kInvalidBatch);
    EXPECT_NE(st.error().message.find("token 100000"), std::string::npos);

    Batch bad_seq;
    bad_seq.add(1, 0, {5}, true);
    EXPECT_NE(c->decode(bad_seq).error().message.find("sequence id 5"), std::string::npos);

    Batch no_seq;
    no_seq.add(1, 0, {}, true);
    EXPECT_EQ(c->decode(no_seq).error().code, ErrorCode::kInvalidBatch);

    Batch neg_pos;
    neg_pos.add(1, -3, {0}, true);
    EXPECT_EQ(c->decode(neg_pos).error().code, ErrorCode::kInvalidBatch);

    Batch out_of_order;
    out_of_order.add(1, 3, {0}, false);
    out_of_order.add(2, 2, {0}, true);
    EXPECT_NE(c->decode(out_of_order).error().message.find("out of order"), std::string::npos);

    Batch too_many;
    too_many.add_sequence(std::vector<Token>(9, 5), 0, false);
    auto full = c->decode(too_many);
    EXPECT_FALSE(full.ok());
    EXPECT_EQ(c->kv_used_cells(), 0) << "a failed decode must leave the KV cache unchanged";

    Batch ok;
    ok.add_sequence(toks({1, 5, 9, 12}), 0, false);
    ASSERT_TRUE(c->decode(ok).ok());
    Batch again;  // positions already in the cache for seq 0
    again.add(3, 2, {0}, true);
    EXPECT_NE(c->decode(again).error().message.find("out of order"), std::string::npos);
    Batch overflow;
    overflow.add_sequence(std::vector<Token>(5, 3), 1, false);
    auto nospace = c->decode(overflow);
    EXPECT_EQ(nospace.error().code, ErrorCode::kNoKvSpace);
    EXPECT_EQ(c->kv_used_cells(), 4);
}

TEST_F(ContextTest, LogitsOnlyWhereAsked) {
    auto c = make();
    Batch b;
    b.add_sequence(toks({1, 20, 30, 40}), 0, false);
    ASSERT_TRUE(c->decode(b).ok());
    EXPECT_EQ(c->n_outputs(), 1);
    EXPECT_EQ(c->logits_ith(0), nullptr);
    EXPECT_NE(c->logits_ith(3), nullptr);
    EXPECT_EQ(c->logits_ith(-1), c->logits_ith(3));
}

TEST_F(ContextTest, MicroBatchesGiveTheSameLogits) {
    const auto prompt = toks({1, 30, 31, 32, 40, 41, 50, 60, 70, 80, 90});
    auto whole = make(64, 1, KvType::kF32, 512);
    auto split = make(64, 1, KvType::kF32, 3);
    Batch b;
    b.add_sequence(prompt, 0, true);
    ASSERT_TRUE(whole->decode(b).ok());
    ASSERT_TRUE(split->decode(b).ok());
    for (int32_t i = 0; i < (int32_t)prompt.size(); ++i) EXPECT_LT(max_diff(logits_of(*whole, i), logits_of(*split, i)), 1e-4) << i;
}

TEST_F(ContextTest, TwoSequencesInOneBatchMatchEachAlone) {
    const auto a = toks({1, 40, 41, 42, 43});
    const auto b = toks({1, 90, 91});
    auto both = make();
    Batch batch;
    batch.add_sequence(a, 0, false);
    batch.add_sequence(b, 1, false);
    ASSERT_TRUE(both->decode(batch).ok());
    const auto la = logits_of(*both, (int32_t)a.size() - 1);
    const auto lb = logits_of(*both, (int32_t)(a.size() + b.size()) - 1);

    for (const auto& [seq, want] : {std::pair{a, la}, std::pair{b, lb}}) {
        auto alone = make();
        Batch one;
        one.add_sequence(seq, 0, false);
        ASSERT_TRUE(alone->decode(one).ok());
        EXPECT_LT(max_diff(logits_of(*alone, -1), want), 1e-4);
    }
    EXPECT_GT(max_diff(la, lb), 1e-3) << "different prompts should give different logits";
}

TEST_F(ContextTest, SeqRmThenRedecodeMatchesFreshContext) {
    auto c = make();
    Batch b;
    b.add_sequence(toks({1, 10, 11, 12, 13, 14}), 0, false);
    ASSERT_TRUE(c->decode(b).ok());
    ASSERT_TRUE(c->seq_rm(0, 3, -1));
    EXPECT_EQ(c->seq_pos_max(0), 2);
    EXPECT_EQ(c->kv_used_cells(), 3);
    Batch tail;
    tail.add_sequence(toks({50, 51}), 0, false, 3);
    ASSERT_TRUE(c->decode(tail).ok());

    auto fresh = make();
    Batch f;
    f.add_sequence(toks({1, 10, 11, 50, 51}), 0, false);
    ASSERT_TRUE(fresh->decode(f).ok());
    EXPECT_LT(max_diff(logits_of(*c, -1), logits_of(*fresh, -1)), 1e-4);
}

TEST_F(ContextTest, SeqCpSharesAPrefix) {
    auto c = make();
    Batch prefix;
    prefix.add_sequence(toks({1, 60, 61, 62}), 0, false);
    ASSERT_TRUE(c->decode(prefix).ok());
    c->seq_cp(0, 1, -1, -1);
    EXPECT_EQ(c->kv_used_cells(), 4) << "a copy shares cells, it does not duplicate them";
    EXPECT_EQ(c->seq_pos_max(1), 3);
    Batch cont;
    cont.add(70, 4, {1}, true);
    cont.add(80, 4, {0}, true);
    ASSERT_TRUE(c->decode(cont).ok());

    for (auto [last, row] : {std::pair{70, 0}, std::pair{80, 1}}) {
        auto fresh = make();
        Batch f;
        f.add_sequence(toks({1, 60, 61, 62, last}), 0, false);
        ASSERT_TRUE(fresh->decode(f).ok());
        EXPECT_LT(max_diff(logits_of(*c, row), logits_of(*fresh, -1)), 1e-4);
    }
    c->seq_keep(1);
    EXPECT_EQ(c->seq_pos_max(0), -1);
    EXPECT_EQ(c->seq_pos_max(1), 4);
    EXPECT_EQ(c->kv_used_cells(), 5);
}

TEST_F(ContextTest, SeqAddShiftsPositionsAndRerotatesK) {
    for (KvType kv : {KvType::kF32, KvType::kF16}) {
        const auto prompt = toks({1, 33, 34, 35, 36});
        auto shifted = make(64, 1, kv);
        Batch b;
        b.add_sequence(prompt, 0, false, 10);  // positions 10..14
        ASSERT_TRUE(shifted->decode(b).ok());
        shifted->seq_add(0, -1, -1, -10);
        EXPECT_EQ(shifted->seq_pos_min(0), 0);
        EXPECT_EQ(shifted->seq_pos_max(0), 4);
        Batch next;
        next.add(44, 5, {0}, true);
        ASSERT_TRUE(shifted->decode(next).ok());

        auto fresh = make(64, 1, kv);
        Batch f;
        f.add_sequence(toks({1, 33, 34, 35, 36, 44}), 0, false);
        ASSERT_TRUE(fresh->decode(f).ok());
        const double d = max_diff(logits_of(*shifted, 0), logits_of(*fresh, -1));
        EXPECT_LT(d, kv == KvType::kF32 ? 1e-3 : 5e-2);

        // Without re-rotation the relative positions would be wrong by 10: check the test can tell.
        auto unshifted = make(64, 1, kv);
        ASSERT_TRUE(unshifted->decode(b).ok());
        Batch wrong;
        wrong.add(44, 5 + 10 + 10, {0}, true);  // query 20 positions away instead of 10
        ASSERT_TRUE(unshifted->decode(wrong).ok());
        EXPECT_GT(max_diff(logits_of(*unshifted, 0), logits_of(*fresh, -1)), 10 * d);
    }
}

TEST_F(ContextTest, ShiftBelowZeroDropsCells) {
    auto c = make();
    Batch b;
    b.add_sequence(toks({1, 2, 3, 4}), 0, false);
    ASSERT_TRUE(c->decode(b).ok());
    c->seq_add(0, 0, 2, -5);
    EXPECT_EQ(c->kv_used_cells(), 2);
    EXPECT_EQ(c->seq_pos_min(0), 2);
    c->seq_rm(-1, -1, -1);
    EXPECT_EQ(c->kv_used_cells(), 0);
}

}  // namespace
}  // namespace llama_crab
