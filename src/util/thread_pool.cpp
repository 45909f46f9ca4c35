#include "util/thread_pool.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define LC_CPU_RELAX() _mm_pause()
#else
#define LC_CPU_RELAX() ((void)0)
#endif

namespace llama_crab {
namespace {
// How long an idle worker spins before sleeping: long enough to cover the gaps between the operations
// of one forward pass, short enough not to burn a core between requests.
constexpr int kSpinIterations = 1 << 15;
// After this many pause-spins a waiter yields its core on every iteration: when the machine is
// oversubscribed, the thread it waits for may need that core to make progress.
constexpr int kPauseSpins = 1 << 10;

void relax(int spins) {
    if (spins < kPauseSpins) {
        LC_CPU_RELAX();
    } else {
        std::this_thread::yield();
    }
}
}  // namespace

ThreadPool::ThreadPool(int n_threads) {
    if (n_threads < 1) n_threads = 1;
    workers_.reserve((size_t)n_threads - 1);
    for (int i = 1; i < n_threads; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stop_.store(true, std::memory_order_release);
        generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    for (auto& t : workers_) t.join();
}

void ThreadPool::run_tasks(int thread_index) {
    const auto& fn = *fn_;
    for (;;) {
        const int64_t task = next_task_.fetch_add(1, std::memory_order_relaxed);
        if (task >= n_tasks_) break;
        fn(task, thread_index);
    }
}

void ThreadPool::worker_loop(int thread_index) {
    uint64_t seen = 0;
    for (;;) {
        int spins = 0;
        while (generation_.load(std::memory_order_acquire) == seen && spins < kSpinIterations) relax(spins++);
        if (generation_.load(std::memory_order_acquire) == seen) {
            std::unique_lock<std::mutex> lock(mutex_);
            wake_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
        }
        seen = generation_.load(std::memory_order_acquire);
        if (stop_.load(std::memory_order_acquire)) return;
        run_tasks(thread_index);
        n_finished_.fetch_add(1, std::memory_order_acq_rel);
    }
}

void ThreadPool::parallel_for(int64_t n_tasks, const std::function<void(int64_t, int)>& fn) {
    if (n_tasks <= 0) return;
    if (workers_.empty() || n_tasks == 1) {
        for (int64_t t = 0; t < n_tasks; ++t) fn(t, 0);
        return;
    }
    fn_ = &fn;
    n_tasks_ = n_tasks;
    next_task_.store(0, std::memory_order_relaxed);
    n_finished_.store(0, std::memory_order_relaxed);
    {
        std::lock_guard<std::mutex> lock(mutex_);
        generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    run_tasks(0);
    // Wait for every worker to leave run_tasks: they read fn_ and n_tasks_ until then.
    const int n_workers = (int)workers_.size();
    for (int spins = 0; n_finished_.load(std::memory_order_acquire) < n_workers; ++spins) relax(spins);
}

}  // namespace llama_crab
