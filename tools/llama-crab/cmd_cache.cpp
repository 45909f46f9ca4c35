// cache stats|clear: inspect or empty a DiskCache folder (the one `complete --cache-dir` and the server use).
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <limits>

#include "cli_common.h"
#include "commands.h"
#include "llama_crab/cache.h"

namespace llama_crab::cli {

void register_bench_cache_command(CLI::App& app);  // cmd_bench_cache.cpp

namespace {

struct CacheOptions {
    std::string dir;
    bool json_out = false;
};

// "1 entry", "3 entries".
std::string count(size_t n, const char* one, const char* many) { return fmt::format("{} {}", n, n == 1 ? one : many); }

std::string mib(size_t bytes) { return fmt::format("{:.2f} MiB", (double)bytes / (1024.0 * 1024.0)); }

const char* kv_type_name(uint32_t t) { return t == 0 ? "f16" : t == 1 ? "f32" : "unknown"; }

nlohmann::json info_json(const std::string& dir, const DiskCacheInfo& info) {
    nlohmann::json models = nlohmann::json::array();
    for (const auto& m : info.models) {
        models.push_back({{"fingerprint", m.model_fingerprint},
                          {"n_layer", m.layout.n_layer},
                          {"n_head_kv", m.layout.n_head_kv},
                          {"head_dim", m.layout.head_dim},
                          {"kv_type", kv_type_name(m.layout.kv_type)},
                          {"entries", m.entries},
                          {"tokens", m.tokens},
                          {"blocks", m.blocks},
                          {"block_bytes", m.block_bytes},
                          {"raw_bytes", m.raw_bytes}});
    }
    return {{"dir", dir},
            {"entries", info.entries},
            {"blocks", info.blocks},
            {"bytes", info.size_bytes},
            {"block_bytes", info.block_bytes},
            {"capacity_bytes", info.capacity_bytes},
            {"models", models}};
}

void print_info(const std::string& dir, const DiskCacheInfo& info) {
    std::printf("cache folder: %s\n", dir.c_str());
    std::printf("entries:      %s\n", count(info.entries, "entry", "entries").c_str());
    std::printf("blocks:       %s (of %zu tokens each at most; shared prefixes stored once)\n",
                count(info.blocks, "block", "blocks").c_str(), kCacheBlockTokens);
    std::printf("size:         %s counted against the budget (%s of block files, the rest is the index)\n",
                mib(info.size_bytes).c_str(), mib(info.block_bytes).c_str());
    if (info.capacity_bytes > 0) {
        std::printf("capacity:     %s (as last opened), %.1f%% used\n", mib(info.capacity_bytes).c_str(),
                    100.0 * (double)info.size_bytes / (double)info.capacity_bytes);
    } else {
        std::printf("capacity:     not recorded\n");
    }
    for (const auto& m : info.models) {
        const double ratio = m.block_bytes > 0 ? (double)m.raw_bytes / (double)m.block_bytes : 0.0;
        std::printf("model %.12s...  %u layers x %u KV heads x %u dims, %s\n", m.model_fingerprint.c_str(), m.layout.n_layer,
                    m.layout.n_head_kv, m.layout.head_dim, kv_type_name(m.layout.kv_type));
        std::printf("  %s, %s, %s, %s on disk (%s of KV, %.2fx compression)\n", count(m.entries, "entry", "entries").c_str(),
                    count(m.tokens, "token", "tokens").c_str(), count(m.blocks, "block", "blocks").c_str(),
                    mib(m.block_bytes).c_str(), mib(m.raw_bytes).c_str(), ratio);
    }
}

void run_stats(const CacheOptions& o) {
    auto info = DiskCache::inspect(o.dir);
    if (!info.ok() && info.error().code == ErrorCode::kInvalidFormat) {
        return fail(info.error().message + " (if this is a damaged cache index, `llama-crab cache clear` moves it aside)");
    }
    if (!info.ok()) return fail(info.error());
    if (o.json_out) {
        std::printf("%s\n", info_json(o.dir, *info).dump().c_str());
    } else {
        print_info(o.dir, *info);
    }
}

void run_clear(const CacheOptions& o) {
    // inspect first: a folder with no index is no cache (nothing is created), and a readable index gives the
    // budget to reopen it with (so opening does not evict or record a different capacity). A damaged index is
    // no obstacle: open() moves it aside and starts an empty one, so clear always works on a cache folder; open()
    // also refuses a folder that is not a cache.
    auto info = DiskCache::inspect(o.dir);
    if (!info.ok() && !std::filesystem::exists(std::filesystem::path(o.dir) / "index.sqlite")) return fail(info.error());
    const size_t capacity = info.ok() && info->capacity_bytes > 0 ? info->capacity_bytes : std::numeric_limits<int64_t>::max();
    auto cache = DiskCache::open(o.dir, capacity);
    if (!cache.ok()) return fail(cache.error());
    for (const std::string& w : (*cache)->warnings()) std::fprintf(stderr, "warning: %s\n", w.c_str());
    const size_t entries = (*cache)->len(), bytes = (*cache)->size_bytes();
    auto st = (*cache)->clear();
    if (!st.ok()) return fail(st.error());
    if (o.json_out) {
        std::printf("%s\n", nlohmann::json{{"dir", o.dir}, {"removed_entries", entries}, {"removed_bytes", bytes}}.dump().c_str());
    } else {
        std::printf("cleared %s: removed %s, %s\n", o.dir.c_str(), count(entries, "entry", "entries").c_str(), mib(bytes).c_str());
    }
}

}  // namespace

void register_cache_commands(CLI::App& app) {
    auto* cache = app.add_subcommand("cache", "inspect or empty a prefix-cache folder (DiskCache)");
    cache->require_subcommand(1);
    auto o = std::make_shared<CacheOptions>();
    auto* stats = cache->add_subcommand("stats", "entries, bytes, capacity, blocks and a per-model breakdown");
    stats->add_option("--cache-dir", o->dir, "the cache folder")->required();
    stats->add_flag("--json", o->json_out, "print one JSON object");
    stats->callback([o] { run_stats(*o); });
    auto* clear = cache->add_subcommand("clear", "remove every entry (the folder stays a valid, empty cache)");
    clear->add_option("--cache-dir", o->dir, "the cache folder")->required();
    clear->add_flag("--json", o->json_out, "print one JSON object");
    clear->callback([o] { run_clear(*o); });
    register_bench_cache_command(app);
}

}  // namespace llama_crab::cli
