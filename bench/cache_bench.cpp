// Prefix-cache throughput: store and lookup of a 1,024-token state of realistic size (22 layers, 4 KV heads of
// 64 dims, f16: 22,528 bytes per token, 23 MB per state) in RamCache and DiskCache, and bytes per token held.
// KV values are Gaussian f16, roughly as compressible as real K/V activations.
#include <benchmark/benchmark.h>

#include <cstring>
#include <filesystem>
#include <random>
#include <string>

#include "llama_crab/cache.h"
#include "util/fp16.h"

namespace {

using namespace llama_crab;
namespace fs = std::filesystem;

constexpr size_t kTokens = 1024;
const KvLayout kLayout{22, 4, 64, 0};
const std::string kFp(64, 'b');

const SequenceState& base_state() {
    static const SequenceState s = [] {
        SequenceState st;
        st.model_fingerprint = kFp;
        st.layout = kLayout;
        std::mt19937_64 rng(1);
        for (size_t i = 0; i < kTokens; ++i) {
            st.tokens.push_back((Token)(rng() % 32000));
            st.positions.push_back((Pos)i);
        }
        st.kv.resize(kTokens * kLayout.token_bytes());
        std::normal_distribution<float> nd(0.f, 1.f);
        for (size_t i = 0; i + 1 < st.kv.size(); i += 2) {
            const auto h = fp32_to_fp16(nd(rng));
            std::memcpy(&st.kv[i], &h, 2);
        }
        return st;
    }();
    return s;
}

// A copy of the base state whose tokens start with `id`, so every variant is a distinct entry.
CacheEntry variant(uint32_t id) {
    CacheEntry e;
    e.state = base_state();
    e.state.tokens[0] = (Token)(100000 + id);
    e.n_past = (int32_t)kTokens;
    return e;
}

struct TempFolder {
    fs::path path;
    TempFolder() {
        path = fs::temp_directory_path() / ("llama-crab-cache-bench-" + std::to_string(std::random_device{}()));
        fs::create_directories(path);
    }
    ~TempFolder() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
};

size_t folder_bytes(const fs::path& p) {
    size_t n = 0;
    for (const auto& e : fs::recursive_directory_iterator(p)) {
        if (e.is_regular_file()) n += (size_t)e.file_size();
    }
    return n;
}

const size_t kStateBytes = kTokens * kLayout.token_bytes();

void BM_RamStore(benchmark::State& state) {
    RamCache c(size_t(8) * kStateBytes + (1 << 20));
    std::vector<CacheEntry> entries;
    for (uint32_t i = 0; i < 16; ++i) entries.push_back(variant(i));
    uint32_t i = 0;
    for (auto _ : state) {
        const auto& e = entries[i++ % entries.size()];
        if (!c.store(e.state.tokens, e).ok()) state.SkipWithError("store failed");
    }
    state.SetBytesProcessed((int64_t)(state.iterations() * kStateBytes));
    state.counters["ram_bytes_per_token"] = (double)c.size_bytes() / (double)(c.len() * kTokens);
}
BENCHMARK(BM_RamStore)->Unit(benchmark::kMillisecond);

void BM_RamLookupHit(benchmark::State& state) {
    RamCache c(size_t(4) * kStateBytes);
    const auto e = variant(0);
    (void)c.store(e.state.tokens, e);
    for (auto _ : state) {
        auto got = c.lookup(e.state.tokens, kFp);
        if (!got || got->n_past != (int32_t)kTokens) state.SkipWithError("miss");
        benchmark::DoNotOptimize(got);
    }
    state.SetBytesProcessed((int64_t)(state.iterations() * kStateBytes));
}
BENCHMARK(BM_RamLookupHit)->Unit(benchmark::kMillisecond);

void BM_RamLookupMiss10kEntries(benchmark::State& state) {
    // Lookup cost with many entries sharing a prefix (tiny KV so 10,000 entries fit): O(query), not O(entries).
    RamCache c(size_t(1) << 30);
    const KvLayout tiny{1, 1, 1, 0};
    std::mt19937_64 rng(3);
    std::vector<Token> prefix(960);
    for (auto& t : prefix) t = (Token)(rng() % 32000);
    for (int i = 0; i < 10000; ++i) {
        CacheEntry e;
        e.state.model_fingerprint = kFp;
        e.state.layout = tiny;
        e.state.tokens = prefix;
        for (int j = 0; j < 64; ++j) e.state.tokens.push_back((Token)(rng() % 32000));
        e.state.positions.resize(e.state.tokens.size());
        for (size_t j = 0; j < e.state.positions.size(); ++j) e.state.positions[j] = (Pos)j;
        e.state.kv.assign(e.state.tokens.size() * tiny.token_bytes(), 1);
        (void)c.store(e.state.tokens, e);
    }
    std::vector<Token> q = prefix;
    for (int j = 0; j < 64; ++j) q.push_back(-1 - j);
    for (auto _ : state) benchmark::DoNotOptimize(c.lookup(q, kFp));
}
BENCHMARK(BM_RamLookupMiss10kEntries)->Unit(benchmark::kMicrosecond);

void disk_store(benchmark::State& state, bool fsync) {
    TempFolder dir;
    DiskCacheOptions o;
    o.fsync = fsync;
    auto c = DiskCache::open(dir.path.string(), size_t(8) * kStateBytes, o);
    if (!c.ok()) return state.SkipWithError(c.error().message.c_str());
    std::vector<CacheEntry> entries;
    for (uint32_t i = 0; i < 16; ++i) entries.push_back(variant(i));
    uint32_t i = 0;
    for (auto _ : state) {
        const auto& e = entries[i++ % entries.size()];
        if (!(*c)->store(e.state.tokens, e).ok()) state.SkipWithError("store failed");
    }
    state.SetBytesProcessed((int64_t)(state.iterations() * kStateBytes));
    state.counters["disk_bytes_per_token"] = (double)folder_bytes(dir.path / "blocks") / (double)((*c)->len() * kTokens);
}
void BM_DiskStore(benchmark::State& state) { disk_store(state, true); }
void BM_DiskStoreNoFsync(benchmark::State& state) { disk_store(state, false); }
BENCHMARK(BM_DiskStore)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_DiskStoreNoFsync)->Unit(benchmark::kMillisecond);

void BM_DiskLookupHit(benchmark::State& state) {
    TempFolder dir;
    auto c = DiskCache::open(dir.path.string(), size_t(4) * kStateBytes);
    if (!c.ok()) return state.SkipWithError(c.error().message.c_str());
    const auto e = variant(0);
    (void)(*c)->store(e.state.tokens, e);
    for (auto _ : state) {
        auto got = (*c)->lookup(e.state.tokens, kFp);
        if (!got || got->n_past != (int32_t)kTokens) state.SkipWithError("miss");
        benchmark::DoNotOptimize(got);
    }
    state.SetBytesProcessed((int64_t)(state.iterations() * kStateBytes));
}
BENCHMARK(BM_DiskLookupHit)->Unit(benchmark::kMillisecond);

void BM_DiskOpenAndLookupHit(benchmark::State& state) {
    // A fresh handle each time, as after a process restart (the OS page cache stays warm).
    TempFolder dir;
    const auto e = variant(0);
    {
        auto c = DiskCache::open(dir.path.string(), size_t(4) * kStateBytes);
        if (!c.ok()) return state.SkipWithError(c.error().message.c_str());
        (void)(*c)->store(e.state.tokens, e);
    }
    for (auto _ : state) {
        auto c = DiskCache::open(dir.path.string(), size_t(4) * kStateBytes);
        auto got = (*c)->lookup(e.state.tokens, kFp);
        if (!got || got->n_past != (int32_t)kTokens) state.SkipWithError("miss");
        benchmark::DoNotOptimize(got);
    }
    state.SetBytesProcessed((int64_t)(state.iterations() * kStateBytes));
}
BENCHMARK(BM_DiskOpenAndLookupHit)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
