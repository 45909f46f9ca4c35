// Internal: the data behind a Vocab and the per-type tokenizer entry points. Not part of the public API.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "vocab/pretokenizer.h"
#include "vocab/vocab.h"

namespace llama_crab::vocab_detail {

using StringMap = std::unordered_map<std::string_view, int32_t>;

struct TokenData {
    std::string text;
    float score = 0.0f;
    uint32_t attr = kTokenAttrNormal;
    int32_t type = 1;  // tokenizer.ggml.token_type as stored in the file (1 = normal when absent)
};

struct VocabData {
    VocabType type = VocabType::kSpm;
    std::string model;  // tokenizer.ggml.model
    std::string pre;    // tokenizer.ggml.pre as written in the file ("" when absent)
    const PreTokenizerConfig* pre_config = nullptr;

    std::vector<TokenData> tokens;
    // Views into tokens[i].text. `tokens` is never resized after the map is built.
    StringMap token_to_id;
    int max_token_len = 0;

    // BPE merges: "left right" -> rank (the first occurrence of a pair wins, as in llama.cpp).
    std::vector<std::string> merges;
    StringMap merge_rank;
    // The same merges keyed by (left id << 32 | right id) when both sides are tokens, with the id of the merged text
    // (-1 when it is not a token): the merge loop then needs no string building.
    struct Merge {
        int32_t rank;
        int32_t result;
    };
    std::unordered_map<uint64_t, Merge> merge_by_ids;
    // BPE: the token id of each single character below U+0800 (all of the byte-level alphabet), -1 when none.
    std::vector<int32_t> char_token;

    int32_t bos = -1, eos = -1, eot = -1, eom = -1, unk = -1, sep = -1, pad = -1, mask = -1, nl = -1;
    int32_t fim_pre = -1, fim_suf = -1, fim_mid = -1, fim_pad = -1, fim_rep = -1, fim_sep = -1;

    bool add_bos = false;
    bool add_eos = false;
    bool add_sep = false;
    bool add_space_prefix = false;
    bool remove_extra_whitespaces = false;
    bool clean_spaces = false;
    bool ignore_merges = false;
    bool lowercase = true;      // WordPiece normaliser
    bool strip_accents = true;  // WordPiece normaliser

    std::unordered_set<int32_t> eog;
    std::vector<int32_t> eog_sorted;

    // Control, user-defined and unknown tokens, longest text first: the order special tokens are cut out of text.
    std::vector<int32_t> special_tokens;
    // token_to_piece(id, special=true) for every id.
    std::vector<std::string> pieces;

    // Byte fallback. SPM: the <0xXX> token (or the one-byte token); BPE: the token whose text is that raw byte.
    std::array<int32_t, 256> byte_token{};

    // SPM: every pair of adjacent characters found inside some token, packed as (bytes of a) << 32 | (bytes of b).
    // Where the text has a pair not in this set no merge can ever cross, so the text can be merged in pieces.
    std::unordered_set<uint64_t> spm_pairs;

    std::unique_ptr<PreTokenizer> pretokenizer;  // BPE only
    std::vector<std::string> warnings;

    int32_t find(std::string_view text) const {
        auto it = token_to_id.find(text);
        return it == token_to_id.end() ? -1 : it->second;
    }
    bool valid(int32_t id) const { return id >= 0 && static_cast<size_t>(id) < tokens.size(); }
    uint32_t attr(int32_t id) const { return valid(id) ? tokens[id].attr : 0; }
};

// Tokenize one stretch of raw text (no special tokens in it) and append the ids.
void spm_tokenize(const VocabData& v, std::string_view text, std::vector<int32_t>& out);
void bpe_tokenize(const VocabData& v, std::string_view text, std::vector<int32_t>& out);
void wpm_tokenize(const VocabData& v, std::string_view text, std::vector<int32_t>& out);

// Packs two adjacent characters (1-4 bytes each) for VocabData::spm_pairs. Different pairs may share a key; that
// only costs a missed cut, never a wrong one.
inline uint64_t char_pair_key(std::string_view a, std::string_view b) {
    uint32_t ka = 0, kb = 0;
    for (char c : a) ka = (ka << 8) | static_cast<uint8_t>(c);
    for (char c : b) kb = (kb << 8) | static_cast<uint8_t>(c);
    return (static_cast<uint64_t>(ka) << 32) | kb;
}
void build_spm_pairs(VocabData& v);

// llama.cpp's token_to_piece(special = true) for one id, computed without the cache.
std::string render_piece(const VocabData& v, int32_t id);
// The clean_up_tokenization_spaces passes of llama_detokenize.
std::string clean_up_spaces(std::string_view text);

}  // namespace llama_crab::vocab_detail
