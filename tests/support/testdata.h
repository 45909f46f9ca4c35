// Helpers for tests: where the shared test data lives, temporary folders, reading files.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace llama_crab::testing {

// ../shared/testdata (the CMake option LLAMA_CRAB_TESTDATA_DIR).
std::filesystem::path testdata_dir();
std::filesystem::path testdata_path(const std::string& relative);
bool testdata_available();

// Path to the built llama-crab CLI.
std::filesystem::path cli_path();
// Path to a built example program: examples/<name> -> <build>/example_<name>.
std::filesystem::path example_path(const std::string& name);
// The project's source folder (for docs/ and scripts/).
std::filesystem::path source_dir();

// A fresh, empty folder under the system temp dir, removed when the object dies.
class TempDir {
public:
    TempDir();
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const std::filesystem::path& path() const { return path_; }
    std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

private:
    std::filesystem::path path_;
};

std::vector<uint8_t> read_file_bytes(const std::filesystem::path& path);
void write_file_bytes(const std::filesystem::path& path, const std::vector<uint8_t>& bytes);

// Runs a shell command, returns its exit status; stdout goes to *out when given.
int run_command(const std::string& command, std::string* out = nullptr);

}  // namespace llama_crab::testing
