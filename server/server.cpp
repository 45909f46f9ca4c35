#include "server.h"

#include <fmt/format.h>
#include <malloc.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <random>
#include <thread>

#include "routes.h"
#include "worker.h"

namespace llama_crab::server {

const char* server_version() { return LLAMA_CRAB_SERVER_VERSION; }

struct Server::Impl {
    ServerOptions options;
    Metrics metrics;
    Worker worker;
    RouteContext routes;
    HttpServer http;
    std::atomic<bool> stopping{false};

    explicit Impl(ServerOptions o)
        : options(std::move(o)),
          worker(options, metrics),
          routes{options, worker, metrics, alias_of(options), random_hex(), {1}},
          http(http_options(options, metrics)) {}

    static HttpServerOptions http_options(const ServerOptions& o, Metrics& metrics) {
        HttpServerOptions h;
        h.limits.max_body_bytes = o.max_body_bytes;
        h.header_timeout_ms = (int)(o.header_timeout_s * 1000);
        h.body_timeout_ms = (int)(o.body_timeout_s * 1000);
        h.keep_alive_timeout_ms = (int)(o.keep_alive_timeout_s * 1000);
        h.max_connections = o.max_connections;
        h.max_connections_per_client = o.max_connections_per_client;
        // Each streaming or waiting client holds a handler thread for the length of its response.
        h.handler_threads = o.http_threads > 0 ? o.http_threads : std::max(16, 4 * o.n_slots);
        h.max_pending = o.max_queue;
        h.default_headers = {{"Server", fmt::format("llama-crab/{}", server_version())}};
        h.connection_gauge = &metrics.http_connections;
        h.waiting_gauge = &metrics.http_waiting;
        return h;
    }

    static std::string random_hex() {
        std::random_device rd;
        return fmt::format("{:08x}", rd());
    }

    static std::string alias_of(const ServerOptions& o) {
        if (!o.model_alias.empty()) return o.model_alias;
        return std::filesystem::path(o.model_path).stem().string();
    }
};

namespace {

// Where RSS stayed after large requests: glibc gives threads that allocate at once their own arenas (up to 8 per
// core) and keeps freed memory in them, and its mmap threshold rises to the largest block freed so far (up to
// 32 MiB), so request bodies, JSON trees and token vectors of later requests come from the arenas and fragment them.
// Two arenas, a fixed threshold (blocks of 1 MiB and more are mapped, and unmapped when freed) and the HTTP layer's
// malloc_trim when it goes idle bound it. Set before the server's threads start.
bool tune_malloc() {
    mallopt(M_ARENA_MAX, 2);
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
    return true;
}

}  // namespace

Server::Server(ServerOptions options) : impl_((tune_malloc(), std::make_unique<Impl>(std::move(options)))) {
    auto& http = impl_->http;
    install_middleware(http, impl_->routes);
    register_openai_routes(http, impl_->routes);
    register_native_routes(http, impl_->routes);
}

Server::~Server() { stop(); }

Result<int> Server::bind() {
    auto& o = impl_->options;
    return impl_->http.bind(o.host, o.port);
}

Status Server::run() {
    impl_->worker.start();
    // Serve /health (503) while the model loads; give up if loading fails.
    std::thread listener([this] { impl_->http.run(); });
    for (int i = 0; i < 500 && !impl_->http.is_running(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    // A stop() that came before the listener ran could not stop it.
    if (impl_->stopping.load()) impl_->http.stop();
    while (impl_->worker.state() == Worker::State::kLoading && !impl_->stopping.load()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    Status result;
    if (impl_->worker.state() == Worker::State::kFailed) {
        result = make_error(ErrorCode::kInvalidArgument, "cannot load the model: " + impl_->worker.load_error());
        stop();
    }
    listener.join();
    impl_->worker.stop();
    return result;
}

void Server::stop() {
    if (impl_->stopping.exchange(true)) return;
    // The worker first: it answers every waiting request, so no handler thread is left waiting when httplib joins
    // them.
    impl_->worker.stop();
    impl_->http.stop();
}

}  // namespace llama_crab::server
