#include "cache_writer.h"

namespace llama_crab::server {

CacheWriter::CacheWriter(std::vector<std::shared_ptr<Cache>> caches, size_t max_pending_bytes)
    : caches_(std::move(caches)), max_pending_bytes_(max_pending_bytes), thread_([this] { run(); }) {}

CacheWriter::~CacheWriter() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
}

bool CacheWriter::enqueue(std::vector<Token> tokens, CacheEntry entry) {
    const size_t bytes = entry.state.kv.size();
    {
        std::lock_guard<std::mutex> lock(mutex_);
        if (pending_bytes_ + bytes > max_pending_bytes_) return false;
        pending_bytes_ += bytes;
        queue_.emplace_back(std::move(tokens), std::move(entry));
    }
    cv_.notify_all();
    return true;
}

void CacheWriter::flush() {
    std::unique_lock<std::mutex> lock(mutex_);
    cv_.wait(lock, [&] { return queue_.empty() && !busy_; });
}

void CacheWriter::run() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
        cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
        // Pending stores are finished before stopping: they are what a restarted server would hit.
        if (queue_.empty()) return;
        auto item = std::move(queue_.front());
        queue_.pop_front();
        busy_ = true;
        lock.unlock();
        for (const auto& cache : caches_) (void)cache->store(item.first, item.second);  // a failed store only costs a hit
        lock.lock();
        pending_bytes_ -= item.second.state.kv.size();
        busy_ = false;
        cv_.notify_all();
    }
}

}  // namespace llama_crab::server
