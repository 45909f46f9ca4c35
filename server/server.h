// The OpenAI-compatible HTTP server (see docs/server.md): an epoll HTTP layer (http_server.h) and its handler
// threads in front of one Worker thread that owns the model and runs continuous batching over a fixed set of slots.
//
//   Server server(options);
//   auto port = server.bind();   // the port is open (/health answers 503) before the model is loaded
//   server.run();                // loads the model, serves until stop() (another thread or a signal handler)
#pragma once

#include <memory>
#include <string>

#include "llama_crab/error.h"
#include "server_options.h"

namespace llama_crab::server {

// Version string reported by the CLI and the server's headers.
const char* server_version();

class Server {
public:
    explicit Server(ServerOptions options);
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    // Binds host:port (port 0 picks a free one) and returns the port.
    Result<int> bind();
    // Starts the worker (which loads the model) and serves until stop(). Fails if the model cannot be loaded.
    Status run();
    // Thread-safe; may be called before run() returns or from another thread while it runs.
    void stop();

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace llama_crab::server
