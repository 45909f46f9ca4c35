#include "server.h"

#include <httplib.h>
#include <fmt/format.h>

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
    httplib::Server http;
    std::atomic<bool> stopping{false};

    explicit Impl(ServerOptions o)
        : options(std::move(o)), worker(options, metrics), routes{options, worker, metrics, alias_of(options), random_hex(), {1}} {}

    static std::string random_hex() {
        std::random_device rd;
        return fmt::format("{:08x}", rd());
    }

    static std::string alias_of(const ServerOptions& o) {
        if (!o.model_alias.empty()) return o.model_alias;
        return std::filesystem::path(o.model_path).stem().string();
    }
};

Server::Server(ServerOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {
    auto& http = impl_->http;
    const int32_t threads = impl_->options.http_threads > 0 ? impl_->options.http_threads : std::max(16, 4 * impl_->options.n_slots);
    // Each streaming client holds a handler thread for the length of its response.
    http.new_task_queue = [threads] { return new httplib::ThreadPool((size_t)threads); };
    http.set_payload_max_length(impl_->options.max_body_bytes);
    http.set_tcp_nodelay(true);  // SSE chunks are small and latency matters
    http.set_default_headers({{"Server", fmt::format("llama-crab/{}", server_version())}});
    install_middleware(http, impl_->routes);
    register_openai_routes(http, impl_->routes);
    register_native_routes(http, impl_->routes);
}

Server::~Server() { stop(); }

Result<int> Server::bind() {
    auto& o = impl_->options;
    int port = o.port;
    if (port == 0) {
        port = impl_->http.bind_to_any_port(o.host);
        if (port <= 0) return make_error(ErrorCode::kIo, fmt::format("cannot bind {} to a free port", o.host));
    } else if (!impl_->http.bind_to_port(o.host, port)) {
        return make_error(ErrorCode::kIo, fmt::format("cannot bind {}:{} (in use, or not an address of this machine?)", o.host, port));
    }
    return port;
}

Status Server::run() {
    impl_->worker.start();
    // Serve /health (503) while the model loads; give up if loading fails.
    std::thread listener([this] { impl_->http.listen_after_bind(); });
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
