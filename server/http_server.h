// The HTTP/1.1 server under the routes: one epoll thread holds every connection while it is idle or sending its
// request, and hands only complete requests to handler threads. Idle and slow clients therefore cost a socket and a
// few bytes, not a thread. cpp-httplib 0.11.4's server (a thread per connection, a listen backlog of 5, chunked
// bodies buffered whole before the size check) could not hold hostile load; its Request, Response and DataSink types
// are kept, so the routes read and write them as before.
//
// Limits, all enforced in the event loop before a handler thread is involved (docs/server.md):
//   - request line + headers <= max_header_bytes (431), body <= max_body_bytes in every transfer encoding (413);
//   - header_timeout from the first byte of a request to the end of its headers, body_timeout between body reads
//     (408), keep_alive_timeout between requests (closed silently);
//   - at most max_connections open, at most max_connections_per_client from one address: the excess is answered 503
//     with Retry-After and closed at once;
//   - at most max_pending complete requests waiting for a handler thread (503 with Retry-After beyond);
//   - a listen backlog of at least max_pending, so a burst is accepted by the kernel, not dropped.
// GET requests (health, metrics, slots, models) have their own two handler threads, so they answer while every
// generation thread is busy.
#pragma once

#include <httplib.h>

#include <atomic>
#include <exception>
#include <functional>
#include <memory>
#include <string>

#include "http_parser.h"
#include "llama_crab/error.h"

namespace llama_crab::server {

// The standard reason phrase of an HTTP status ("Payload Too Large").
const char* http_reason_phrase(int status);

struct HttpServerOptions {
    HttpLimits limits;
    int header_timeout_ms = 10000;     // first byte of a request to the end of its headers
    int body_timeout_ms = 10000;       // longest wait for more of a request body
    int keep_alive_timeout_ms = 5000;  // longest idle time between requests on one connection
    int write_timeout_ms = 30000;      // longest wait for the client to take more of a response
    int max_connections = 1024;
    int max_connections_per_client = 256;
    int handler_threads = 16;          // for everything but GET
    int max_pending = 256;             // complete requests waiting for a handler thread
    int idle_trim_ms = 500;            // give freed memory back to the system after this much idle time (0: never)
    httplib::Headers default_headers;  // added to every response that does not set them
    std::atomic<int64_t>* connection_gauge = nullptr;  // kept equal to the open connections
    std::atomic<int64_t>* waiting_gauge = nullptr;     // kept equal to the requests waiting for a handler thread
};

class HttpServer {
public:
    using Request = httplib::Request;
    using Response = httplib::Response;
    using Handler = std::function<void(const Request&, Response&)>;
    enum class HandlerResponse { kHandled, kUnhandled };
    using PreRoutingHandler = std::function<HandlerResponse(const Request&, Response&)>;
    using ExceptionHandler = std::function<void(const Request&, Response&, std::exception_ptr)>;
    using Logger = std::function<void(const Request&, const Response&)>;

    explicit HttpServer(HttpServerOptions options);
    ~HttpServer();
    HttpServer(const HttpServer&) = delete;
    HttpServer& operator=(const HttpServer&) = delete;

    // Routes: the path must match `pattern` (a std::regex) whole; its groups are in Request::matches.
    void get(const std::string& pattern, Handler handler);
    void post(const std::string& pattern, Handler handler);
    // Runs before routing; kHandled answers with what it put in the Response.
    void set_pre_routing_handler(PreRoutingHandler handler);
    // Runs for every answer with status >= 400, also the event loop's own (Response::reason holds why).
    void set_error_handler(Handler handler);
    void set_exception_handler(ExceptionHandler handler);
    // Runs once per answered request.
    void set_logger(Logger logger);

    // Binds host:port (port 0: a free one) and listens; returns the port.
    Result<int> bind(const std::string& host, int port);
    // Serves until stop(); returns once every handler thread has finished.
    void run();
    // Thread-safe; run() returns soon after.
    void stop();
    bool is_running() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace llama_crab::server
