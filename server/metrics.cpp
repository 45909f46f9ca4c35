#include "metrics.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>

namespace llama_crab::server {
namespace {

void header(std::string& out, const std::string& name, const char* type, const std::string& help) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

void scalar(std::string& out, const std::string& name, const char* type, const std::string& help, double value) {
    header(out, name, type, help);
    out += fmt::format("{} {}\n", name, value);
}

}  // namespace

Histogram::Histogram(std::vector<double> upper_bounds) : bounds_(std::move(upper_bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double value) {
    std::lock_guard<std::mutex> lock(mutex_);
    size_t i = 0;
    while (i < bounds_.size() && value > bounds_[i]) ++i;
    ++counts_[i];
    sum_ += value;
    ++count_;
}

void Histogram::render(std::string& out, const std::string& name, const std::string& help) const {
    std::lock_guard<std::mutex> lock(mutex_);
    header(out, name, "histogram", help);
    uint64_t cumulative = 0;
    for (size_t i = 0; i < bounds_.size(); ++i) {
        cumulative += counts_[i];
        out += fmt::format("{}_bucket{{le=\"{}\"}} {}\n", name, bounds_[i], cumulative);
    }
    cumulative += counts_.back();
    out += fmt::format("{}_bucket{{le=\"+Inf\"}} {}\n{}_sum {}\n{}_count {}\n", name, cumulative, name, sum_, name, count_);
}

Metrics::Metrics()
    : time_to_first_token({0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}),
      inter_token({0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1}),
      step_slots({1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64}) {}

void Metrics::count_http_status(int status) {
    std::lock_guard<std::mutex> lock(http_mutex_);
    ++http_status_[status];
}

std::string Metrics::render(const std::vector<CacheTierStats>& caches) const {
    std::string out;
    const std::string p = "llamacrab_";
    header(out, p + "requests_total", "counter", "Generation requests accepted, by endpoint.");
    out += fmt::format("{}requests_total{{endpoint=\"completions\"}} {}\n", p, requests_completion.load());
    out += fmt::format("{}requests_total{{endpoint=\"chat_completions\"}} {}\n", p, requests_chat.load());
    scalar(out, p + "requests_cancelled_total", "counter", "Requests whose client disconnected before the end.", (double)requests_cancelled.load());
    scalar(out, p + "requests_rejected_total", "counter", "Generation requests answered with an error.", (double)requests_rejected.load());
    {
        std::lock_guard<std::mutex> lock(http_mutex_);
        header(out, p + "http_responses_total", "counter", "HTTP responses by status code.");
        for (const auto& [status, n] : http_status_) out += fmt::format("{}http_responses_total{{status=\"{}\"}} {}\n", p, status, n);
    }
    scalar(out, p + "prompt_tokens_total", "counter", "Prompt tokens of accepted requests.", (double)prompt_tokens.load());
    scalar(out, p + "prompt_tokens_cached_total", "counter", "Prompt tokens reused from a slot or the prefix cache.", (double)prompt_tokens_cached.load());
    scalar(out, p + "generated_tokens_total", "counter", "Generated tokens.", (double)generated_tokens.load());
    scalar(out, p + "prefill_seconds_total", "counter", "Decode time spent on prompt tokens (a step's time is split by its token mix).",
           (double)prefill_us.load() / 1e6);
    scalar(out, p + "decode_seconds_total", "counter", "Decode time spent on generated tokens.", (double)decode_us.load() / 1e6);
    scalar(out, p + "steps_total", "counter", "Worker steps (one batched decode each).", (double)steps.load());
    scalar(out, p + "slots_busy", "gauge", "Slots running a request.", (double)slots_busy.load());
    scalar(out, p + "slots_total", "gauge", "Slots.", (double)slots_total.load());
    scalar(out, p + "queue_depth", "gauge", "Choices waiting for a slot.", (double)queue_depth.load());
    scalar(out, p + "http_connections", "gauge", "Open client connections, idle ones included.", (double)http_connections.load());
    scalar(out, p + "http_requests_waiting", "gauge", "Complete requests waiting for a handler thread.", (double)http_waiting.load());
    scalar(out, p + "kv_cells_used", "gauge", "KV cache cells in use.", (double)kv_cells_used.load());
    scalar(out, p + "kv_cells_total", "gauge", "KV cache cells.", (double)kv_cells_total.load());
    scalar(out, p + "cache_stores_dropped_total", "counter", "Slot states not stored because the store queue was full.",
           (double)cache_stores_dropped.load());

    struct CacheMetric {
        const char* name;
        const char* type;
        const char* help;
        double (*get)(const CacheTierStats&);
    };
    const CacheMetric cache_metrics[] = {
        {"cache_hits_total", "counter", "Prefix-cache lookups that found a prefix.", [](const CacheTierStats& c) { return (double)c.stats.hits; }},
        {"cache_misses_total", "counter", "Prefix-cache lookups that found nothing.", [](const CacheTierStats& c) { return (double)c.stats.misses; }},
        {"cache_evictions_total", "counter", "Prefix-cache entries evicted to stay in budget.", [](const CacheTierStats& c) { return (double)c.stats.evictions; }},
        {"cache_hit_tokens_total", "counter", "Tokens returned by prefix-cache hits.", [](const CacheTierStats& c) { return (double)c.stats.hit_tokens; }},
        {"cache_rejected_total", "counter", "Stored blocks refused because they failed verification (damaged or forged).", [](const CacheTierStats& c) { return (double)c.stats.rejected; }},
        {"cache_bytes", "gauge", "Bytes held by the prefix cache.", [](const CacheTierStats& c) { return (double)c.size_bytes; }},
        {"cache_capacity_bytes", "gauge", "Byte budget of the prefix cache.", [](const CacheTierStats& c) { return (double)c.capacity_bytes; }},
        {"cache_entries", "gauge", "Entries in the prefix cache.", [](const CacheTierStats& c) { return (double)c.entries; }},
    };
    for (const auto& m : cache_metrics) {
        if (caches.empty()) break;
        header(out, p + m.name, m.type, m.help);
        for (const auto& c : caches) out += fmt::format("{}{}{{tier=\"{}\"}} {}\n", p, m.name, c.tier, m.get(c));
    }
    time_to_first_token.render(out, p + "time_to_first_token_seconds", "Time from request arrival to its first generated token.");
    inter_token.render(out, p + "inter_token_seconds", "Time between consecutive generated tokens of one choice.");
    step_slots.render(out, p + "step_slots", "Slots whose tokens were decoded together in one step (continuous batching).");
    scalar(out, "process_resident_memory_bytes", "gauge", "Resident memory of the server process.", (double)resident_memory_bytes());
    return out;
}

uint64_t resident_memory_bytes() {
    FILE* f = std::fopen("/proc/self/statm", "r");
    if (!f) return 0;
    unsigned long long size = 0, resident = 0;
    const int n = std::fscanf(f, "%llu %llu", &size, &resident);
    std::fclose(f);
    if (n != 2) return 0;
    return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

}  // namespace llama_crab::server
