// Runs a piece of a test in a child process with a time limit, so a call that blocks forever (a FIFO opened
// for reading, a lock never released) fails the test instead of stalling the whole suite.
#pragma once

#include <chrono>
#include <csignal>
#include <functional>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace llama_crab::testing {

// fn's return value is the child's exit status (0-255). Returns that status, -1 when the child was still
// running after `limit` (it is killed), -2 when fork failed, -3 when the child died of a signal. The limit is
// generous on purpose: it separates "returned" from "blocked forever", it does not measure speed.
inline int run_bounded(const std::function<int()>& fn, std::chrono::seconds limit = std::chrono::seconds(60)) {
    const pid_t pid = ::fork();
    if (pid == 0) _exit(fn());
    if (pid < 0) return -2;
    const auto deadline = std::chrono::steady_clock::now() + limit;
    int status = 0;
    while (::waitpid(pid, &status, WNOHANG) == 0) {
        if (std::chrono::steady_clock::now() > deadline) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, &status, 0);
            return -1;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -3;
}

}  // namespace llama_crab::testing
