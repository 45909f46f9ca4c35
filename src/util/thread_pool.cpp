#include "util/thread_pool.h"

#include <algorithm>

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
constexpr uint32_t kClosed = 0xFFFFFFFFu;
constexpr uint32_t kMaxTasksPerJob = kClosed - 1;

void relax(int spins) {
    if (spins < kPauseSpins) {
        LC_CPU_RELAX();
    } else {
        std::this_thread::yield();
    }
}

uint32_t job_of(uint64_t w) { return (uint32_t)(w >> 32); }
uint32_t task_of(uint64_t w) { return (uint32_t)w; }
uint64_t make_work(uint32_t job, uint32_t task) { return ((uint64_t)job << 32) | task; }
}  // namespace

ThreadPool::ThreadPool(int n_threads) {
    if (n_threads < 1) n_threads = 1;
    work_.store(make_work(0, kClosed));
    workers_.reserve((size_t)n_threads - 1);
    for (int i = 1; i < n_threads; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
    stop_.store(true);
    {
        std::lock_guard<std::mutex> lock(mutex_);
        work_.store(make_work(job_ + 1, kClosed));
    }
    wake_.notify_all();
    for (auto& t : workers_) t.join();
}

void ThreadPool::run_tasks(uint32_t job, int thread_index) {
    // Every access here is sequentially consistent: a claim that succeeds proves the word still named this job
    // after fn_ and n_tasks_ were read, and the caller only replaces them after closing the word (see run_job).
    for (;;) {
        uint64_t w = work_.load();
        if (job_of(w) != job || task_of(w) == kClosed) return;
        const Fn* fn = fn_.load();
        const uint32_t n = n_tasks_.load();
        if (task_of(w) >= n) return;
        if (!work_.compare_exchange_strong(w, w + 1)) continue;
        (*fn)((int64_t)task_of(w), thread_index);
        n_done_.fetch_add(1);
    }
}

void ThreadPool::worker_loop(int thread_index) {
    uint32_t seen = 0;  // the last job this worker looked at
    auto has_news = [&] {
        const uint64_t w = work_.load();
        return job_of(w) != seen && task_of(w) != kClosed;
    };
    for (;;) {
        int spins = 0;
        while (!has_news() && !stop_.load() && spins < kSpinIterations) relax(spins++);
        if (!has_news() && !stop_.load()) {
            std::unique_lock<std::mutex> lock(mutex_);
            n_sleeping_.fetch_add(1);
            wake_.wait(lock, [&] { return has_news() || stop_.load(); });
            n_sleeping_.fetch_sub(1);
        }
        if (stop_.load()) return;
        seen = job_of(work_.load());
        run_tasks(seen, thread_index);
    }
}

void ThreadPool::run_job(uint32_t n_tasks, const Fn& fn) {
    const uint32_t job = ++job_;
    // Close the word before touching fn_ and n_tasks_: no claim can succeed while they change.
    work_.store(make_work(job, kClosed));
    fn_.store(&fn);
    n_tasks_.store(n_tasks);
    n_done_.store(0);
    work_.store(make_work(job, 0));
    if (n_sleeping_.load() > 0) {
        // Taking the lock orders this wake-up after a worker's last check of its wait predicate.
        { std::lock_guard<std::mutex> lock(mutex_); }
        wake_.notify_all();
    }
    run_tasks(job, 0);
    for (int spins = 0; n_done_.load() < n_tasks; ++spins) relax(spins);
}

void ThreadPool::parallel_for(int64_t n_tasks, const std::function<void(int64_t, int)>& fn) {
    if (n_tasks <= 0) return;
    if (workers_.empty() || n_tasks == 1) {
        for (int64_t t = 0; t < n_tasks; ++t) fn(t, 0);
        return;
    }
    // Task numbers must fit the low half of the work word: a huge range runs as several jobs.
    for (int64_t base = 0; base < n_tasks; base += kMaxTasksPerJob) {
        const uint32_t n = (uint32_t)std::min<int64_t>(kMaxTasksPerJob, n_tasks - base);
        if (base == 0) {
            run_job(n, fn);
        } else {
            const Fn shifted = [&](int64_t t, int thread) { fn(base + t, thread); };
            run_job(n, shifted);
        }
    }
}

}  // namespace llama_crab
