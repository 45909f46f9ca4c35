// Implementation of server_harness.h (the name ends in _test.cpp so that it is built into server_tests only).
#include "server_harness.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "support/testdata.h"

namespace llama_crab::testing {
namespace {

std::string read_text(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

}  // namespace

std::string stories_model() { return testdata_path("models/stories260K.gguf").string(); }

bool wait_until(const std::function<bool()>& predicate, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        if (predicate()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return predicate();
}

std::unique_ptr<ServerProcess> ServerProcess::start(const std::string& model, const std::vector<std::string>& args,
                                                    std::chrono::seconds timeout) {
    auto p = launch(model, args, timeout);
    if (!p) return nullptr;
    const int port = p->port_;
    if (!wait_until([&] { return http_get(port, "/health").status == 200 || !p->running(); }, timeout) || !p->running()) {
        ADD_FAILURE() << "the server did not become healthy; its log:\n" << p->log();
        return nullptr;
    }
    return p;
}

std::unique_ptr<ServerProcess> ServerProcess::launch(const std::string& model, const std::vector<std::string>& args,
                                                     std::chrono::seconds timeout) {
    signal(SIGPIPE, SIG_IGN);  // the tests write to servers (and FIFOs) that may have gone away
    std::unique_ptr<ServerProcess> p(new ServerProcess());
    char tmpl[] = "/tmp/llama-crab-server-XXXXXX";
    const int fd = mkstemp(tmpl);
    if (fd < 0) {
        ADD_FAILURE() << "mkstemp failed";
        return nullptr;
    }
    p->log_path_ = tmpl;
    std::vector<std::string> argv_s = {cli_path().string(), "serve", "--host", "127.0.0.1", "--port", "0"};
    if (!model.empty()) {
        argv_s.push_back("--model");
        argv_s.push_back(model);
    }
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& s : argv_s) argv.push_back(s.data());
    argv.push_back(nullptr);
    p->pid_ = fork();
    if (p->pid_ == 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        execv(argv[0], argv.data());
        _exit(127);
    }
    close(fd);
    if (p->pid_ < 0) {
        ADD_FAILURE() << "fork failed";
        return nullptr;
    }
    const std::regex listening(R"(listening on http://[0-9.]+:([0-9]+))");
    const bool up = wait_until(
        [&] {
            std::smatch m;
            const std::string log = read_text(p->log_path_);
            if (p->port_ == 0 && std::regex_search(log, m, listening)) p->port_ = std::stoi(m[1]);
            return p->port_ != 0 || !p->running();
        },
        timeout);
    if (!up || !p->running()) {
        ADD_FAILURE() << "the server did not come up; its log:\n" << p->log();
        return nullptr;
    }
    return p;
}

ServerProcess::~ServerProcess() {
    stop();
    if (!log_path_.empty()) unlink(log_path_.c_str());
}

bool ServerProcess::running() {
    if (pid_ <= 0) return false;
    int status = 0;
    const pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
        pid_ = -pid_;  // reaped; remember it exited
        exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        return false;
    }
    return r == 0;
}

int ServerProcess::wait_exit(std::chrono::seconds timeout) {
    if (!wait_until([&] { return !running(); }, timeout)) return -2;
    return exit_status_;
}

int ServerProcess::stop() {
    if (pid_ <= 0) return exit_status_;
    kill(pid_, SIGTERM);
    if (!wait_until([&] { return !running(); }, std::chrono::seconds(20))) {
        kill(pid_, SIGKILL);
        int status = 0;
        waitpid(pid_, &status, 0);
        pid_ = -pid_;
        exit_status_ = -1;
    }
    return exit_status_;
}

std::string ServerProcess::log() const { return read_text(log_path_); }

uint64_t ServerProcess::rss_bytes() const {
    std::ifstream in("/proc/" + std::to_string(pid_) + "/status");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
    }
    return 0;
}

double ServerProcess::cpu_seconds() const {
    std::ifstream in("/proc/" + std::to_string(pid_) + "/stat");
    std::string stat;
    std::getline(in, stat);
    // Fields after the command name (which may hold spaces, hence the last ')'): utime and stime are 14 and 15.
    std::istringstream rest(stat.substr(stat.rfind(')') + 2));
    std::string field;
    double utime = 0, stime = 0;
    for (int i = 3; i <= 15 && rest >> field; ++i) {
        if (i == 14) utime = std::stod(field);
        if (i == 15) stime = std::stod(field);
    }
    return (utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

std::unique_ptr<httplib::Client> ServerProcess::client(std::chrono::seconds read_timeout) const {
    auto c = std::make_unique<httplib::Client>("127.0.0.1", port_);
    c->set_read_timeout(read_timeout);
    c->set_connection_timeout(std::chrono::seconds(10));
    return c;
}

namespace {

HttpResult to_result(const httplib::Result& r) {
    HttpResult out;
    if (!r) return out;
    out.status = r->status;
    out.raw = r->body;
    out.body = json::parse(r->body, nullptr, false);
    if (out.body.is_discarded()) out.body = nullptr;
    return out;
}

httplib::Client make_client(int port) {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(std::chrono::seconds(120));
    c.set_connection_timeout(std::chrono::seconds(10));
    return c;
}

}  // namespace

HttpResult http_get(int port, const std::string& path, const httplib::Headers& headers) {
    auto c = make_client(port);
    return to_result(c.Get(path, headers));
}

HttpResult http_post(int port, const std::string& path, const std::string& body, const httplib::Headers& headers) {
    auto c = make_client(port);
    return to_result(c.Post(path, headers, body, "application/json"));
}

StreamResult stream_post(int port, const std::string& path, const json& body, const std::function<bool(const json&)>& on_chunk,
                         const httplib::Headers& headers) {
    StreamResult out;
    auto c = make_client(port);
    httplib::Request req;
    req.method = "POST";
    req.path = path;
    req.headers = headers;
    req.body = body.dump();
    req.set_header("Content-Type", "application/json");
    std::string pending;
    req.response_handler = [&](const httplib::Response& r) {
        out.status = r.status;
        return true;
    };
    req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
        out.raw.append(data, n);
        pending.append(data, n);
        size_t end;
        while ((end = pending.find("\n\n")) != std::string::npos) {
            const std::string event = pending.substr(0, end);
            pending.erase(0, end + 2);
            if (event.rfind("data: ", 0) != 0) continue;
            const std::string payload = event.substr(6);
            if (payload == "[DONE]") {
                out.done = true;
                continue;
            }
            json j = json::parse(payload, nullptr, false);
            out.chunks.push_back(j);
            if (on_chunk && !on_chunk(j)) return false;
        }
        return true;
    };
    httplib::Response res;
    httplib::Error err;
    c.send(req, res, err);
    if (out.status == 0) out.status = res.status;
    return out;
}

std::vector<std::string> stream_texts(const StreamResult& r) {
    std::vector<std::string> texts;
    for (const json& c : r.chunks) {
        if (!c.is_object() || !c.contains("choices")) continue;
        for (const json& ch : c["choices"]) {
            const size_t i = ch.value("index", 0);
            if (texts.size() <= i) texts.resize(i + 1);
            if (ch.contains("text")) texts[i] += ch["text"].get<std::string>();
            if (ch.contains("delta") && ch["delta"].contains("content") && ch["delta"]["content"].is_string()) {
                texts[i] += ch["delta"]["content"].get<std::string>();
            }
        }
    }
    return texts;
}

std::string response_text(const json& body, size_t i) {
    if (!body.is_object() || !body.contains("choices") || body["choices"].size() <= i) return "<no choice>";
    const json& c = body["choices"][i];
    if (c.contains("text")) return c["text"].get<std::string>();
    return c["message"]["content"].get<std::string>();
}

double metric_value(const std::string& metrics_text, const std::string& sample) {
    std::istringstream in(metrics_text);
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind(sample + " ", 0) == 0) return std::stod(line.substr(sample.size() + 1));
    }
    return -1;
}

}  // namespace llama_crab::testing
