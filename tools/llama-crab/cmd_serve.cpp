// serve: the OpenAI-compatible HTTP server (server/; docs/server.md).
#include <fmt/format.h>
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "cli_common.h"
#include "cli_flags.h"
#include "commands.h"
#include "llama_crab/chat.h"
#include "server.h"

namespace llama_crab::cli {
namespace {

// SIGINT/SIGTERM are blocked in every thread and collected by one watcher, which stops the server from an
// ordinary thread (stopping is not async-signal-safe).
class SignalWatcher {
public:
    explicit SignalWatcher(server::Server& server) {
        sigemptyset(&set_);
        sigaddset(&set_, SIGINT);
        sigaddset(&set_, SIGTERM);
        pthread_sigmask(SIG_BLOCK, &set_, nullptr);
        thread_ = std::thread([this, &server] {
            const timespec timeout{0, 100 * 1000 * 1000};
            while (!done_.load()) {
                const int sig = sigtimedwait(&set_, nullptr, &timeout);
                if (sig == SIGINT || sig == SIGTERM) {
                    std::fprintf(stderr, "llama-crab serve: %s, shutting down\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
                    server.stop();
                    return;
                }
            }
        });
    }
    ~SignalWatcher() {
        done_ = true;
        thread_.join();
    }

private:
    sigset_t set_{};
    std::atomic<bool> done_{false};
    std::thread thread_;
};

}  // namespace

void register_serve_command(CLI::App& app) {
    auto* cmd = app.add_subcommand("serve", "run the OpenAI-compatible HTTP server");
    struct Flags {
        server::ServerOptions o;
        std::string model;
        std::string kv_type = "f16";
        std::string chat_template;
    };
    auto f = std::make_shared<Flags>();
    auto& o = f->o;
    cmd->add_option("--model,-m", f->model, "GGUF model (default: the built-in default model)");
    cmd->add_option("--host", o.host, "address to bind")->capture_default_str();
    cmd->add_option("--port", o.port, "port to listen on (0: any free port)")->capture_default_str()->check(CLI::Range(0, 65535));
    cmd->add_option("--slots", o.n_slots, "parallel slots (KV sequences)")->capture_default_str()->check(CLI::Range(1, 64));
    cmd->add_option("--ctx-size,-c", o.n_ctx_slot, "context tokens per slot (0: min(2048, trained context))")
        ->capture_default_str()
        ->check(CLI::Range(0, 1 << 20));
    cmd->add_option("--batch-size,-b", o.n_batch, "most tokens decoded per step (bounds how long a prefill delays the others)")
        ->capture_default_str()
        ->check(CLI::Range(1, 1 << 16));
    cmd->add_option("--threads,-t", o.n_threads, "compute threads (0: all cores)")
        ->capture_default_str()
        ->check(int_range(0, kMaxThreads, "0: all cores"));
    cmd->add_option("--kv-type", f->kv_type, "KV cache type: f16 or f32")->capture_default_str();
    cmd->add_option("--template,--chat-template", f->chat_template, "use this built-in chat template instead of the model's own")
        ->check(CLI::IsMember(ChatTemplate::builtin_names()));
    cmd->add_option("--cache-dir", o.cache_dir, "disk prefix cache folder (kept across restarts)");
    o.cache_bytes = kDefaultCacheBytes;
    add_byte_size_option(cmd, "--cache-bytes", o.cache_bytes, "disk prefix cache budget");
    add_byte_size_option(cmd, "--ram-cache-bytes", o.ram_cache_bytes, "RAM prefix cache budget (0: none)");
    cmd->add_option("--api-key", o.api_key, "require 'Authorization: Bearer KEY' on every endpoint but /health");
    cmd->add_option("--model-alias", o.model_alias, "model name reported by /v1/models (default: the file name)");
    cmd->add_option("--slot-save-dir", o.slot_save_dir, "folder for POST /slots/{id}?action=save|restore files");
    add_byte_size_option(cmd, "--max-body-bytes", o.max_body_bytes, "largest accepted request body");
    cmd->add_option("--max-queue", o.max_queue, "choices that may wait for a slot before requests get 503")
        ->capture_default_str()
        ->check(CLI::Range(1, 1 << 20));
    cmd->add_option("--http-threads", o.http_threads, "HTTP handler threads (0: max(16, 4 x slots))")->check(CLI::Range(0, 4096));
    cmd->add_option("--max-connections", o.max_connections, "open connections, idle ones included; the excess gets 503")
        ->capture_default_str()
        ->check(CLI::Range(1, 1 << 20));
    cmd->add_option("--max-connections-per-client", o.max_connections_per_client, "open connections from one client address")
        ->capture_default_str()
        ->check(CLI::Range(1, 1 << 20));
    cmd->add_option("--header-timeout", o.header_timeout_s, "seconds from a request's first byte to the end of its headers (408)")
        ->capture_default_str()
        ->check(CLI::Range(0.05, 3600.0));
    cmd->add_option("--body-timeout", o.body_timeout_s, "longest wait in seconds for more of a request body (408)")
        ->capture_default_str()
        ->check(CLI::Range(0.05, 3600.0));
    cmd->add_option("--keep-alive-timeout", o.keep_alive_timeout_s, "seconds an idle connection stays open between requests")
        ->capture_default_str()
        ->check(CLI::Range(0.05, 3600.0));
    cmd->callback([f] {
        auto& o = f->o;
        auto kv = parse_kv_type(f->kv_type);
        if (!kv.ok()) return fail(kv.error());
        o.kv_type = *kv;
        if (!f->chat_template.empty()) o.chat_template = f->chat_template;
        auto path = resolve_model_path(f->model);
        if (!path.ok()) return fail(path.error());
        o.model_path = *path;
        if (!o.slot_save_dir.empty()) {
            std::error_code ec;
            std::filesystem::create_directories(o.slot_save_dir, ec);
            if (ec) return fail(fmt::format("--slot-save-dir: cannot create '{}': {}", o.slot_save_dir, ec.message()));
        }

        signal(SIGPIPE, SIG_IGN);  // a client that went away must not kill the server
        server::Server srv(o);
        auto port = srv.bind();
        if (!port.ok()) return fail(port.error());
        // Tests and scripts read this line to find the port (with --port 0).
        std::printf("llama-crab serve: listening on http://%s:%d (model %s, %d slots, %s kernels)\n", o.host.c_str(), *port,
                    o.model_path.c_str(), o.n_slots, kernel_isa_name());
        std::fflush(stdout);
        SignalWatcher signals(srv);
        auto st = srv.run();
        if (!st.ok()) return fail(st.error());
        std::printf("llama-crab serve: stopped\n");
    });
}

}  // namespace llama_crab::cli
