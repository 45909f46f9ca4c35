// A persistent thread pool: workers spin briefly, then sleep, between jobs. One pool per context; threads
// are never spawned per operation. The calling thread takes part in every job.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace llama_crab {

class ThreadPool {
public:
    // n_threads counts the caller: n_threads - 1 workers are started.
    explicit ThreadPool(int n_threads);
    ~ThreadPool();
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;

    int size() const { return (int)workers_.size() + 1; }

    // Calls fn(task, thread) for every task in [0, n_tasks); tasks are handed out through an atomic counter.
    // Returns when every task has finished. thread is in [0, size()): 0 is the caller.
    // Not re-entrant: fn must not call parallel_for on the same pool.
    void parallel_for(int64_t n_tasks, const std::function<void(int64_t task, int thread)>& fn);

private:
    void worker_loop(int thread_index);
    void run_tasks(int thread_index);

    std::vector<std::thread> workers_;
    std::mutex mutex_;
    std::condition_variable wake_;
    std::atomic<uint64_t> generation_{0};
    std::atomic<int64_t> next_task_{0};
    std::atomic<int> n_finished_{0};
    int64_t n_tasks_ = 0;
    const std::function<void(int64_t, int)>* fn_ = nullptr;
    std::atomic<bool> stop_{false};
};

}  // namespace llama_crab
