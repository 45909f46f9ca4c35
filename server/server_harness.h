// Test helpers: start the real `llama-crab serve` on 127.0.0.1 (a free port), talk to it over HTTP, read SSE
// streams, stop it. Every wait is bounded. (Implemented in server_harness_test.cpp, linked into server_tests.)
#pragma once

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>
#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace llama_crab::testing {

using nlohmann::json;

std::string stories_model();  // ../shared/testdata/models/stories260K.gguf

class ServerProcess {
public:
    // Starts `llama-crab serve --model <model> --port 0 --host 127.0.0.1 <args...>` and waits until /health says
    // ok. Fails the current test (and returns null) when it does not come up in time.
    static std::unique_ptr<ServerProcess> start(const std::string& model, const std::vector<std::string>& args = {},
                                                std::chrono::seconds timeout = std::chrono::seconds(120));
    // The same, but only waits for the port to be printed (the model may still be loading).
    static std::unique_ptr<ServerProcess> launch(const std::string& model, const std::vector<std::string>& args = {},
                                                 std::chrono::seconds timeout = std::chrono::seconds(60));
    ~ServerProcess();

    int port() const { return port_; }
    pid_t pid() const { return pid_; }
    // SIGTERM, then waits (SIGKILL after 20 s). Returns the exit status (-1 when it did not exit by itself).
    int stop();
    // Waits for the process to exit by itself; its exit status, or -2 on timeout.
    int wait_exit(std::chrono::seconds timeout);
    bool running();
    std::string log() const;  // what the server wrote to stderr
    uint64_t rss_bytes() const;  // VmRSS from /proc
    double cpu_seconds() const;  // user + system CPU time of the process so far

    std::unique_ptr<httplib::Client> client(std::chrono::seconds read_timeout = std::chrono::seconds(120)) const;

private:
    ServerProcess() = default;
    pid_t pid_ = -1;  // negative once reaped
    int exit_status_ = -1;
    int port_ = 0;
    std::string log_path_;
};

struct HttpResult {
    int status = 0;  // 0: no response
    json body;       // parsed JSON (null when the body is not JSON)
    std::string raw;
};

HttpResult http_get(int port, const std::string& path, const httplib::Headers& headers = {});
HttpResult http_post(int port, const std::string& path, const std::string& body, const httplib::Headers& headers = {});
inline HttpResult http_post(int port, const std::string& path, const json& body, const httplib::Headers& headers = {}) {
    return http_post(port, path, body.dump(), headers);
}

struct StreamResult {
    int status = 0;
    std::vector<json> chunks;  // every `data:` payload but [DONE], parsed
    bool done = false;         // saw `data: [DONE]`
    std::string raw;
};

// POSTs with "stream": true and reads the SSE events as they come. on_chunk returning false disconnects.
StreamResult stream_post(int port, const std::string& path, const json& body,
                         const std::function<bool(const json&)>& on_chunk = nullptr, const httplib::Headers& headers = {});

// The text of a streamed completion or chat completion, choice by choice.
std::vector<std::string> stream_texts(const StreamResult& r);
// A completion's or chat completion's text (non-streamed) for choice i.
std::string response_text(const json& body, size_t i = 0);

// Prometheus text: the value of one sample ("name" or "name{labels}"), or -1 when absent.
double metric_value(const std::string& metrics_text, const std::string& sample);

// Polls `predicate` every 20 ms until it holds or the timeout passes.
bool wait_until(const std::function<bool()>& predicate, std::chrono::milliseconds timeout);

// A test suite sharing one server on stories260K, started before its first test and stopped after its last.
// Derive as `class MyTest : public SharedServerTest<MyTest>` with `static std::vector<std::string> server_args()`.
template <typename Suite>
class SharedServerTest : public ::testing::Test {
protected:
    static void SetUpTestSuite() { server_ = ServerProcess::start(stories_model(), Suite::server_args()).release(); }
    static void TearDownTestSuite() {
        delete server_;
        server_ = nullptr;
    }
    void SetUp() override { ASSERT_NE(server_, nullptr); }
    int port() const { return server_->port(); }
    static inline ServerProcess* server_ = nullptr;
};

}  // namespace llama_crab::testing
