// A persistent thread pool: workers spin briefly, then sleep, between jobs. One pool per context; threads
// are never spawned per operation. The calling thread takes part in every job.
//
// A job's tasks are claimed one at a time from a single atomic word holding (job number, next task), and the
// caller waits only for the tasks to be done, never for every worker to show up: on a busy machine a worker that
// is not scheduled simply takes no part, instead of stalling each of the hundreds of jobs of a forward pass.
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
    using Fn = std::function<void(int64_t, int)>;
    void worker_loop(int thread_index);
    // Claims and runs tasks of job `job` while any are left; false when the job is closed or finished.
    void run_tasks(uint32_t job, int thread_index);
    void run_job(uint32_t n_tasks, const Fn& fn);

    std::vector<std::thread> workers_;
    std::mutex mutex_;
    std::condition_variable wake_;
    // (job number << 32) | next task. kClosed as the task part: the job is being set up, nothing to claim.
    // A claim is a compare-exchange on this word, so it can never take a task of a job it did not read fn_ for.
    std::atomic<uint64_t> work_{0};
    std::atomic<const Fn*> fn_{nullptr};
    std::atomic<uint32_t> n_tasks_{0};
    std::atomic<uint32_t> n_done_{0};
    std::atomic<int> n_sleeping_{0};
    std::atomic<bool> stop_{false};
    uint32_t job_ = 0;  // the caller's job counter
};

}  // namespace llama_crab
