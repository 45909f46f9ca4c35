// Server counters and histograms, rendered in the Prometheus text format by GET /metrics.
// Counters are atomics updated by the worker and the handlers; histograms take a short lock.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "llama_crab/cache.h"

namespace llama_crab::server {

class Histogram {
public:
    explicit Histogram(std::vector<double> upper_bounds);
    void observe(double value);
    // "<name>_bucket{le=...} n" lines (cumulative), then _sum and _count.
    void render(std::string& out, const std::string& name, const std::string& help) const;

private:
    std::vector<double> bounds_;
    mutable std::mutex mutex_;
    std::vector<uint64_t> counts_;  // one per bound, plus +Inf
    double sum_ = 0;
    uint64_t count_ = 0;
};

struct CacheTierStats {
    std::string tier;  // "ram" or "disk"
    CacheStats stats;
    size_t size_bytes = 0;
    size_t capacity_bytes = 0;
    size_t entries = 0;
};

struct Metrics {
    Metrics();

    std::atomic<uint64_t> requests_completion{0};
    std::atomic<uint64_t> requests_chat{0};
    std::atomic<uint64_t> requests_cancelled{0};   // client went away before the end
    std::atomic<uint64_t> requests_rejected{0};    // 4xx/5xx answers from the generation endpoints
    std::atomic<uint64_t> prompt_tokens{0};
    std::atomic<uint64_t> prompt_tokens_cached{0};
    std::atomic<uint64_t> generated_tokens{0};
    std::atomic<uint64_t> prefill_us{0};
    std::atomic<uint64_t> decode_us{0};
    std::atomic<uint64_t> steps{0};
    std::atomic<uint64_t> cache_stores_dropped{0};  // the background store queue was full
    std::atomic<int64_t> slots_busy{0};
    std::atomic<int64_t> slots_total{0};
    std::atomic<int64_t> queue_depth{0};           // jobs waiting for a slot
    std::atomic<int64_t> http_connections{0};      // open client connections, idle ones included
    std::atomic<int64_t> http_waiting{0};          // complete requests waiting for a handler thread
    std::atomic<int64_t> kv_cells_used{0};
    std::atomic<int64_t> kv_cells_total{0};
    Histogram time_to_first_token;
    Histogram inter_token;
    Histogram step_slots;  // slots with tokens in each step's batch

    void count_http_status(int status);
    std::string render(const std::vector<CacheTierStats>& caches) const;

private:
    mutable std::mutex http_mutex_;
    std::map<int, uint64_t> http_status_;
};

// Resident set size of this process in bytes (from /proc/self/statm; 0 when unavailable).
uint64_t resident_memory_bytes();

}  // namespace llama_crab::server
