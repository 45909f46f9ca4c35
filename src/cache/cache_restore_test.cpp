// A state restored from a RamCache, a DiskCache, a session file or state bytes, in this process or after a
// process restart, gives bit-identical logits to recomputing the same tokens (also for a Gemma 3, whose
// sliding-window layers see only the last positions: the restored state holds every cell, as the KV cache does); a state of another model is a
// cache miss and a typed error; a damaged session file is refused without touching the sequence.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <random>
#include <sys/wait.h>
#include <unistd.h>

#include "cache/cache_test_util.h"
#include "llama_crab/cache.h"
#include "llama_crab/context.h"
#include "support/test_models.h"
#include "support/testdata.h"

namespace llama_crab {
namespace {

using cache_test::concat;
using cache_test::random_tokens;
constexpr SeqId kSeq = 0;

class CacheRestoreTest : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        dir_ = new testing::TempDir();
        for (int i = 0; i < 3; ++i) {
            std::string name = "m";  // not "m" + to_string(i): g++ 12 gives a bogus -Wrestrict for that
            name += std::to_string(i);
            paths_[i] = (*dir_ / (name + ".gguf")).string();
            const RandomModelSpec spec = i < 2 ? testing::tiny_model_spec(71 + (uint64_t)i) : testing::tiny_gemma3_spec(73, 32);
            ASSERT_TRUE(write_random_model(spec, paths_[i]).ok());
        }
        // The llama.cpp-converted Gemma 3 of the test data, when it is there.
        const auto synth = testing::testdata_dir() / "models" / "synth-gemma3-q8_0.gguf";
        if (testing::testdata_available() && std::filesystem::exists(synth)) paths_[3] = synth.string();
    }
    static void TearDownTestSuite() { delete dir_; }

    static std::shared_ptr<Model> load(int i) {
        auto m = Model::load(paths_[i]);
        EXPECT_TRUE(m.ok());
        return m.ok() ? *m : nullptr;
    }
    static std::unique_ptr<Context> make(const std::shared_ptr<Model>& m) {
        ContextParams p;
        p.n_ctx = 512;
        p.n_threads = 2;
        auto c = Context::create(m, p);
        EXPECT_TRUE(c.ok());
        return c.ok() ? std::move(c).value() : nullptr;
    }
    static void prefill(Context& c, const std::vector<Token>& t, size_t from = 0) {
        Batch b;
        b.add_sequence(std::vector<Token>(t.begin() + (ptrdiff_t)from, t.end()), kSeq, false, (Pos)from);
        ASSERT_TRUE(c.decode(b).ok());
    }
    // Decodes the continuation one token at a time after what the sequence holds; the logits of every step.
    static std::vector<float> continue_logits(Context& c, const std::vector<Token>& cont) {
        std::vector<float> all;
        for (Token t : cont) {
            Batch b;
            b.add(t, c.seq_pos_max(kSeq) + 1, {kSeq}, true);
            EXPECT_TRUE(c.decode(b).ok());
            all.insert(all.end(), c.logits_ith(0), c.logits_ith(0) + c.n_vocab());
        }
        return all;
    }
    // The reference: a fresh context computes `cached` from scratch in one batch, then the continuation.
    static std::vector<float> recomputed(const std::shared_ptr<Model>& m, const std::vector<Token>& cached,
                                         const std::vector<Token>& cont) {
        auto c = make(m);
        prefill(*c, cached);
        return continue_logits(*c, cont);
    }
    static void restores_from_every_store(int model_index, uint64_t seed);

    static testing::TempDir* dir_;
    static std::string paths_[4];  // two tiny llamas, a tiny Gemma 3 (window 32), synth-gemma3 (test data; may be empty)
};
testing::TempDir* CacheRestoreTest::dir_ = nullptr;
std::string CacheRestoreTest::paths_[4];

// The stored conversation: 150 tokens (two full cache blocks and a tail). The new query shares its first 100 (more
// than a Gemma 3's window of 32: its sliding-window layers must not see the first 68 of them, restored or not).
void CacheRestoreTest::restores_from_every_store(int model_index, uint64_t seed) {
    SCOPED_TRACE(paths_[model_index]);
    auto model = load(model_index);
    ASSERT_NE(model, nullptr);
    std::mt19937_64 rng(seed);
    const int64_t nv = model->hparams().n_vocab;
    const auto stored = random_tokens(rng, 150, nv);
    const std::vector<Token> shared(stored.begin(), stored.begin() + 100);
    const auto cont = random_tokens(rng, 5, nv);
    const auto query = concat(shared, cont);
    const std::vector<float> want = recomputed(model, shared, cont);

    auto writer = make(model);
    prefill(*writer, stored);
    auto state = writer->state_seq_export(kSeq);
    ASSERT_TRUE(state.ok());
    const CacheEntry entry{*state, (int32_t)stored.size()};

    auto ram = std::make_shared<RamCache>(16u << 20);
    ASSERT_TRUE(ram->store(stored, entry).ok());
    const std::string disk_dir = (*dir_ / ("disk" + std::to_string(model_index))).string();
    {
        auto disk = DiskCache::open(disk_dir, 16u << 20);
        ASSERT_TRUE(disk.ok());
        ASSERT_TRUE((*disk)->store(stored, entry).ok());
    }
    auto disk = DiskCache::open(disk_dir, 16u << 20);  // a new handle: nothing shared with the writer's
    ASSERT_TRUE(disk.ok());
    for (Cache* cache : {static_cast<Cache*>(ram.get()), static_cast<Cache*>(disk->get())}) {
        auto hit = cache->lookup(query, model->fingerprint(), make(model)->kv_layout());
        ASSERT_TRUE(hit.has_value());
        ASSERT_EQ(hit->n_past, 100);  // the longest common prefix, down to the token
        auto reader = make(model);
        prefill(*reader, {1, 2, 3});  // whatever the sequence held is replaced
        ASSERT_TRUE(reader->state_seq_import(kSeq, hit->state).ok());
        EXPECT_EQ(continue_logits(*reader, cont), want) << (cache == ram.get() ? "ram" : "disk");
    }

    // Session file and state bytes: the whole stored sequence.
    const auto cont2 = random_tokens(rng, 4, nv);
    const std::vector<float> want_full = recomputed(model, stored, cont2);
    const std::string session = (*dir_ / ("restore" + std::to_string(model_index) + ".session")).string();
    ASSERT_TRUE(writer->save_session(session, kSeq).ok());
    const std::vector<uint8_t> bytes = writer->state_seq_get(kSeq);
    auto from_file = make(model);
    auto n = from_file->load_session(session, kSeq);
    ASSERT_TRUE(n.ok()) << n.error().to_string();
    EXPECT_EQ(*n, 150);
    EXPECT_EQ(continue_logits(*from_file, cont2), want_full) << "session file";
    auto from_bytes = make(model);
    ASSERT_TRUE(from_bytes->state_seq_set(kSeq, bytes.data(), bytes.size()).ok());
    EXPECT_EQ(continue_logits(*from_bytes, cont2), want_full) << "state bytes";
}

TEST_F(CacheRestoreTest, RestoredFromEveryStoreGivesBitIdenticalLogits) { restores_from_every_store(0, 3); }

TEST_F(CacheRestoreTest, SlidingWindowModelRestoredFromEveryStoreGivesBitIdenticalLogits) {
    ASSERT_TRUE(load(2)->hparams().is_swa_layer(0));
    restores_from_every_store(2, 13);
    if (paths_[3].empty()) GTEST_SKIP() << "no synth-gemma3-q8_0.gguf in the test data";
    restores_from_every_store(3, 14);
}

// Runs `body` in a forked child that shares nothing with this process but the files; true when it exited 0.
template <typename F>
bool in_child(F body) {
    const pid_t pid = fork();
    if (pid == 0) _exit(body() ? 0 : 1);
    int status = 0;
    return pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

TEST_F(CacheRestoreTest, RestoredAfterAProcessRestartGivesBitIdenticalLogits) {
    std::mt19937_64 rng(4);
    const int64_t nv = load(0)->hparams().n_vocab;
    const auto stored = random_tokens(rng, 200, nv);
    const std::vector<Token> shared(stored.begin(), stored.begin() + 130);
    const auto cont = random_tokens(rng, 4, nv);
    const std::string disk_dir = (*dir_ / "restart-disk").string();
    const std::string session = (*dir_ / "restart.session").string();
    const std::string disk_logits = (*dir_ / "restart-disk.f32").string();
    const std::string file_logits = (*dir_ / "restart-file.f32").string();

    // Writer process: computes the conversation, stores it in the disk cache and a session file, exits.
    ASSERT_TRUE(in_child([&] {
        auto m = load(0);
        auto c = make(m);
        prefill(*c, stored);
        auto st = c->state_seq_export(kSeq);
        auto disk = DiskCache::open(disk_dir, 16u << 20);
        return st.ok() && disk.ok() && (*disk)->store(stored, CacheEntry{*st, (int32_t)stored.size()}).ok() &&
               c->save_session(session, kSeq).ok();
    }));
    // Reader process: a fresh model, context and cache handle; restores and continues, writes the logits out.
    ASSERT_TRUE(in_child([&] {
        auto m = load(0);
        auto disk = DiskCache::open(disk_dir, 16u << 20);
        if (!disk.ok()) return false;
        auto c = make(m);
        auto hit = (*disk)->lookup(concat(shared, cont), m->fingerprint(), c->kv_layout());
        if (!hit || hit->n_past != (int32_t)shared.size() || !c->state_seq_import(kSeq, hit->state).ok()) return false;
        auto l = continue_logits(*c, cont);
        testing::write_file_bytes(disk_logits, std::vector<uint8_t>((uint8_t*)l.data(), (uint8_t*)(l.data() + l.size())));
        auto c2 = make(m);
        if (!c2->load_session(session, kSeq).ok()) return false;
        l = continue_logits(*c2, cont);
        testing::write_file_bytes(file_logits, std::vector<uint8_t>((uint8_t*)l.data(), (uint8_t*)(l.data() + l.size())));
        return true;
    }));
    auto as_floats = [](const std::vector<uint8_t>& b) {
        std::vector<float> f(b.size() / sizeof(float));
        std::memcpy(f.data(), b.data(), f.size() * sizeof(float));
        return f;
    };
    auto model = load(0);
    EXPECT_EQ(as_floats(testing::read_file_bytes(disk_logits)), recomputed(model, shared, cont)) << "disk cache after restart";
    EXPECT_EQ(as_floats(testing::read_file_bytes(file_logits)), recomputed(model, stored, cont)) << "session file after restart";
}

TEST_F(CacheRestoreTest, AnotherModelIsAMissAndATypedError) {
    auto m0 = load(0), m1 = load(1);
    std::mt19937_64 rng(5);
    const auto toks = random_tokens(rng, 80, m0->hparams().n_vocab);
    auto c0 = make(m0);
    prefill(*c0, toks);
    auto st = c0->state_seq_export(kSeq);
    ASSERT_TRUE(st.ok());
    auto c1 = make(m1);
    ASSERT_EQ(c0->kv_layout(), c1->kv_layout()) << "same shapes: only the fingerprint tells the models apart";
    auto ram = std::make_shared<RamCache>(8u << 20);
    auto disk = DiskCache::open((*dir_ / "mismatch").string(), 8u << 20);
    ASSERT_TRUE(disk.ok());
    for (Cache* cache : {static_cast<Cache*>(ram.get()), static_cast<Cache*>(disk->get())}) {
        ASSERT_TRUE(cache->store(toks, CacheEntry{*st, 80}).ok());
        EXPECT_FALSE(cache->lookup(toks, m1->fingerprint(), c1->kv_layout()).has_value());
        EXPECT_FALSE(cache->lookup(toks, m1->fingerprint()).has_value());
        EXPECT_TRUE(cache->lookup(toks, m0->fingerprint(), c0->kv_layout()).has_value());
    }
    prefill(*c1, {5, 6, 7});
    const auto bytes = c0->state_seq_get(kSeq);
    auto r = c1->state_seq_set(kSeq, bytes.data(), bytes.size());
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ErrorCode::kStateMismatch);
    EXPECT_NE(r.error().message.find("another model"), std::string::npos) << r.error().message;
    EXPECT_EQ(c1->seq_pos_max(kSeq), 2);
}

TEST_F(CacheRestoreTest, DamagedSessionFileIsRefusedWithoutPartialLoad) {
    auto model = load(0);
    std::mt19937_64 rng(6);
    const auto toks = random_tokens(rng, 70, model->hparams().n_vocab);
    auto writer = make(model);
    prefill(*writer, toks);
    const std::string good = (*dir_ / "good.session").string(), bad = (*dir_ / "bad.session").string();
    ASSERT_TRUE(writer->save_session(good, kSeq).ok());
    const auto bytes = testing::read_file_bytes(good);

    auto target = make(model);
    const std::vector<Token> mine = {9, 8, 7, 6};
    prefill(*target, mine);
    const std::vector<Token> probe = {11};
    const auto before = recomputed(model, mine, probe);
    auto try_load = [&](const std::vector<uint8_t>& content, const char* what) {
        testing::write_file_bytes(bad, content);
        auto r = target->load_session(bad, kSeq);
        ASSERT_FALSE(r.ok()) << what;
        const ErrorCode code = r.error().code;
        EXPECT_TRUE(code == ErrorCode::kInvalidFormat || code == ErrorCode::kChecksum || code == ErrorCode::kUnsupported)
            << what << ": " << r.error().to_string();
        EXPECT_EQ(target->seq_pos_max(kSeq), (Pos)mine.size() - 1) << what;
        EXPECT_EQ(target->kv_used_cells(), (int32_t)mine.size()) << what;
    };
    for (size_t cut : {size_t{0}, size_t{5}, size_t{64}, bytes.size() / 2, bytes.size() - 1}) {
        try_load(std::vector<uint8_t>(bytes.begin(), bytes.begin() + (ptrdiff_t)cut), "truncated");
    }
    for (size_t at = 0; at < bytes.size(); at += bytes.size() / 23 + 1) {
        auto flipped = bytes;
        flipped[at] ^= 0x20;
        try_load(flipped, "bit flip");
    }
    try_load(testing::read_file_bytes(paths_[0]), "foreign file (a GGUF model)");
    auto longer = bytes;
    longer.push_back(0);
    try_load(longer, "trailing byte");
    // After all of that the sequence computes exactly what it did before.
    EXPECT_EQ(continue_logits(*target, probe), before);
}

}  // namespace
}  // namespace llama_crab
