// The HTTP layer under hostile load (issue 9, items 8-11), with real sockets on loopback against the real server:
// chunked bodies far above --max-body-bytes, a burst of simultaneous connections, idle and slow connections,
// connection caps, and the memory left behind by a burst of large requests. Every loop is bounded in count and time.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <thread>

#include "server_harness.h"
#include "support/testdata.h"

namespace llama_crab::testing {
namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

// A non-blocking TCP socket connecting to 127.0.0.1:port (the connect may still be in progress); -1 on failure.
int connect_loopback(int port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, (sockaddr*)&addr, sizeof addr) != 0 && errno != EINPROGRESS) {
        ::close(fd);
        return -1;
    }
    return fd;
}

// Sends all of `data` before the deadline; false when the peer closed or reset, or time ran out.
bool send_all(int fd, const std::string& data, Clock::time_point deadline) {
    size_t sent = 0;
    while (sent < data.size() && Clock::now() < deadline) {
        pollfd p{fd, POLLOUT, 0};
        if (::poll(&p, 1, 50) <= 0) continue;
        const ssize_t n = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        if (n <= 0) return false;
        sent += (size_t)n;
    }
    return sent == data.size();
}

struct RawResponse {
    std::string text;   // everything read
    bool eof = false;   // the server closed the connection
    int error = 0;      // errno of a failed read (ECONNRESET: the connection was reset)
    int status() const { return text.rfind("HTTP/1.", 0) == 0 && text.size() >= 12 ? std::atoi(text.c_str() + 9) : 0; }
};

// Reads until the server closes the connection (requests say Connection: close), or the timeout.
RawResponse read_until_close(int fd, std::chrono::milliseconds timeout) {
    RawResponse r;
    const auto deadline = Clock::now() + timeout;
    char buf[65536];
    while (Clock::now() < deadline) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 50) <= 0) continue;
        const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        if (n < 0) {
            r.error = errno;
            return r;
        }
        if (n == 0) {
            r.eof = true;
            return r;
        }
        r.text.append(buf, (size_t)n);
    }
    return r;
}

uint64_t proc_status_kb(pid_t pid, const std::string& key) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind(key + ":", 0) == 0) return std::stoull(line.substr(key.size() + 1));
    }
    return 0;
}

std::string post_text(const std::string& path, const std::string& body) {
    return "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nConnection: close\r\n" +
           "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

// Lets this test process hold a thousand sockets; false when the hard limit does not allow `want`.
bool raise_fd_limit(rlim_t want) {
    rlimit rl{};
    if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return false;
    if (rl.rlim_cur < want) {
        rl.rlim_cur = std::min(want, rl.rlim_max);
        ::setrlimit(RLIMIT_NOFILE, &rl);
    }
    return rl.rlim_cur >= want;
}

struct Fds {
    std::vector<int> fds;
    // Connects to the server; the socket is closed at the end of the scope. -1 on failure.
    int connect(int port) {
        const int fd = connect_loopback(port);
        if (fd >= 0) fds.push_back(fd);
        return fd;
    }
    ~Fds() {
        for (int fd : fds) ::close(fd);
    }
};

double metric(int port, const std::string& sample) { return metric_value(http_get(port, "/metrics").raw, sample); }

// Long streamed completions, each on its own thread, holding a slot (or a place in the queue) and a handler thread.
// They all leave together when the group is destroyed (a queued stream gets its first chunk only when the slot
// frees, so they could not leave one by one).
class LongStreams {
public:
    explicit LongStreams(int port) : port_(port) {}
    ~LongStreams() { stop(); }
    void stop() {
        leave_ = true;
        for (auto& t : threads_) t.join();
        threads_.clear();
    }
    void add() {
        threads_.emplace_back([this] {
            stream_post(port_, "/v1/completions",
                        json{{"prompt", "Once upon a time"}, {"max_tokens", 16000}, {"ignore_eos", true}, {"stream", true}},
                        [this](const json&) { return ++chunks_, !leave_.load(); });
        });
    }
    int chunks() const { return chunks_.load(); }

private:
    int port_;
    std::atomic<bool> leave_{false};
    std::atomic<int> chunks_{0};
    std::vector<std::thread> threads_;
};

// A server on the small synthetic model (long streams stay busy for seconds) with one slot.
std::unique_ptr<ServerProcess> start_one_slot_server(const std::vector<std::string>& extra) {
    std::vector<std::string> args = {"--slots", "1", "--ctx-size", "16384", "--threads", "1"};
    args.insert(args.end(), extra.begin(), extra.end());
    return ServerProcess::start(testdata_path("models/synth-llama-f32.gguf").string(), args);
}

// Item 8: a chunked body far above the limit is refused while it arrives, never buffered whole.
TEST(ServerHostileTest, ChunkedBodyAboveTheLimitIsRefusedWithoutBufferingIt) {
    auto server = ServerProcess::start(stories_model(), {"--slots", "1", "--ctx-size", "64", "--max-body-bytes", "1MB"});
    ASSERT_TRUE(server);
    const uint64_t hwm_before = proc_status_kb(server->pid(), "VmHWM");
    Fds c;
    const int fd = c.connect(server->port());
    ASSERT_GE(fd, 0);
    const auto deadline = Clock::now() + std::chrono::seconds(30);
    ASSERT_TRUE(send_all(fd,
                         "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                         "Transfer-Encoding: chunked\r\n\r\n",
                         deadline));
    // 64 KiB chunks, up to 192 MiB, until the server answers or stops reading.
    const std::string chunk = "10000\r\n" + std::string(65536, ' ') + "\r\n";
    size_t sent = 0;
    for (int i = 0; i < 3072 && Clock::now() < deadline; ++i) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 0) > 0) break;  // the answer (or the close) came
        if (!send_all(fd, chunk, std::min(deadline, Clock::now() + std::chrono::seconds(2)))) break;
        sent += chunk.size();
    }
    const RawResponse r = read_until_close(fd, std::chrono::seconds(10));
    const uint64_t hwm_growth_kb = proc_status_kb(server->pid(), "VmHWM") - hwm_before;
    std::printf("sent %zu MiB of chunked body; server VmHWM grew by %llu KiB\n", sent >> 20, (unsigned long long)hwm_growth_kb);
    EXPECT_EQ(r.status(), 413) << r.text.substr(0, 300);
    EXPECT_NE(r.text.find("exceeds the limit"), std::string::npos) << r.text.substr(0, 300);
    EXPECT_LT(hwm_growth_kb, 48u * 1024) << "the server buffered the body (" << (sent >> 20) << " MiB sent)";
    EXPECT_EQ(http_post(server->port(), "/v1/completions", json{{"prompt", "Hi"}, {"max_tokens", 2}}).status, 200);
}

// Item 8 again, with Content-Length: refused before the body is read.
TEST(ServerHostileTest, DeclaredLengthAboveTheLimitIsRefusedAtOnce) {
    auto server = ServerProcess::start(stories_model(), {"--slots", "1", "--ctx-size", "64", "--max-body-bytes", "1MB"});
    ASSERT_TRUE(server);
    Fds c;
    const int fd = c.connect(server->port());
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(send_all(fd,
                         "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 300000000\r\n\r\n{\"prompt\":",
                         Clock::now() + std::chrono::seconds(10)));
    const RawResponse r = read_until_close(fd, std::chrono::seconds(10));
    EXPECT_EQ(r.status(), 413) << r.text.substr(0, 300);
}

// Item 8 across connections: many clients each sending most of a maximal body cannot make the server hold more
// than its budget for unfinished bodies (max(64 MiB, 32 x --max-body-bytes)); the connection that crosses it gets 503.
TEST(ServerHostileTest, UnfinishedBodiesOfManyConnectionsStayWithinABudget) {
    if (!raise_fd_limit(256)) GTEST_SKIP() << "needs 256 open files (ulimit -n)";
    auto server = ServerProcess::start(stories_model(), {"--slots", "1", "--ctx-size", "64", "--max-body-bytes", "1MB"});
    ASSERT_TRUE(server);
    const uint64_t hwm_before = proc_status_kb(server->pid(), "VmHWM");
    constexpr int kClients = 96;  // 96 x 900 kB = 86 MB, over the 64 MiB budget
    Fds c;
    const std::string head = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n";
    const std::string part(900000, ' ');
    for (int i = 0; i < kClients; ++i) {
        const int fd = c.connect(server->port());
        ASSERT_GE(fd, 0);
        send_all(fd, head + part, Clock::now() + std::chrono::seconds(10));
    }
    // The bytes may still sit in socket buffers: look for the refusals until the server has read everything.
    int refused = 0;
    std::vector<std::string> got(c.fds.size());
    const auto deadline = Clock::now() + std::chrono::seconds(20);
    for (int round = 0; round < 400 && Clock::now() < deadline; ++round) {
        refused = 0;
        for (size_t i = 0; i < c.fds.size(); ++i) {
            if (RawResponse{got[i]}.status() == 0) got[i] += read_until_close(c.fds[i], std::chrono::milliseconds(1)).text;
            refused += RawResponse{got[i]}.status() == 503;
        }
        if (refused >= kClients - 75) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    for (const std::string& text : got) {
        if (RawResponse{text}.status() == 503) {
            EXPECT_NE(text.find("unfinished request bodies"), std::string::npos) << text;
        }
    }
    const uint64_t hwm_growth_kb = proc_status_kb(server->pid(), "VmHWM") - hwm_before;
    std::printf("%d of %d connections refused; server VmHWM grew by %llu KiB\n", refused, kClients, (unsigned long long)hwm_growth_kb);
    EXPECT_GE(refused, 1);
    EXPECT_LE(kClients - refused, 75) << "64 MiB holds at most 74 bodies of 900 kB";
}

// Item 9: a burst of simultaneous connections is accepted at once; none is reset, every one is answered.
TEST(ServerHostileTest, BurstOfFortyConnectionsIsAcceptedAndAnswered) {
    auto server = ServerProcess::start(stories_model(), {"--slots", "2", "--ctx-size", "64", "--max-queue", "64"});
    ASSERT_TRUE(server);
    constexpr int kClients = 40;
    Fds c;
    const auto t0 = Clock::now();
    for (int i = 0; i < kClients; ++i) {
        const int fd = c.connect(server->port());
        ASSERT_GE(fd, 0) << "client " << i;
    }
    // The kernel completes a handshake by itself while the listen backlog has room; with a backlog of 5 the extra
    // SYNs are dropped and retried after 1 s. Under a second is therefore a bound that only the regression breaks.
    int connected = 0;
    for (int fd : c.fds) {
        pollfd p{fd, POLLOUT, 0};
        int so_error = 0;
        socklen_t len = sizeof so_error;
        const int left = std::max(0, 900 - (int)ms_since(t0));
        if (::poll(&p, 1, left) == 1 && ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len) == 0 && so_error == 0) ++connected;
    }
    EXPECT_EQ(connected, kClients) << "connections not established within 0.9 s";
    const std::string body = json{{"prompt", "Once upon a time"}, {"max_tokens", 8}}.dump();
    for (int fd : c.fds) ASSERT_TRUE(send_all(fd, post_text("/v1/completions", body), Clock::now() + std::chrono::seconds(10)));
    int ok = 0, reset = 0;
    for (int fd : c.fds) {
        const RawResponse r = read_until_close(fd, std::chrono::seconds(60));
        ok += r.status() == 200;
        reset += r.error == ECONNRESET;
    }
    EXPECT_EQ(reset, 0);
    EXPECT_EQ(ok, kClients);
}

// Item 9: beyond --max-queue, 503 with Retry-After, at once.
TEST(ServerHostileTest, BeyondTheQueueIs503WithRetryAfter) {
    auto server = start_one_slot_server({"--max-queue", "2"});
    ASSERT_TRUE(server);
    const int port = server->port();
    // Three long streams fill the slot and the queue, one after the other (a request counts as waiting until the
    // worker gives it the slot).
    LongStreams streams(port);
    bool full = true;
    for (int i = 0; i < 3 && full; ++i) {
        streams.add();
        full = wait_until([&] { return metric(port, "llamacrab_queue_depth") == i && metric(port, "llamacrab_slots_busy") == 1; },
                          std::chrono::seconds(30));
    }
    ASSERT_TRUE(full) << http_get(port, "/metrics").raw;
    for (int i = 0; i < 5; ++i) {
        auto r = http_post(port, "/v1/completions", json{{"prompt", "Hi"}, {"max_tokens", 2}});
        EXPECT_EQ(r.status, 503) << r.raw;
        EXPECT_EQ(r.body["error"]["code"], "queue_full") << r.raw;
        auto cli = server->client(std::chrono::seconds(10));
        auto res = cli->Post("/v1/completions", json{{"prompt", "Hi"}, {"max_tokens", 2}}.dump(), "application/json");
        ASSERT_TRUE(res);
        EXPECT_EQ(res->status, 503);
        EXPECT_FALSE(res->get_header_value("Retry-After").empty()) << "a 503 says when to come back";
    }
}

// Item 9 at the HTTP layer: complete requests waiting for a handler thread are bounded by --max-queue too.
TEST(ServerHostileTest, RequestsBeyondTheHandlerQueueAre503WithRetryAfter) {
    auto server = start_one_slot_server({"--http-threads", "1", "--max-queue", "1"});
    ASSERT_TRUE(server);
    const int port = server->port();
    // A long stream holds the only generation handler thread; one request waits for it.
    LongStreams streams(port);
    streams.add();
    ASSERT_TRUE(wait_until([&] { return streams.chunks() > 0; }, std::chrono::seconds(30)));
    HttpResult waited;
    std::thread waiter([&] { waited = http_post(port, "/tokenize", json{{"content", "waits for the handler thread"}}); });
    const bool queued = wait_until([&] { return metric(port, "llamacrab_http_requests_waiting") == 1; }, std::chrono::seconds(30));
    EXPECT_TRUE(queued);
    if (queued) {
        auto cli = server->client(std::chrono::seconds(10));
        auto res = cli->Post("/tokenize", json{{"content", "one too many"}}.dump(), "application/json");
        EXPECT_TRUE(res);
        if (res) {
            EXPECT_EQ(res->status, 503) << res->body;
            EXPECT_FALSE(res->get_header_value("Retry-After").empty());
            EXPECT_NE(res->body.find("waiting for a handler"), std::string::npos) << res->body;
        }
    }
    streams.stop();  // the stream leaves: the waiting request gets the thread
    waiter.join();
    EXPECT_EQ(waited.status, 200) << "the waiting request is served once the thread is free: " << waited.raw;
}

// GET requests have handler threads of their own: /health, /metrics and /slots answer while every generation
// handler thread is held by a long stream (and a request waiting for one).
TEST(ServerHostileTest, HealthAnswersWhileEveryHandlerThreadIsBusy) {
    auto server = start_one_slot_server({"--http-threads", "1"});
    ASSERT_TRUE(server);
    const int port = server->port();
    LongStreams streams(port);
    streams.add();
    HttpResult waited;
    std::thread waiter([&] { waited = http_post(port, "/tokenize", json{{"content", "waits for the only handler thread"}}); });
    const bool streaming = wait_until([&] { return streams.chunks() > 2; }, std::chrono::seconds(30));
    EXPECT_TRUE(streaming);
    if (streaming) {
        EXPECT_EQ(http_get(port, "/health").status, 200);
        EXPECT_EQ(http_get(port, "/slots").status, 200);
        EXPECT_EQ(metric(port, "llamacrab_slots_busy"), 1);
    }
    streams.stop();
    waiter.join();
}

// Item 10: a thousand idle or slow connections hold no thread: a real request is answered at once.
TEST(ServerHostileTest, AThousandIdleConnectionsDoNotDelayARequest) {
    rlimit rl{};
    ::getrlimit(RLIMIT_NOFILE, &rl);
    if (!raise_fd_limit(1200)) GTEST_SKIP() << "needs 1,200 open files; the hard limit (ulimit -Hn) is " << rl.rlim_max;
    // Timeouts far beyond the test: the idle connections stay open for as long as it runs, whatever the load.
    auto server = ServerProcess::start(stories_model(), {"--slots", "1", "--ctx-size", "64", "--max-connections-per-client", "2000",
                                                         "--max-connections", "2000", "--header-timeout", "600",
                                                         "--keep-alive-timeout", "600"});
    ASSERT_TRUE(server);
    const int port = server->port();
    constexpr int kIdle = 1000;
    Fds c;
    for (int i = 0; i < kIdle; ++i) {
        const int fd = c.connect(port);
        ASSERT_GE(fd, 0) << "idle connection " << i << ": " << std::strerror(errno);
    }
    // Half of them send the start of a request and stop (slowloris); the other half send nothing.
    for (size_t i = 0; i < c.fds.size(); i += 2) send_all(c.fds[i], "GET /health HTTP/1.1\r\nHost: x\r\n", Clock::now() + std::chrono::seconds(5));
    ASSERT_TRUE(wait_until([&] { return metric(port, "llamacrab_http_connections") >= kIdle; }, std::chrono::seconds(20)))
        << "the server should hold all the idle connections open: " << http_get(port, "/metrics").raw;
    double worst_ms = 0;
    for (int i = 0; i < 10; ++i) {
        const auto t0 = Clock::now();
        auto r = http_get(port, "/health");
        worst_ms = std::max(worst_ms, ms_since(t0));
        EXPECT_EQ(r.status, 200);
    }
    auto t0 = Clock::now();
    auto completion = http_post(port, "/v1/completions", json{{"prompt", "Hi"}, {"max_tokens", 2}});
    const double completion_ms = ms_since(t0);
    std::printf("with %d idle connections: /health worst of 10 %.1f ms, a completion %.1f ms (target: under 50 ms)\n", kIdle,
                worst_ms, completion_ms);
    EXPECT_EQ(completion.status, 200);
    // No timed assertion (the figure above is printed for the record; the 50 ms target is checked by reading it,
    // not by the test). What load cannot change: the requests were answered while every idle connection was
    // still open. A thread per connection could answer them only after the idle ones timed out (600 s here), so
    // its requests would fail and the count below would have dropped.
    EXPECT_GE(metric(port, "llamacrab_http_connections"), kIdle);
}

// Item 10: a client that never finishes its headers is answered 408 and closed after the header timeout.
TEST(ServerHostileTest, SlowHeadersTimeOut) {
    auto server = ServerProcess::start(stories_model(), {"--slots", "1", "--ctx-size", "64", "--header-timeout", "1"});
    ASSERT_TRUE(server);
    Fds c;
    const int fd = c.connect(server->port());
    ASSERT_GE(fd, 0);
    const auto t0 = Clock::now();
    ASSERT_TRUE(send_all(fd, "GET /health HTTP/1.1\r\nHost: x\r\n", Clock::now() + std::chrono::seconds(5)));
    // A byte every 300 ms keeps a per-read timeout from ever firing; the header timeout counts from the first byte.
    RawResponse r;
    for (int i = 0; i < 40 && !r.eof && r.error == 0; ++i) {
        send_all(fd, "X", Clock::now() + std::chrono::milliseconds(100));
        RawResponse part = read_until_close(fd, std::chrono::milliseconds(300));
        r.text += part.text;
        r.eof = part.eof;
        r.error = part.error;
    }
    std::printf("slow headers closed after %.0f ms\n", ms_since(t0));
    EXPECT_TRUE(r.eof || r.error != 0) << "the connection should be closed";
    EXPECT_EQ(r.status(), 408) << r.text;
}

// Item 10: a body that stops arriving is answered 408 after the body timeout, and the connection closed.
TEST(ServerHostileTest, StalledBodyTimesOut) {
    auto server = ServerProcess::start(stories_model(), {"--slots", "1", "--ctx-size", "64", "--body-timeout", "1"});
    ASSERT_TRUE(server);
    Fds c;
    const int fd = c.connect(server->port());
    ASSERT_GE(fd, 0);
    const auto t0 = Clock::now();
    ASSERT_TRUE(send_all(fd, "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"pro",
                         Clock::now() + std::chrono::seconds(5)));
    const RawResponse r = read_until_close(fd, std::chrono::seconds(20));
    std::printf("stalled body answered after %.0f ms\n", ms_since(t0));
    EXPECT_EQ(r.status(), 408) << r.text;
    EXPECT_TRUE(r.eof || r.error != 0);
}

// Item 10: connections beyond a cap (per client address, or in total) are refused at once with 503 and
// Retry-After, and the cap frees when they close.
void expect_cap_refuses_the_ninth(const std::vector<std::string>& cap_args) {
    std::vector<std::string> args = {"--slots", "1", "--ctx-size", "64", "--keep-alive-timeout", "60"};
    args.insert(args.end(), cap_args.begin(), cap_args.end());
    auto server = ServerProcess::start(stories_model(), args);
    ASSERT_TRUE(server);
    const int port = server->port();
    {
        // Eight connections, each known to be accepted (it answered a keep-alive request) and left open: no other
        // connection exists, so the ninth meets a full cap whatever the timing.
        Fds c;
        for (int i = 0; i < 8; ++i) {
            const int fd = c.connect(port);
            ASSERT_GE(fd, 0);
            ASSERT_TRUE(send_all(fd, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n", Clock::now() + std::chrono::seconds(5)));
            std::string got;
            const auto deadline = Clock::now() + std::chrono::seconds(10);
            while (got.find("\"ok\"}") == std::string::npos && Clock::now() < deadline) {
                const RawResponse part = read_until_close(fd, std::chrono::milliseconds(50));
                got += part.text;
                ASSERT_FALSE(part.eof || part.error) << "connection " << i << " was closed: " << got;
            }
            ASSERT_NE(got.find("\"ok\"}"), std::string::npos) << "connection " << i << ": " << got;
        }
        const int extra = c.connect(port);
        ASSERT_GE(extra, 0);
        const auto t0 = Clock::now();
        const RawResponse r = read_until_close(extra, std::chrono::seconds(5));
        std::printf("refused in %.1f ms\n", ms_since(t0));
        EXPECT_EQ(r.status(), 503) << r.text;
        EXPECT_NE(r.text.find("Retry-After"), std::string::npos) << r.text;
        EXPECT_NE(r.text.find("too many connections"), std::string::npos) << r.text;
        EXPECT_TRUE(r.eof || r.error != 0);
    }
    EXPECT_TRUE(wait_until([&] { return http_get(port, "/health").status == 200; }, std::chrono::seconds(10)));
}

TEST(ServerHostileTest, ConnectionsBeyondThePerClientCapAreRefused) {
    expect_cap_refuses_the_ninth({"--max-connections-per-client", "8"});
}

TEST(ServerHostileTest, ConnectionsBeyondTheTotalCapAreRefused) {
    expect_cap_refuses_the_ninth({"--max-connections", "8"});
}

// Item 11: after a burst of large requests and a short idle, the resident set returns near the idle baseline.
TEST(ServerHostileTest, MemoryReturnsAfterABurstOfLargeRequests) {
    auto server = ServerProcess::start(stories_model(), {"--slots", "2", "--ctx-size", "64", "--max-body-bytes", "16MB"});
    ASSERT_TRUE(server);
    const int port = server->port();
    for (int i = 0; i < 4; ++i) ASSERT_EQ(http_post(port, "/v1/completions", json{{"prompt", "Hi"}, {"max_tokens", 2}}).status, 200);
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // let the server's idle trim (if any) run
    const uint64_t baseline = server->rss_bytes();
    // ~6 MB bodies of 1.2M prompt tokens: parsed into a JSON tree and a token vector, then refused (too long).
    std::string big = "{\"max_tokens\":1,\"prompt\":[1";
    for (int i = 0; i < 1200000; ++i) big += ",1";
    big += "]}";
    uint64_t peak = 0;
    for (int round = 0; round < 3; ++round) {
        std::vector<std::thread> clients;
        std::atomic<int> answered{0};
        for (int i = 0; i < 8; ++i) {
            clients.emplace_back([&] {
                auto r = http_post(port, "/v1/completions", big);
                answered += r.status == 400;
            });
        }
        for (auto& t : clients) t.join();
        EXPECT_EQ(answered, 8);
        peak = std::max(peak, server->rss_bytes());
    }
    uint64_t after = 0;
    const bool back = wait_until([&] { return (after = server->rss_bytes()) <= 2 * baseline; }, std::chrono::seconds(10));
    std::printf("RSS: idle %.1f MB, peak seen %.1f MB, after the burst %.1f MB\n", baseline / 1e6, peak / 1e6, after / 1e6);
    EXPECT_TRUE(back) << "RSS stayed at " << after / 1e6 << " MB, more than twice the idle " << baseline / 1e6 << " MB";
}

}  // namespace
}  // namespace llama_crab::testing
