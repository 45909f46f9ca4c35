// Invariants: a connection is owned by exactly one side at a time: the event loop (in `conns`, registered with epoll)
// or one handler thread (in a queue or being served). Only the loop thread accepts, closes and counts connections;
// handler threads give every connection back through `returned`. Every blocking wait is bounded by a timeout.
#include "http_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <malloc.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <regex>
#include <thread>
#include <unordered_map>
#include <vector>

namespace llama_crab::server {
namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kReadBytes = 64 << 10;
constexpr int kReadsPerWakeup = 16;      // then other connections get their turn
constexpr int kFastThreads = 2;          // GET requests
constexpr int kDrainMs = 2000;           // after an error answer, how long unread request bytes are discarded
constexpr size_t kDrainBytes = 64 << 20;
constexpr int kLoopTickMs = 50;          // timeouts are checked this often
// Unfinished request bytes held by all connections together: max(64 MiB, 32 bodies of the largest size).
constexpr size_t kMinHeldBudget = 64 << 20;
constexpr size_t kHeldBudgetBodies = 32;

struct Conn {
    int fd = -1;
    std::string ip;
    int port = 0;
    std::string in;  // received, not yet parsed
    RequestParser parser;
    enum class Phase { kIdle, kReading, kDraining } phase = Phase::kIdle;
    Clock::time_point deadline;
    bool continue_sent = false;
    size_t drained = 0;
    size_t held = 0;  // bytes of an unfinished request this connection holds (counted in Impl::held_total)
    // Set when handed to a handler thread, and by it.
    httplib::Request request;
    bool keep_alive = false;

    explicit Conn(HttpLimits limits) : parser(limits) {}
};
using ConnPtr = std::unique_ptr<Conn>;

std::string peer_ip(const sockaddr_storage& ss, int& port) {
    char buf[INET6_ADDRSTRLEN] = {};
    if (ss.ss_family == AF_INET) {
        const auto* a = (const sockaddr_in*)&ss;
        inet_ntop(AF_INET, &a->sin_addr, buf, sizeof buf);
        port = ntohs(a->sin_port);
    } else if (ss.ss_family == AF_INET6) {
        const auto* a = (const sockaddr_in6*)&ss;
        inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof buf);
        port = ntohs(a->sin6_port);
    }
    return buf;
}

// Sends all of data, waiting at most timeout_ms for each bit of progress. False when the client is gone or stuck, or
// the server is stopping (a client that does not read cannot hold up the shutdown).
bool send_all(int fd, const char* data, size_t size, int timeout_ms, const std::atomic<bool>& stopping) {
    size_t sent = 0;
    auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    while (sent < size) {
        const ssize_t n = ::send(fd, data + sent, size - sent, MSG_NOSIGNAL);
        if (n > 0) {
            sent += (size_t)n;
            deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
            continue;
        }
        if (n < 0 && errno != EAGAIN && errno != EINTR) return false;
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
        if (left <= 0 || stopping.load()) return false;
        pollfd p{fd, POLLOUT, 0};
        if (::poll(&p, 1, (int)std::min<int64_t>(left, 200)) < 0 && errno != EINTR) return false;
    }
    return true;
}

// False once the client closed or reset its side (a streamed response then stops and its request is cancelled).
bool peer_alive(int fd) {
    pollfd p{fd, POLLRDHUP, 0};
    if (::poll(&p, 1, 0) <= 0) return true;
    return !(p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

std::string response_head(const httplib::Request& req, const httplib::Response& res, const httplib::Headers& defaults,
                          bool close, bool chunked) {
    std::string head = fmt::format("HTTP/1.1 {} {}\r\n", res.status, http_reason_phrase(res.status));
    for (const auto& [k, v] : defaults) {
        if (!res.has_header(k.c_str())) head += k + ": " + v + "\r\n";
    }
    for (const auto& [k, v] : res.headers) {
        if (k.find_first_of("\r\n") != std::string::npos || v.find_first_of("\r\n") != std::string::npos) continue;
        head += k + ": " + v + "\r\n";
    }
    if (chunked) {
        head += "Transfer-Encoding: chunked\r\n";
    } else if (req.method != "HEAD" || !res.body.empty()) {
        head += fmt::format("Content-Length: {}\r\n", res.body.size());
    }
    head += close ? "Connection: close\r\n\r\n" : "Connection: keep-alive\r\n\r\n";
    return head;
}

}  // namespace

const char* http_reason_phrase(int status) {
    switch (status) {
        case 100: return "Continue";
        case 200: return "OK";
        case 204: return "No Content";
        case 400: return "Bad Request";
        case 401: return "Unauthorized";
        case 403: return "Forbidden";
        case 404: return "Not Found";
        case 405: return "Method Not Allowed";
        case 408: return "Request Timeout";
        case 409: return "Conflict";
        case 413: return "Payload Too Large";
        case 414: return "URI Too Long";
        case 415: return "Unsupported Media Type";
        case 422: return "Unprocessable Content";
        case 429: return "Too Many Requests";
        case 431: return "Request Header Fields Too Large";
        case 500: return "Internal Server Error";
        case 501: return "Not Implemented";
        case 503: return "Service Unavailable";
        case 505: return "HTTP Version Not Supported";
        default: return status >= 500 ? "Server Error" : status >= 400 ? "Client Error" : "OK";
    }
}

struct HttpServer::Impl {
    HttpServerOptions opt;
    struct Route {
        std::string method;
        std::regex pattern;
        Handler handler;
    };
    std::vector<Route> routes;
    PreRoutingHandler pre_routing;
    Handler error_handler;
    ExceptionHandler exception_handler;
    Logger logger;

    int listen_fd = -1, epoll_fd = -1, wake_fd = -1;
    std::atomic<bool> stopping{false}, running{false};

    // Loop thread only.
    std::unordered_map<int, ConnPtr> conns;
    std::unordered_map<std::string, int> per_client;
    int64_t open = 0;
    bool activity_since_trim = false;
    bool accept_paused = false;
    size_t held_total = 0;  // bytes of unfinished requests held by all connections
    Clock::time_point last_activity = Clock::now();

    // Shared with the handler threads.
    std::mutex mutex;
    std::condition_variable cv;
    std::deque<ConnPtr> slow_queue, fast_queue;
    std::vector<ConnPtr> returned;
    std::atomic<int> in_handlers{0};
    std::vector<std::thread> threads;

    explicit Impl(HttpServerOptions o) : opt(std::move(o)) {}

    // Under `mutex`.
    void update_waiting() {
        if (opt.waiting_gauge) *opt.waiting_gauge = (int64_t)(slow_queue.size() + fast_queue.size());
    }

    void wake() const {
        const uint64_t one = 1;
        [[maybe_unused]] auto n = ::write(wake_fd, &one, sizeof one);
    }

    // ---- routing and responses (handler threads; also the loop for its own error answers) ----
    void route(const httplib::Request& req, httplib::Response& res) {
        try {
            if (!pre_routing || pre_routing(req, res) == HandlerResponse::kUnhandled) {
                bool found = false;
                for (const Route& r : routes) {
                    auto& matches = const_cast<httplib::Request&>(req).matches;
                    if (r.method == req.method && std::regex_match(req.path, matches, r.pattern)) {
                        r.handler(req, res);
                        found = true;
                        break;
                    }
                }
                if (!found) res.status = 404;
            }
        } catch (...) {
            res.status = 500;
            if (exception_handler) exception_handler(req, res, std::current_exception());
        }
        if (res.status == -1) res.status = 200;
        finish(req, res);
    }

    void finish(const httplib::Request& req, httplib::Response& res) {
        if (res.status >= 400 && error_handler) {
            try {
                error_handler(req, res);
            } catch (...) {  // an answer without a body is still an answer
            }
        }
    }

    // Writes the response; false when the connection cannot carry another request.
    bool write_response(int fd, const httplib::Request& req, httplib::Response& res, bool close) {
        const bool chunked = res.is_chunked_content_provider_ && res.content_provider_;
        const std::string head = response_head(req, res, opt.default_headers, close, chunked);
        if (!chunked) {
            std::string all = head;
            if (req.method != "HEAD") all += res.body;
            return send_all(fd, all.data(), all.size(), opt.write_timeout_ms, stopping) && !close;
        }
        if (!send_all(fd, head.data(), head.size(), opt.write_timeout_ms, stopping)) return false;
        bool ok = true, done = false;
        size_t offset = 0;
        httplib::DataSink sink;
        sink.write = [&](const char* data, size_t n) {
            if (!ok) return false;
            if (n == 0) return true;
            std::string frame = fmt::format("{:x}\r\n", n);
            frame.append(data, n);
            frame += "\r\n";
            ok = send_all(fd, frame.data(), frame.size(), opt.write_timeout_ms, stopping);
            offset += n;
            return ok;
        };
        sink.is_writable = [&] { return ok && peer_alive(fd); };
        sink.done = [&] { done = true; };
        // Each call of the provider waits a bounded time for its data; the response ends when the provider says
        // done, fails, or the client goes away.
        while (ok && !done) {
            try {
                if (!res.content_provider_(offset, 0, sink)) ok = false;
            } catch (...) {  // the headers are out: all that is left is to end the response early
                ok = false;
            }
        }
        if (ok) ok = send_all(fd, "0\r\n\r\n", 5, opt.write_timeout_ms, stopping);
        res.content_provider_success_ = ok;
        return ok && !close;
    }

    void serve(Conn& c) {
        httplib::Response res;
        route(c.request, res);
        const bool close = !c.keep_alive || res.get_header_value("Connection") == "close" || stopping.load();
        c.keep_alive = write_response(c.fd, c.request, res, close);
        if (logger) logger(c.request, res);
    }

    void handler_thread(std::deque<ConnPtr>& queue) {
        while (true) {
            ConnPtr c;
            {
                std::unique_lock lock(mutex);
                cv.wait(lock, [&] { return stopping.load() || !queue.empty(); });
                if (queue.empty()) return;
                c = std::move(queue.front());
                queue.pop_front();
                ++in_handlers;
                update_waiting();
            }
            try {
                serve(*c);
            } catch (...) {  // (out of memory, most likely) the connection is lost, not the thread
                c->keep_alive = false;
            }
            c->request = httplib::Request();  // the body and headers are not kept while the connection idles
            {
                std::lock_guard lock(mutex);
                returned.push_back(std::move(c));
                --in_handlers;
            }
            wake();
        }
    }

    // ---- the event loop ----
    // Bytes of unfinished requests are counted while a connection holds them.
    void set_held(Conn& c, size_t bytes) {
        held_total = held_total - c.held + bytes;
        c.held = bytes;
    }

    size_t held_budget() const {
        const size_t body = opt.limits.max_body_bytes;
        return body > SIZE_MAX / kHeldBudgetBodies ? SIZE_MAX : std::max(kMinHeldBudget, kHeldBudgetBodies * body);
    }

    void close_conn(ConnPtr c) {
        if (!c) return;
        set_held(*c, 0);
        ::close(c->fd);  // also removes it from epoll
        if (--per_client[c->ip] <= 0) per_client.erase(c->ip);
        --open;
        if (opt.connection_gauge) *opt.connection_gauge = open;
    }

    void close_fd(int fd) {
        auto it = conns.find(fd);
        if (it == conns.end()) return;
        ConnPtr c = std::move(it->second);
        conns.erase(it);
        close_conn(std::move(c));
    }

    // The loop's own answer (a limit, a timeout, a full queue): through the error handler and the logger, then the
    // connection is closed after discarding what the client still sends (closing with unread bytes would reset the
    // connection and could lose the answer).
    void answer_and_drain(Conn& c, int status, const std::string& why, bool retry_after) {
        httplib::Request req;  // what the error handler and the logger read; not the partial body
        req.method = c.parser.partial().method;
        req.path = c.parser.partial().path;
        req.version = c.parser.partial().version;
        httplib::Response res;
        res.status = status;
        res.reason = why;
        if (retry_after) res.set_header("Retry-After", "1");
        finish(req, res);
        const std::string text = response_head(req, res, opt.default_headers, true, false) + res.body;
        [[maybe_unused]] auto n = ::send(c.fd, text.data(), text.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (logger) logger(req, res);
        ::shutdown(c.fd, SHUT_WR);
        c.phase = Conn::Phase::kDraining;
        c.in.clear();
        c.in.shrink_to_fit();
        c.parser = RequestParser(opt.limits);  // frees a partial body
        set_held(c, 0);
        c.deadline = Clock::now() + std::chrono::milliseconds(kDrainMs);
    }

    void accept_all() {
        for (int i = 0; i < 256; ++i) {
            sockaddr_storage ss{};
            socklen_t len = sizeof ss;
            const int fd = ::accept4(listen_fd, (sockaddr*)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0) {
                // Out of descriptors: the listening socket would stay readable and spin the loop; the pending
                // connections wait in the backlog until a tick later.
                if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) pause_accepting();
                return;
            }
            int port = 0;
            std::string ip = peer_ip(ss, port);
            const int one = 1;
            ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // SSE chunks are small; latency matters
            if (open >= opt.max_connections || per_client[ip] >= opt.max_connections_per_client) {
                refuse(fd, open >= opt.max_connections ? "too many connections to this server"
                                                       : "too many connections from your address");
                if (per_client[ip] == 0) per_client.erase(ip);
                continue;
            }
            auto c = std::make_unique<Conn>(opt.limits);
            c->fd = fd;
            c->ip = std::move(ip);
            c->port = port;
            c->deadline = Clock::now() + std::chrono::milliseconds(opt.header_timeout_ms);
            ++per_client[c->ip];
            ++open;
            if (opt.connection_gauge) *opt.connection_gauge = open;
            epoll_event ev{};
            ev.events = EPOLLIN | EPOLLRDHUP;
            ev.data.fd = fd;
            ::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev);
            conns.emplace(fd, std::move(c));
        }
    }

    void pause_accepting() {
        if (accept_paused) return;
        ::epoll_ctl(epoll_fd, EPOLL_CTL_DEL, listen_fd, nullptr);
        accept_paused = true;
    }

    void resume_accepting() {
        if (!accept_paused) return;
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.fd = listen_fd;
        ::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, listen_fd, &ev);
        accept_paused = false;
    }

    // Over a connection cap: one short answer and the connection is closed; nothing is read or kept.
    void refuse(int fd, const char* why) {
        httplib::Request req;
        httplib::Response res;
        res.status = 503;
        res.reason = why;
        res.set_header("Retry-After", "1");
        finish(req, res);
        const std::string text = response_head(req, res, opt.default_headers, true, false) + res.body;
        [[maybe_unused]] auto n = ::send(fd, text.data(), text.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (logger) logger(req, res);
        ::close(fd);
    }

    void on_readable(int fd) {
        auto it = conns.find(fd);
        if (it == conns.end()) return;
        Conn& c = *it->second;
        char buf[kReadBytes];
        for (int i = 0; i < kReadsPerWakeup; ++i) {
            const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
            if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
            if (n <= 0) return close_fd(fd);  // closed or reset: an unfinished request is dropped
            if (c.phase == Conn::Phase::kDraining) {
                c.drained += (size_t)n;
                if (c.drained > kDrainBytes) return close_fd(fd);
                continue;
            }
            c.in.append(buf, (size_t)n);
            if (!on_data(c)) return;  // handed over or answered
        }
    }

    // Parses what arrived; false once the connection left the reading state.
    bool on_data(Conn& c) {
        const bool had_started = c.parser.started(), had_headers = c.parser.headers_done();
        const auto state = c.parser.feed(c.in);
        const auto now = Clock::now();
        if (state == RequestParser::State::kError) {
            answer_and_drain(c, c.parser.error_status(), c.parser.error_message(), false);
            return false;
        }
        if (state == RequestParser::State::kComplete) {
            dispatch(c.fd);
            return false;
        }
        // Many connections each sending most of a maximal body would add up: past the budget, the connection whose
        // bytes crossed it is refused (its client may retry), so the total stays bounded.
        set_held(c, c.in.size() + c.parser.partial().body.size());
        if (held_total > held_budget()) {
            answer_and_drain(c, 503, fmt::format("the server holds too many unfinished request bodies ({} bytes); try again", held_total), true);
            return false;
        }
        if (!had_started && c.parser.started()) {
            c.phase = Conn::Phase::kReading;
            c.deadline = now + std::chrono::milliseconds(opt.header_timeout_ms);
        }
        if (c.parser.headers_done()) {
            if (!had_headers || c.in.empty()) c.deadline = now + std::chrono::milliseconds(opt.body_timeout_ms);
            if (c.parser.expects_continue() && !c.continue_sent) {
                c.continue_sent = true;
                static const char kContinue[] = "HTTP/1.1 100 Continue\r\n\r\n";
                [[maybe_unused]] auto n = ::send(c.fd, kContinue, sizeof kContinue - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
            }
        }
        return true;
    }

    void dispatch(int fd) {
        auto it = conns.find(fd);
        Conn& c = *it->second;
        const bool fast = c.parser.partial().method == "GET" || c.parser.partial().method == "HEAD";
        std::unique_lock lock(mutex);
        if (!fast && (int)slow_queue.size() >= opt.max_pending) {
            const size_t waiting = slow_queue.size();
            lock.unlock();
            answer_and_drain(c, 503, fmt::format("the server is busy: {} requests are waiting for a handler", waiting), true);
            return;
        }
        c.keep_alive = c.parser.keep_alive();
        c.request = c.parser.take_request();
        set_held(c, 0);  // now bounded by the handler threads and the queue
        c.request.remote_addr = c.ip;
        c.request.remote_port = c.port;
        c.continue_sent = false;
        ::epoll_ctl(epoll_fd, EPOLL_CTL_DEL, fd, nullptr);
        (fast ? fast_queue : slow_queue).push_back(std::move(it->second));
        update_waiting();
        conns.erase(it);
        lock.unlock();
        cv.notify_all();
        activity_since_trim = true;
    }

    void take_back_returned() {
        std::vector<ConnPtr> back;
        {
            std::lock_guard lock(mutex);
            back.swap(returned);
        }
        const auto now = Clock::now();
        for (ConnPtr& c : back) {
            last_activity = now;
            if (!c->keep_alive || stopping.load()) {
                close_conn(std::move(c));
                continue;
            }
            c->phase = Conn::Phase::kIdle;
            c->deadline = now + std::chrono::milliseconds(opt.keep_alive_timeout_ms);
            const int fd = c->fd;
            epoll_event ev{};
            ev.events = EPOLLIN | EPOLLRDHUP;
            ev.data.fd = fd;
            ::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev);
            Conn& ref = *c;
            conns.emplace(fd, std::move(c));
            if (!ref.in.empty()) on_data(ref);  // a pipelined request already arrived
        }
    }

    void check_timeouts() {
        const auto now = Clock::now();
        std::vector<int> expired;
        for (auto& [fd, c] : conns) {
            if (now >= c->deadline) expired.push_back(fd);
        }
        for (int fd : expired) {
            Conn& c = *conns[fd];
            if (c.phase == Conn::Phase::kReading) {
                answer_and_drain(c, 408, "the request did not arrive in time", false);
            } else {
                close_fd(fd);  // idle between requests, or done draining
            }
        }
        // Freed request memory goes back to the system once the server is idle (glibc keeps it otherwise).
        if (opt.idle_trim_ms > 0 && activity_since_trim && in_handlers.load() == 0 &&
            now - last_activity > std::chrono::milliseconds(opt.idle_trim_ms)) {
            std::unique_lock lock(mutex);
            const bool idle = slow_queue.empty() && fast_queue.empty() && in_handlers.load() == 0;
            lock.unlock();
            if (idle) {
                ::malloc_trim(0);
                activity_since_trim = false;
            }
        }
    }

    void loop() {
        std::vector<epoll_event> events(256);
        auto last_check = Clock::now();
        while (!stopping.load()) {
            const int n = ::epoll_wait(epoll_fd, events.data(), (int)events.size(), kLoopTickMs);
            for (int i = 0; i < n; ++i) {
                const int fd = events[(size_t)i].data.fd;
                if (fd == listen_fd) {
                    accept_all();
                } else if (fd == wake_fd) {
                    uint64_t v;
                    [[maybe_unused]] auto r = ::read(wake_fd, &v, sizeof v);
                } else {
                    try {
                        on_readable(fd);
                    } catch (...) {  // (out of memory, most likely) this connection is lost, not the server
                        close_fd(fd);
                    }
                }
            }
            take_back_returned();
            if (Clock::now() - last_check >= std::chrono::milliseconds(kLoopTickMs)) {
                resume_accepting();
                check_timeouts();
                last_check = Clock::now();
            }
        }
    }

    void shutdown_all() {
        ::close(listen_fd);
        listen_fd = -1;
        {
            std::lock_guard lock(mutex);
            stopping = true;
        }
        cv.notify_all();
        for (auto& t : threads) t.join();
        threads.clear();
        take_back_returned();
        for (auto* q : {&slow_queue, &fast_queue}) {
            for (ConnPtr& c : *q) close_conn(std::move(c));
            q->clear();
        }
        std::vector<int> fds;
        for (auto& [fd, c] : conns) fds.push_back(fd);
        for (int fd : fds) close_fd(fd);
        ::close(epoll_fd);
        ::close(wake_fd);
        epoll_fd = wake_fd = -1;
    }
};

HttpServer::HttpServer(HttpServerOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}

HttpServer::~HttpServer() {
    stop();
    if (impl_->listen_fd >= 0) ::close(impl_->listen_fd);
}

void HttpServer::get(const std::string& pattern, Handler handler) { impl_->routes.push_back({"GET", std::regex(pattern), std::move(handler)}); }
void HttpServer::post(const std::string& pattern, Handler handler) { impl_->routes.push_back({"POST", std::regex(pattern), std::move(handler)}); }
void HttpServer::set_pre_routing_handler(PreRoutingHandler handler) { impl_->pre_routing = std::move(handler); }
void HttpServer::set_error_handler(Handler handler) { impl_->error_handler = std::move(handler); }
void HttpServer::set_exception_handler(ExceptionHandler handler) { impl_->exception_handler = std::move(handler); }
void HttpServer::set_logger(Logger logger) { impl_->logger = std::move(logger); }
bool HttpServer::is_running() const { return impl_->running.load(); }

Result<int> HttpServer::bind(const std::string& host, int port) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    addrinfo* found = nullptr;
    if (const int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found); rc != 0) {
        return make_error(ErrorCode::kIo, fmt::format("cannot resolve the address '{}': {}", host, gai_strerror(rc)));
    }
    int fd = -1;
    for (addrinfo* a = found; a && fd < 0; a = a->ai_next) {
        fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) continue;
        const int one = 1;
        ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        // The kernel queues a burst of connections up to the backlog (capped by net.core.somaxconn); the loop
        // accepts them at once, so the backlog only has to cover the time between two loop turns.
        const int backlog = std::max({1024, impl_->opt.max_pending, impl_->opt.max_connections});
        if (::bind(fd, a->ai_addr, a->ai_addrlen) != 0 || ::listen(fd, backlog) != 0) {
            ::close(fd);
            fd = -1;
        }
    }
    ::freeaddrinfo(found);
    if (fd < 0) return make_error(ErrorCode::kIo, fmt::format("cannot bind {}:{} (in use, or not an address of this machine?)", host, port));
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    ::getsockname(fd, (sockaddr*)&ss, &len);
    int bound = port;
    peer_ip(ss, bound);
    impl_->listen_fd = fd;
    return bound;
}

void HttpServer::run() {
    auto& m = *impl_;
    if (m.listen_fd < 0 || m.stopping.load()) return;
    // Each connection is a descriptor: allow the cap (the hard limit permitting).
    rlimit rl{};
    if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)m.opt.max_connections + 256) {
        rl.rlim_cur = std::min<rlim_t>(rl.rlim_max, (rlim_t)m.opt.max_connections + 256);
        ::setrlimit(RLIMIT_NOFILE, &rl);
    }
    m.epoll_fd = ::epoll_create1(EPOLL_CLOEXEC);
    m.wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    for (int fd : {m.listen_fd, m.wake_fd}) {
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.fd = fd;
        ::epoll_ctl(m.epoll_fd, EPOLL_CTL_ADD, fd, &ev);
    }
    for (int i = 0; i < std::max(1, m.opt.handler_threads); ++i) m.threads.emplace_back([&m] { m.handler_thread(m.slow_queue); });
    for (int i = 0; i < kFastThreads; ++i) m.threads.emplace_back([&m] { m.handler_thread(m.fast_queue); });
    m.running = true;
    m.loop();
    m.shutdown_all();
    m.running = false;
}

void HttpServer::stop() {
    // The loop sees the flag within one tick (no wake-up write: the descriptor may be closing right now).
    impl_->stopping = true;
}

}  // namespace llama_crab::server
