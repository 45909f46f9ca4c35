// Context::seq_tokens: what a sequence holds from position 0, read from the KV cells, and which part of it is
// exact (no cell moved by seq_add). Llama trusts this and nothing else (issue 12).
#include <gtest/gtest.h>

#include "llama_crab/context.h"
#include "model/random_model.h"
#include "support/testdata.h"

namespace llama_crab {
namespace {

class KvPrefix : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        dir_ = new testing::TempDir();
        RandomModelSpec spec;
        spec.n_embd = 32;
        spec.n_layer = 1;
        spec.n_head = 2;
        spec.n_head_kv = 1;
        spec.n_ff = 64;
        spec.seed = 11;
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

    std::unique_ptr<Context> make(int32_t n_seq = 2) {
        ContextParams p;
        p.n_ctx = 32;
        p.n_seq_max = n_seq;
        p.kv_type = KvType::kF32;
        p.n_threads = 1;
        auto c = Context::create(*model_, p);
        EXPECT_TRUE(c.ok());
        return std::move(c).value();
    }
    static void decode(Context& c, const std::vector<Token>& tokens, SeqId seq, Pos from = 0) {
        Batch b;
        b.add_sequence(tokens, seq, false, from);
        ASSERT_TRUE(c.decode(b).ok());
    }
    using V = std::vector<Token>;

    static testing::TempDir* dir_;
    static std::shared_ptr<Model>* model_;
};
testing::TempDir* KvPrefix::dir_ = nullptr;
std::shared_ptr<Model>* KvPrefix::model_ = nullptr;

TEST_F(KvPrefix, EmptyAndBadSequenceIds) {
    auto c = make();
    EXPECT_TRUE(c->seq_tokens(0).tokens.empty());
    EXPECT_EQ(c->seq_tokens(0).n_exact, 0);
    decode(*c, {1, 5, 6}, 0);
    EXPECT_TRUE(c->seq_tokens(-1).tokens.empty());
    EXPECT_TRUE(c->seq_tokens(2).tokens.empty());
    EXPECT_TRUE(c->seq_tokens(1).tokens.empty());
}

TEST_F(KvPrefix, DecodedTokensInPositionOrder) {
    auto c = make();
    decode(*c, {1, 5, 6, 7}, 0);
    decode(*c, {1, 9}, 1);
    // Sequence 0 continues in cells after sequence 1's: the cells are not in position order.
    ASSERT_TRUE(c->seq_rm(0, 2, -1));
    decode(*c, {20, 21, 22}, 0, 2);
    const auto s = c->seq_tokens(0);
    EXPECT_EQ(s.tokens, (V{1, 5, 20, 21, 22}));
    EXPECT_EQ(s.n_exact, 5);
    EXPECT_EQ(c->seq_tokens(1).tokens, (V{1, 9}));
}

TEST_F(KvPrefix, StopsAtAGapAndNeedsPositionZero) {
    auto c = make();
    decode(*c, {1, 5, 6, 7, 8}, 0);
    ASSERT_TRUE(c->seq_rm(0, 2, 3));
    EXPECT_EQ(c->seq_tokens(0).tokens, (V{1, 5}));
    EXPECT_EQ(c->seq_tokens(0).n_exact, 2);
    ASSERT_TRUE(c->seq_rm(0, 0, 1));
    EXPECT_TRUE(c->seq_tokens(0).tokens.empty());
    auto late = make();
    decode(*late, {1, 5, 6}, 0, 4);
    EXPECT_TRUE(late->seq_tokens(0).tokens.empty());
}

TEST_F(KvPrefix, ADoubledPositionEndsThePrefix) {
    auto c = make();
    decode(*c, {1, 5, 6, 7}, 0);
    decode(*c, {1, 8, 9, 10}, 1);
    c->seq_cp(1, 0, 2, 3);  // sequence 0 now has two cells at position 2
    EXPECT_EQ(c->seq_tokens(0).tokens, (V{1, 5}));
}

TEST_F(KvPrefix, ShiftedCellsAreNotExactUntilRemoved) {
    auto c = make();
    decode(*c, {1, 5, 6, 7, 8, 9}, 0);
    ASSERT_TRUE(c->seq_rm(0, 2, 4));
    c->seq_add(0, 4, -1, -2);
    auto s = c->seq_tokens(0);
    EXPECT_EQ(s.tokens, (V{1, 5, 8, 9}));
    EXPECT_EQ(s.n_exact, 2);
    // Tokens decoded after a shifted cell are not exact either: they attended to it.
    decode(*c, {30}, 0, 4);
    EXPECT_EQ(c->seq_tokens(0).n_exact, 2);
    // A copy shares the cells, so it shares the mark.
    c->seq_cp(0, 1, -1, -1);
    EXPECT_EQ(c->seq_tokens(1).n_exact, 2);
    // Removing the shifted cells and decoding afresh makes everything exact again.
    ASSERT_TRUE(c->seq_rm(0, 2, -1));
    decode(*c, {6, 7}, 0, 2);
    s = c->seq_tokens(0);
    EXPECT_EQ(s.tokens, (V{1, 5, 6, 7}));
    EXPECT_EQ(s.n_exact, 4);
    EXPECT_EQ(c->seq_tokens(1).n_exact, 2);
}

TEST_F(KvPrefix, CellsOlderThanALowerPositionAreNotExact) {
    auto c = make();
    decode(*c, {1, 5, 6, 7, 8}, 0);
    // Replace position 2 by a cell of another sequence (decode refuses a position below the sequence's last):
    // positions 3 and 4 were computed over the old token there.
    ASSERT_TRUE(c->seq_rm(0, 2, 3));
    decode(*c, {1, 5, 9}, 1);
    c->seq_cp(1, 0, 2, 3);
    auto s = c->seq_tokens(0);
    EXPECT_EQ(s.tokens, (V{1, 5, 9, 7, 8}));
    EXPECT_EQ(s.n_exact, 3);
    // Decoding them again (after the new token) makes them exact.
    ASSERT_TRUE(c->seq_rm(0, 3, -1));
    decode(*c, {7, 8}, 0, 3);
    EXPECT_EQ(c->seq_tokens(0).n_exact, 5);
    // A whole-context state keeps the order the cells were computed in.
    const auto bytes = c->state_get();
    auto d = make();
    ASSERT_TRUE(d->state_set(bytes.data(), bytes.size()).ok());
    EXPECT_EQ(d->seq_tokens(0).n_exact, 5);
}

TEST_F(KvPrefix, StatesCarryTheTokens) {
    auto a = make();
    decode(*a, {1, 5, 6, 7}, 0);
    decode(*a, {1, 9}, 1);
    auto st = a->state_seq_export(0);
    ASSERT_TRUE(st.ok());
    auto b = make();
    ASSERT_TRUE(b->state_seq_import(1, *st).ok());
    EXPECT_EQ(b->seq_tokens(1).tokens, (V{1, 5, 6, 7}));
    EXPECT_TRUE(b->seq_tokens(0).tokens.empty());
    const auto bytes = a->state_get();
    auto c = make();
    ASSERT_TRUE(c->state_set(bytes.data(), bytes.size()).ok());
    EXPECT_EQ(c->seq_tokens(0).tokens, (V{1, 5, 6, 7}));
    EXPECT_EQ(c->seq_tokens(1).tokens, (V{1, 9}));
    c->kv_clear();
    EXPECT_TRUE(c->seq_tokens(0).tokens.empty());
}

}  // namespace
}  // namespace llama_crab
