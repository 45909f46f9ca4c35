// BPE pre-tokenisation: the regex lists selected by `tokenizer.ggml.pre`, compiled once per vocab with PCRE2, and the
// splitter that cuts a text into the words the BPE merges run on.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "llama_crab/error.h"

namespace llama_crab {

// What one `tokenizer.ggml.pre` value selects: the regexes (applied one after the other, each to the pieces the
// previous one left) and the tokenizer flags llama.cpp ties to that value.
struct PreTokenizerConfig {
    std::vector<std::string_view> names;
    std::vector<std::string_view> regexes;
    bool clean_spaces = true;    // detokenize's " ," / " 's" clean-up (llama.cpp: clean_up_tokenization_spaces)
    bool ignore_merges = false;  // a word that is itself a token is emitted without merging
    bool add_bos = false;        // default for add_bos_token when the file does not say
    bool add_sep = false;
    bool no_bos = false;         // the family has no BOS token (chatglm)
};

// The config for a `tokenizer.ggml.pre` value, or nullptr when unknown.
const PreTokenizerConfig* find_pretokenizer_config(std::string_view name);
const PreTokenizerConfig& default_pretokenizer_config();
// Every known name (for tests and `--help` texts).
std::vector<std::string_view> pretokenizer_names();

// Rewrites one of llama.cpp's regexes for PCRE2 (UTF + UCP) so that it matches exactly what llama.cpp matches:
// \s \S \d \D \w \W \b \B become ASCII classes (llama.cpp runs std::regex, whose classes are ASCII-only, on text in
// which non-ASCII whitespace was replaced by \v), and \p{S} loses '~' (llama.cpp's symbol class lacks it).
// Returns an error for constructs the rewriter does not understand.
Result<std::string> adapt_regex_for_pcre2(std::string_view regex);

// Words produced by a split, stored back to back.
struct WordList {
    std::string bytes;
    std::vector<uint32_t> ends;

    void clear() {
        bytes.clear();
        ends.clear();
    }
    size_t size() const { return ends.size(); }
    std::string_view operator[](size_t i) const {
        const uint32_t begin = i == 0 ? 0 : ends[i - 1];
        return std::string_view(bytes).substr(begin, ends[i] - begin);
    }
};

class PreTokenizer {
public:
    // Compiles the regexes (with JIT when available). byte_encode: map every byte of a word through the GPT-2
    // byte-to-unicode table, as BPE vocabularies expect.
    static Result<std::unique_ptr<PreTokenizer>> create(const std::vector<std::string_view>& regexes, bool byte_encode);
    ~PreTokenizer();
    PreTokenizer(const PreTokenizer&) = delete;
    PreTokenizer& operator=(const PreTokenizer&) = delete;

    // Splits `text` into words and appends them to `words`. Thread-safe. Invalid UTF-8 is decoded the way
    // llama.cpp decodes it (each bad byte becomes U+FFFD).
    void split(std::string_view text, WordList& words) const;

private:
    PreTokenizer() = default;
    struct Compiled;
    std::vector<Compiled> compiled_;
    bool byte_encode_ = true;
    void* match_context_ = nullptr;  // pcre2_match_context_8*, shared read-only by all threads
};

}  // namespace llama_crab
