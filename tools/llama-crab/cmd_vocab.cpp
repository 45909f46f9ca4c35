// `llama-crab tokenize` and `llama-crab detokenize`: they read only the GGUF's tokenizer metadata, so vocab-only files
// work too.
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <sstream>

#include "commands.h"
#include "gguf/gguf.h"
#include "llama_crab/text.h"
#include "vocab/vocab.h"

namespace llama_crab::cli {

namespace {

struct TokenizeOptions {
    std::string model;
    std::string text;
    std::string file;
    bool no_bos = false;
    bool parse_special = false;
    bool json = false;
};

struct DetokenizeOptions {
    std::string model;
    std::string tokens;
    bool remove_special = false;
    bool unparse_special = false;
    bool json = false;
};

int fail(const std::string& message) {
    std::fprintf(stderr, "llama-crab: %s\n", message.c_str());
    return 1;
}

std::shared_ptr<const Vocab> open_vocab(const std::string& path, std::string& error) {
    auto file = GgufFile::open(path);
    if (!file.ok()) {
        error = file.error().to_string();
        return nullptr;
    }
    auto vocab = Vocab::from_gguf(*file);
    if (!vocab.ok()) {
        error = vocab.error().to_string();
        return nullptr;
    }
    return *vocab;
}

// JSON cannot carry bytes that are not UTF-8; they are replaced by U+FFFD in --json output.
std::string dump_json(const nlohmann::json& j) { return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); }

int run_tokenize(const TokenizeOptions& o) {
    std::string text = o.text;
    if (!o.file.empty()) {
        std::ifstream in(o.file, std::ios::binary);
        if (!in) return fail("cannot read '" + o.file + "'");
        text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    std::string error;
    auto vocab = open_vocab(o.model, error);
    if (!vocab) return fail(error);
    const std::vector<int32_t> ids = vocab->tokenize(text, /*add_special=*/!o.no_bos, o.parse_special);
    if (o.json) {
        std::printf("%s\n", dump_json(nlohmann::json{{"tokens", ids}}).c_str());
    } else {
        std::string line;
        for (size_t i = 0; i < ids.size(); ++i) {
            if (i) line += ' ';
            line += std::to_string(ids[i]);
        }
        std::printf("%s\n", line.c_str());
    }
    return 0;
}

// Accepts "1,2,3", "1 2 3" and "[1, 2, 3]".
bool parse_ids(const std::string& s, std::vector<int32_t>& ids, std::string& error) {
    std::string cleaned;
    for (char c : s) cleaned += (c == ',' || c == '[' || c == ']') ? ' ' : c;
    std::istringstream in(cleaned);
    std::string word;
    while (in >> word) {
        size_t used = 0;
        long long v = 0;
        try {
            v = std::stoll(word, &used);
        } catch (const std::exception&) {
            used = 0;
        }
        if (used != word.size() || v < INT32_MIN || v > INT32_MAX) {
            error = "not a token id: '" + word + "'";
            return false;
        }
        ids.push_back(static_cast<int32_t>(v));
    }
    return true;
}

int run_detokenize(const DetokenizeOptions& o) {
    std::vector<int32_t> ids;
    std::string error;
    if (!parse_ids(o.tokens, ids, error)) return fail(error);
    auto vocab = open_vocab(o.model, error);
    if (!vocab) return fail(error);
    for (int32_t id : ids) {
        if (id < 0 || id >= vocab->n_tokens()) {
            return fail("token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                        std::to_string(vocab->n_tokens()) + ")");
        }
    }
    const std::string text = vocab->detokenize(ids, o.remove_special, o.unparse_special);
    if (o.json) {
        std::printf("%s\n", dump_json(nlohmann::json{{"text", text}}).c_str());
    } else {
        // A terminal gets valid UTF-8 (U+FFFD for bytes that never form a character); a pipe gets the bytes.
        const std::string shown = ::isatty(STDOUT_FILENO) == 1 ? to_valid_utf8(text) : text;
        std::fwrite(shown.data(), 1, shown.size(), stdout);
        std::fputc('\n', stdout);
    }
    return 0;
}

}  // namespace

void register_vocab_commands(CLI::App& app) {
    auto topts = std::make_shared<TokenizeOptions>();
    CLI::App* tok = app.add_subcommand("tokenize", "Print the token ids of a text");
    tok->add_option("--model,-m", topts->model, "GGUF file (a vocab-only file is enough)")->required();
    auto* text_opt = tok->add_option("--text,-t", topts->text, "Text to tokenize");
    auto* file_opt = tok->add_option("--file,-f", topts->file, "Read the text from a file (bytes as they are)");
    text_opt->excludes(file_opt);
    file_opt->excludes(text_opt);
    tok->add_flag("--no-bos", topts->no_bos, "Do not add BOS/EOS (add_special=false)");
    tok->add_flag("--parse-special", topts->parse_special, "Turn special-token text into special tokens");
    tok->add_flag("--json", topts->json, "Print {\"tokens\":[...]}");
    tok->callback([topts, text_opt, file_opt]() {
        if (text_opt->count() == 0 && file_opt->count() == 0) {
            exit_code() = fail("tokenize: one of --text or --file is required");
            return;
        }
        exit_code() = run_tokenize(*topts);
    });

    auto dopts = std::make_shared<DetokenizeOptions>();
    CLI::App* detok = app.add_subcommand("detokenize", "Print the text of a list of token ids");
    detok->add_option("--model,-m", dopts->model, "GGUF file (a vocab-only file is enough)")->required();
    detok->add_option("--tokens", dopts->tokens, "Token ids, e.g. 1,2,3")->required();
    detok->add_flag("--remove-special", dopts->remove_special, "Drop the BOS/EOS the tokenizer adds");
    detok->add_flag("--unparse-special", dopts->unparse_special, "Render control tokens as their text");
    detok->add_flag("--json", dopts->json, "Print {\"text\": ...}");
    detok->callback([dopts]() { exit_code() = run_detokenize(*dopts); });
}

}  // namespace llama_crab::cli
