#include "util/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

namespace llama_crab {
namespace {

TEST(ThreadPool, RunsEveryTaskExactlyOnce) {
    for (int n_threads : {1, 2, 4}) {
        ThreadPool pool(n_threads);
        EXPECT_EQ(pool.size(), n_threads);
        for (int64_t n_tasks : {0, 1, 2, 7, 1000}) {
            std::vector<std::atomic<int>> hits((size_t)n_tasks);
            std::atomic<int> bad_thread{0};
            pool.parallel_for(n_tasks, [&](int64_t t, int th) {
                hits[(size_t)t].fetch_add(1);
                if (th < 0 || th >= n_threads) bad_thread.fetch_add(1);
            });
            for (auto& h : hits) EXPECT_EQ(h.load(), 1);
            EXPECT_EQ(bad_thread.load(), 0);
        }
    }
}

TEST(ThreadPool, ManyBackToBackJobs) {
    ThreadPool pool(3);
    std::atomic<int64_t> sum{0};
    for (int job = 0; job < 2000; ++job) {
        pool.parallel_for(8, [&](int64_t t, int) { sum.fetch_add(t); });
    }
    EXPECT_EQ(sum.load(), 2000 * 28);
}

TEST(ThreadPool, TasksRunConcurrently) {
    // Two tasks that each wait for the other to start: only possible when two threads run them.
    ThreadPool pool(2);
    std::atomic<int> started{0};
    std::atomic<int> timed_out{0};
    pool.parallel_for(2, [&](int64_t, int) {
        started.fetch_add(1);
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
        while (started.load() < 2) {
            if (std::chrono::steady_clock::now() > deadline) {
                timed_out.fetch_add(1);
                return;
            }
            std::this_thread::yield();
        }
    });
    EXPECT_EQ(timed_out.load(), 0);
}

}  // namespace
}  // namespace llama_crab
