// Prefix caches: store the KV state of token sequences, find the longest cached prefix of a new prompt.
//
// Keys are token ids plus the model fingerprint and KV layout, never raw text: a state of another model (or
// another KV dtype) can never match. Both caches cut a state into blocks of kCacheBlockTokens tokens; block i of
// a state is keyed by a 128-bit XXH3 hash chained over (fingerprint + layout, key of block i-1, tokens of block
// i). A lookup walks the query's chain block by block, so it costs O(query length) whatever the number of
// entries; shared prefixes are stored once and reference-counted.
//
// Every prefix of a stored state is itself a valid state (attention is causal), so lookup returns the longest
// common prefix of the query with anything stored, down to the token, not only whole stored entries.
//
// Stored states must have positions 0..n-1 (a prompt from the start of a sequence); store() refuses others.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "llama_crab/batch.h"
#include "llama_crab/error.h"
#include "llama_crab/session.h"

namespace llama_crab {

inline constexpr size_t kCacheBlockTokens = 64;

// Counters since the cache object was created (a DiskCache counts this process's operations).
struct CacheStats {
    uint64_t hits = 0;
    uint64_t misses = 0;
    uint64_t evictions = 0;   // entries evicted to stay within the budget
    uint64_t stores = 0;      // successful store() calls (including ones that only refreshed an entry)
    uint64_t bytes_in = 0;    // state bytes (KV + tokens) given to successful stores
    uint64_t bytes_out = 0;   // state bytes (KV + tokens) returned by hits
    uint64_t hit_tokens = 0;  // tokens returned by hits
    // Stored blocks refused because they failed verification (a damaged or forged index row or block file);
    // each one makes that lookup shorter or a miss, never a KV state for other tokens.
    uint64_t rejected = 0;
};

class Cache {
public:
    virtual ~Cache() = default;

    // Stores entry.state (the first entry.n_past tokens of it; n_past <= 0 means all) under `tokens`, which must
    // begin with those state tokens. Storing an existing sequence refreshes it. Evicts least-recently-used entries
    // to make room; an entry that cannot fit in the whole capacity is refused (kInvalidArgument).
    virtual Status store(const std::vector<Token>& tokens, const CacheEntry& entry) = 0;

    // The longest stored prefix of `tokens` for this model, any KV layout: n_past is the number of tokens it
    // covers and state holds exactly those tokens. nullopt when not even one token matches.
    virtual std::optional<CacheEntry> lookup(const std::vector<Token>& tokens, const std::string& model_fingerprint) = 0;
    // The same, restricted to states with this KV layout (a context can only load its own layout).
    virtual std::optional<CacheEntry> lookup(const std::vector<Token>& tokens, const std::string& model_fingerprint,
                                             const KvLayout& layout) = 0;

    virtual size_t size_bytes() const = 0;     // bytes held, counted against the capacity
    virtual size_t capacity_bytes() const = 0;
    virtual size_t len() const = 0;            // number of entries
    virtual Status clear() = 0;
    virtual CacheStats stats() const = 0;
};

// In-memory cache. Thread-safe. Counts every byte: block KV and token bytes plus a documented estimate of the
// bookkeeping around them (see ram_cache.cpp); size_bytes() never exceeds the capacity.
class RamCache : public Cache {
public:
    explicit RamCache(size_t capacity_bytes);
    ~RamCache() override;
    RamCache(const RamCache&) = delete;
    RamCache& operator=(const RamCache&) = delete;

    Status store(const std::vector<Token>& tokens, const CacheEntry& entry) override;
    std::optional<CacheEntry> lookup(const std::vector<Token>& tokens, const std::string& model_fingerprint) override;
    std::optional<CacheEntry> lookup(const std::vector<Token>& tokens, const std::string& model_fingerprint,
                                     const KvLayout& layout) override;
    size_t size_bytes() const override;
    size_t capacity_bytes() const override;
    size_t len() const override;
    Status clear() override;
    CacheStats stats() const override;

    size_t n_blocks() const;  // distinct blocks held (shared ones once)

private:
    std::optional<CacheEntry> lookup_impl(const std::vector<Token>& tokens, const std::string& model_fingerprint,
                                          const KvLayout* layout);
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

struct DiskCacheOptions {
    int zstd_level = 1;
    // fsync block files and their folder before the index row that names them commits (power-loss safety).
    // Crash (SIGKILL) safety does not depend on it.
    bool fsync = true;
    int busy_timeout_ms = 30000;
};

// One model's share of a cache folder (DiskCache::inspect). A block belongs to exactly one model + layout.
struct DiskCacheModelInfo {
    std::string model_fingerprint;
    KvLayout layout;
    size_t entries = 0;
    size_t tokens = 0;       // tokens over its entries (a shared prefix counts once per entry)
    size_t blocks = 0;       // distinct blocks (a shared prefix counts once)
    size_t block_bytes = 0;  // compressed bytes of those block files
    size_t raw_bytes = 0;    // uncompressed KV bytes of those blocks
};

// What a cache folder holds.
struct DiskCacheInfo {
    size_t entries = 0;
    size_t blocks = 0;
    size_t size_bytes = 0;      // what the budget counts: block files + index estimate (DiskCache::size_bytes())
    size_t block_bytes = 0;     // block files only
    size_t capacity_bytes = 0;  // the capacity the folder was last opened with; 0 when never recorded
    std::vector<DiskCacheModelInfo> models;  // largest first
};

// Persistent cache in a folder: CACHEDIR.TAG (the marker that makes it a cache folder), index.sqlite (the source
// of truth) and blocks/ (zstd-compressed block files). Safe for several threads and processes sharing the
// folder, and for processes killed mid-store. It only ever creates and removes files of its own name patterns
// and never follows a symlink inside the folder (docs/caching.md, "The cache folder").
class DiskCache : public Cache {
public:
    // Opens the folder, evicts down to capacity_bytes and records it as the folder's capacity. A missing or empty
    // folder becomes a cache folder; a non-empty folder without our marker is refused. Errors:
    //   kInvalidArgument  the folder holds other files (or blocks/, tmp/ are symlinks): refused to protect them
    //   kIo               the folder cannot be created or written (read-only file system, permissions): callers
    //                     may go on without the disk cache, reporting the message (one line)
    //   kInvalidFormat    the index is damaged while another process has the folder open
    //   kUnsupported      the index was written by a newer build
    // A damaged index is otherwise moved aside and rebuilt empty: the open succeeds and warnings() says so.
    static Result<std::shared_ptr<DiskCache>> open(const std::string& dir, size_t capacity_bytes,
                                                   const DiskCacheOptions& options = {});
    // Reads what an existing folder holds without changing anything (no eviction, no gc, nothing created).
    // kIo when there is no cache there, kInvalidFormat / kUnsupported for a foreign or newer index.
    static Result<DiskCacheInfo> inspect(const std::string& dir);
    ~DiskCache() override;
    DiskCache(const DiskCache&) = delete;
    DiskCache& operator=(const DiskCache&) = delete;

    Status store(const std::vector<Token>& tokens, const CacheEntry& entry) override;
    std::optional<CacheEntry> lookup(const std::vector<Token>& tokens, const std::string& model_fingerprint) override;
    std::optional<CacheEntry> lookup(const std::vector<Token>& tokens, const std::string& model_fingerprint,
                                     const KvLayout& layout) override;
    // Block file bytes on disk plus an estimate of the index rows (see disk_cache.cpp).
    size_t size_bytes() const override;
    size_t capacity_bytes() const override;
    size_t len() const override;
    Status clear() override;
    CacheStats stats() const override;

    size_t n_blocks() const;
    const std::string& dir() const;
    // What open() repaired and the caller should tell the user (one line each), e.g. a damaged index moved aside.
    const std::vector<std::string>& warnings() const;
    // Removes block files no committed row names and temporary files of dead writers. open() runs it.
    Status gc();
    // Full check, under the write lock: every entry's block chain is complete, refcounts equal references, no
    // orphan rows or files, every block file exists and verifies, the stored totals equal the sums.
    Status check_consistency();

private:
    std::optional<CacheEntry> lookup_impl(const std::vector<Token>& tokens, const std::string& model_fingerprint,
                                          const KvLayout* layout);
    struct Impl;
    explicit DiskCache(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

// How the CLI and the server open --cache-dir: a folder that cannot be created or written (kIo: a read-only file
// system, permissions) is one line to `warn` and nullptr (run without the disk tier); open()'s own warnings (a
// damaged index moved aside) go to `warn` too. Any other failure is returned: a folder holding other files is
// refused rather than used, and a newer or damaged-and-in-use index is an error the user must see.
Result<std::shared_ptr<DiskCache>> open_disk_cache_tier(const std::string& dir, size_t capacity_bytes,
                                                        const std::function<void(const std::string&)>& warn,
                                                        const DiskCacheOptions& options = {});

}  // namespace llama_crab
