// Stores slot states into the prefix caches on a background thread, so the worker never waits for hashing,
// compression or fsync. The queue is bounded by bytes: when it is full, a store is dropped (a lost future hit,
// never a stall).
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "llama_crab/cache.h"

namespace llama_crab::server {

class CacheWriter {
public:
    CacheWriter(std::vector<std::shared_ptr<Cache>> caches, size_t max_pending_bytes);
    ~CacheWriter();
    CacheWriter(const CacheWriter&) = delete;
    CacheWriter& operator=(const CacheWriter&) = delete;

    // False when the queue is full and the entry was dropped.
    bool enqueue(std::vector<Token> tokens, CacheEntry entry);
    // Waits until every queued store is done.
    void flush();

private:
    void run();

    std::vector<std::shared_ptr<Cache>> caches_;
    size_t max_pending_bytes_;
    std::mutex mutex_;
    std::condition_variable cv_;
    std::deque<std::pair<std::vector<Token>, CacheEntry>> queue_;
    size_t pending_bytes_ = 0;
    bool busy_ = false;
    bool stop_ = false;
    std::thread thread_;
};

}  // namespace llama_crab::server
