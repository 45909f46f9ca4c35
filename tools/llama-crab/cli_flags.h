// Flag parsing shared by every command: the exit status of usage errors, unknown commands, byte sizes and
// range checks that name the valid range.
#pragma once

#include <CLI/CLI.hpp>

#include <cstddef>
#include <cstdint>
#include <string>

#include "llama_crab/error.h"

namespace llama_crab::cli {

// Exit status of a usage error (an unknown command or flag, a missing or bad value), as getopt tools do.
// Errors while running a command exit 1.
constexpr int kUsageExit = 2;

// The default byte budget of a --cache-dir, the same in every command (complete, chat, serve).
constexpr size_t kDefaultCacheBytes = size_t{4} << 30;

// Parses argv and runs the chosen command. Usage errors print the problem (and, for an unknown or missing
// command, the commands there are) and return kUsageExit; --help returns 0; otherwise exit_code().
int run_cli(CLI::App& app, int argc, char** argv);

// A byte size: a number (a fraction is allowed) and an optional unit B, K/KB/KiB, M/MB/MiB, G/GB/GiB,
// T/TB/TiB in any case; every unit is 1024-based ("2GB" is 2 * 1024^3). Every byte-size flag parses with this.
Result<uint64_t> parse_byte_size(const std::string& text);
// 4294967296 -> "4GiB", 1536 -> "1536B" (the largest unit that divides it exactly).
std::string format_byte_size(uint64_t bytes);
// Adds a byte-size flag; its help shows the default (the value's current content) in these units.
CLI::Option* add_byte_size_option(CLI::App* cmd, const std::string& name, size_t& value, const std::string& help);

// Refuses a number outside [lo, hi] naming the range: "--threads: -3 is outside the valid range 0 to 1024".
// note is appended in parentheses (what 0 or a bound means).
CLI::Validator int_range(long long lo, long long hi, const std::string& note = "");
// The same for each item of a comma-separated list of whole numbers ("1,2,4").
CLI::Validator int_list_range(long long lo, long long hi, const std::string& note = "");
// The most compute threads a context takes (runtime/context.cpp refuses more).
constexpr int kMaxThreads = 512;
// The same for a real number; hi = infinity means no upper bound ("at least lo").
CLI::Validator real_range(double lo, double hi, const std::string& note = "");

}  // namespace llama_crab::cli
