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

TEST(ThreadPool, OversubscribedPoolsNeverRunATaskOfAnotherJob) {
    // Four pools of four threads on a 2-core machine: workers are often descheduled mid-job and wake up
    // during a later job. Every job writes its own array, so a stale claim would show as a wrong count.
    std::atomic<int> errors{0};
    std::vector<std::thread> users;
    for (int u = 0; u < 4; ++u) {
        users.emplace_back([&errors, u] {
            ThreadPool pool(4);
            for (int job = 0; job < 3000; ++job) {
                const int64_t n = 1 + (job * 7 + u) % 23;
                std::vector<std::atomic<int>> hits((size_t)n);
                pool.parallel_for(n, [&hits, n](int64_t t, int) {
                    if (t < 0 || t >= n) return;
                    hits[(size_t)t].fetch_add(1);
                });
                for (auto& h : hits) {
                    if (h.load() != 1) errors.fetch_add(1);
                }
            }
        });
    }
    for (auto& t : users) t.join();
    EXPECT_EQ(errors.load(), 0);
}

}  // namespace
}  // namespace llama_crab
