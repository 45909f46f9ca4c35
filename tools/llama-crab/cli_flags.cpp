#include "cli_flags.h"

#include <fmt/format.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <vector>

#include "cli_common.h"
#include "commands.h"

namespace llama_crab::cli {
namespace {

CLI::App* find_subcommand(CLI::App* app, const std::string& name) {
    auto subs = app->get_subcommands([&](CLI::App* s) { return s->check_name(name); });
    return subs.empty() ? nullptr : subs[0];
}

void print_commands(CLI::App* app) {
    std::fprintf(stderr, "commands:\n");
    for (CLI::App* s : app->get_subcommands([](CLI::App*) { return true; })) {
        std::fprintf(stderr, "  %-12s %s\n", s->get_name().c_str(), s->get_description().c_str());
    }
    std::fprintf(stderr, "Run with --help for more information.\n");
}

// Walks the command words of argv ("template render ...") before CLI11 sees them, so that an unknown or
// missing command gets a message naming it and the list of commands. Returns false after printing one.
bool check_command_words(CLI::App& app, int argc, char** argv) {
    CLI::App* cur = &app;
    std::string path = app.get_name();
    for (int i = 1;; ++i) {
        const bool wants_command = !cur->get_subcommands([](CLI::App*) { return true; }).empty();
        if (!wants_command) return true;
        if (i >= argc) {
            std::fprintf(stderr, "error: no command given\n");
            print_commands(cur);
            return false;
        }
        const std::string word = argv[i];
        if (!word.empty() && word[0] == '-') return true;  // a flag (--help): CLI11 handles it
        CLI::App* sub = find_subcommand(cur, word);
        if (!sub) {
            std::fprintf(stderr, "error: unknown command '%s'\n", word.c_str());
            print_commands(cur);
            return false;
        }
        cur = sub;
    }
}

std::string lower(std::string s) {
    for (char& c : s) c = (char)std::tolower((unsigned char)c);
    return s;
}

std::string range_text(double lo, double hi) {
    if (std::isinf(hi)) return fmt::format("at least {}", lo);
    return fmt::format("{} to {}", lo, hi);
}

std::string range_text(long long lo, long long hi) {
    if (hi >= std::numeric_limits<int>::max()) return fmt::format("at least {}", lo);
    return fmt::format("{} to {}", lo, hi);
}

}  // namespace

int run_cli(CLI::App& app, int argc, char** argv) {
    if (!check_command_words(app, argc, argv)) return kUsageExit;
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        if (e.get_exit_code() == 0) return app.exit(e);  // --help
        std::fprintf(stderr, "error: %s\nRun with --help for more information.\n", e.what());
        return kUsageExit;
    }
    return exit_code();
}

Result<uint64_t> parse_byte_size(const std::string& text) {
    auto bad = [&](const std::string& why) {
        return make_error(ErrorCode::kInvalidArgument,
                          fmt::format("'{}' is not a byte size ({}; e.g. 4096, 512MB, 2GB, 1.5GiB)", text, why));
    };
    size_t i = 0;
    while (i < text.size() && (std::isdigit((unsigned char)text[i]) || text[i] == '.')) ++i;
    if (i == 0) return bad("it must start with a number");
    errno = 0;
    char* end = nullptr;
    const std::string number = text.substr(0, i);
    const double value = std::strtod(number.c_str(), &end);
    if (errno != 0 || *end != '\0' || !std::isfinite(value)) return bad("the number is not valid");
    std::string unit = lower(text.substr(i));
    while (!unit.empty() && unit.front() == ' ') unit.erase(unit.begin());
    static const std::vector<std::pair<std::vector<std::string>, double>> kUnits = {
        {{"", "b"}, 1.0},
        {{"k", "kb", "kib"}, 1024.0},
        {{"m", "mb", "mib"}, 1024.0 * 1024},
        {{"g", "gb", "gib"}, 1024.0 * 1024 * 1024},
        {{"t", "tb", "tib"}, 1024.0 * 1024 * 1024 * 1024},
    };
    for (const auto& [names, factor] : kUnits) {
        for (const auto& n : names) {
            if (unit != n) continue;
            const double bytes = std::floor(value * factor);
            if (bytes >= 18446744073709551616.0) return bad("it is too large");
            return (uint64_t)bytes;
        }
    }
    return bad(fmt::format("unknown unit '{}'", text.substr(i)));
}

std::string format_byte_size(uint64_t bytes) {
    static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (u < 4 && bytes != 0 && bytes % 1024 == 0) {
        bytes /= 1024;
        ++u;
    }
    return fmt::format("{}{}", bytes, kUnits[u]);
}

CLI::Option* add_byte_size_option(CLI::App* cmd, const std::string& name, size_t& value, const std::string& help) {
    const std::string default_text = format_byte_size(value);
    CLI::Validator to_bytes(
        [](std::string& s) -> std::string {
            auto r = parse_byte_size(s);
            if (!r.ok()) return r.error().message;
            if (*r > (uint64_t)std::numeric_limits<size_t>::max()) return fmt::format("'{}' is too large", s);
            s = std::to_string(*r);
            return {};
        },
        "");
    return cmd->add_option(name, value, fmt::format("{} (default {}; units B, KB, MB, GB, TB, 1024-based)", help, default_text))
        ->transform(to_bytes)
        ->type_name("SIZE");
}

CLI::Validator int_range(long long lo, long long hi, const std::string& note) {
    const std::string suffix = note.empty() ? "" : " (" + note + ")";
    return CLI::Validator(
        [lo, hi, suffix](std::string& s) -> std::string {
            errno = 0;
            char* end = nullptr;
            const long long v = std::strtoll(s.c_str(), &end, 10);
            if (s.empty() || *end != '\0' || errno != 0) return fmt::format("'{}' is not a whole number", s);
            if (v < lo || v > hi) return fmt::format("{} is outside the valid range: {}{}", s, range_text(lo, hi), suffix);
            return {};
        },
        range_text(lo, hi));
}

CLI::Validator int_list_range(long long lo, long long hi, const std::string& note) {
    const std::string suffix = note.empty() ? "" : " (" + note + ")";
    return CLI::Validator(
        [lo, hi, suffix](std::string& s) -> std::string {
            auto items = parse_int_list(s, "list");
            if (!items.ok()) return items.error().message;
            for (int v : *items) {
                if (v < lo || v > hi) return fmt::format("{} is outside the valid range: {}{}", v, range_text(lo, hi), suffix);
            }
            return {};
        },
        range_text(lo, hi) + ", comma-separated");
}

CLI::Validator real_range(double lo, double hi, const std::string& note) {
    const std::string suffix = note.empty() ? "" : " (" + note + ")";
    return CLI::Validator(
        [lo, hi, suffix](std::string& s) -> std::string {
            errno = 0;
            char* end = nullptr;
            const double v = std::strtod(s.c_str(), &end);
            if (s.empty() || *end != '\0' || errno != 0 || !std::isfinite(v)) return fmt::format("'{}' is not a number", s);
            if (v < lo || v > hi) return fmt::format("{} is outside the valid range: {}{}", s, range_text(lo, hi), suffix);
            return {};
        },
        range_text(lo, hi));
}

}  // namespace llama_crab::cli
