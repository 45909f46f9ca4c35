#include "cli_common.h"

#include <fmt/format.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "commands.h"
#include "model/random_model.h"

namespace llama_crab::cli {

void fail(const std::string& message) {
    std::fprintf(stderr, "error: %s\n", message.c_str());
    exit_code() = 1;
}

void fail(const Error& error) { fail(error.message); }

Result<std::vector<int>> parse_int_list(const std::string& text, const char* flag) {
    std::vector<int> out;
    size_t i = 0;
    while (i <= text.size()) {
        size_t j = text.find(',', i);
        if (j == std::string::npos) j = text.size();
        std::string item = text.substr(i, j - i);
        while (!item.empty() && item.front() == ' ') item.erase(item.begin());
        while (!item.empty() && item.back() == ' ') item.pop_back();
        if (item.empty()) {
            if (text.empty()) break;
            return make_error(ErrorCode::kInvalidArgument, fmt::format("{}: empty item in '{}'", flag, text));
        }
        char* end = nullptr;
        errno = 0;
        long v = std::strtol(item.c_str(), &end, 10);
        if (*end != '\0' || errno != 0 || v < -2147483647L || v > 2147483647L) {
            return make_error(ErrorCode::kInvalidArgument, fmt::format("{}: '{}' is not an integer", flag, item));
        }
        out.push_back((int)v);
        i = j + 1;
    }
    return out;
}

Result<std::vector<Token>> parse_token_list(const std::string& text) {
    LC_ASSIGN_OR_RETURN(std::vector<int> v, parse_int_list(text, "--tokens"));
    if (v.empty()) return make_error(ErrorCode::kInvalidArgument, "--tokens: no token ids given");
    return std::vector<Token>(v.begin(), v.end());
}

Result<KvType> parse_kv_type(const std::string& s) {
    if (s == "f16") return KvType::kF16;
    if (s == "f32") return KvType::kF32;
    return make_error(ErrorCode::kInvalidArgument, fmt::format("--kv-type: '{}' is not f16 or f32", s));
}

std::string cache_folder() {
    if (const char* c = std::getenv("LLAMA_CRAB_CACHE")) return c;
    if (const char* x = std::getenv("XDG_CACHE_HOME")) return std::string(x) + "/llama-crab";
    if (const char* h = std::getenv("HOME")) return std::string(h) + "/.cache/llama-crab";
    return "/tmp/llama-crab";
}

// One line, every time the default model is used: its text is gibberish, and how to get real text.
constexpr const char* kDefaultModelNote =
    "llama-crab: no --model given: using the built-in default model, random weights that write gibberish, only for "
    "trying the machinery; give --model FILE.gguf for real text";

Result<std::string> resolve_model_path(const std::string& given) {
    if (!given.empty()) return given;
    // The built-in default: a small random-weight llama with the built-in vocabulary, made once.
    const std::string dir = cache_folder();
    const std::string path = dir + "/default-llama-v1.gguf";
    if (std::filesystem::exists(path)) {
        std::fprintf(stderr, "%s\n", kDefaultModelNote);
        return path;
    }
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) return make_error(ErrorCode::kIo, fmt::format("cannot create '{}': {}", dir, ec.message()));
    std::fprintf(stderr, "%s (making it at %s)\n", kDefaultModelNote, path.c_str());
    RandomModelSpec spec;
    spec.n_embd = 256;
    spec.n_layer = 4;
    spec.n_head = 8;
    spec.n_head_kv = 4;
    spec.n_ff = 768;
    spec.type = TensorType::Q8_0;
    spec.seed = 20261127;
    LC_TRY(write_random_model(spec, path));
    return path;
}

Result<std::shared_ptr<Model>> load_model(const std::string& given, bool show_progress) {
    LC_ASSIGN_OR_RETURN(std::string path, resolve_model_path(given));
    ModelParams mp;
    if (show_progress) {
        mp.progress = [](float f) {
            std::fprintf(stderr, "\rloading %3d%%", (int)(f * 100.0f));
            if (f >= 1.0f) std::fprintf(stderr, "\n");
            return true;
        };
    }
    return Model::load(path, mp);
}

}  // namespace llama_crab::cli
