#include "support/testdata.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <stdexcept>
#include <sys/wait.h>

namespace llama_crab::testing {

std::filesystem::path testdata_dir() {
    if (const char* env = std::getenv("LLAMA_CRAB_TESTDATA_DIR")) return env;
    return LLAMA_CRAB_TESTDATA_DIR;
}

std::filesystem::path testdata_path(const std::string& relative) { return testdata_dir() / relative; }

bool testdata_available() { return std::filesystem::exists(testdata_dir() / "models"); }

std::filesystem::path cli_path() { return LLAMA_CRAB_CLI_PATH; }

std::filesystem::path example_path(const std::string& name) {
    return std::filesystem::path(LLAMA_CRAB_EXAMPLES_DIR) / ("example_" + name);
}

std::filesystem::path source_dir() { return std::filesystem::path(LLAMA_CRAB_SOURCE_DIR); }

TempDir::TempDir() {
    std::random_device rd;
    for (int attempt = 0; attempt < 100; ++attempt) {
        auto candidate = std::filesystem::temp_directory_path() / ("llama-crab-test-" + std::to_string(rd()));
        if (std::filesystem::create_directory(candidate)) {
            path_ = candidate;
            return;
        }
    }
    throw std::runtime_error("could not create a temporary directory");
}

TempDir::~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
}

std::vector<uint8_t> read_file_bytes(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot open " + path.string());
    return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void write_file_bytes(const std::filesystem::path& path, const std::vector<uint8_t>& bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()), (std::streamsize)bytes.size());
    if (!out) throw std::runtime_error("cannot write " + path.string());
}

int run_command(const std::string& command, std::string* out) {
    FILE* pipe = popen(command.c_str(), "r");
    if (!pipe) return -1;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) {
        if (out) out->append(buf, n);
    }
    int status = pclose(pipe);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace llama_crab::testing
