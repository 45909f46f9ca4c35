// The tokenizer vocabulary of a GGUF model, and tokenisation / detokenisation that give exactly llama.cpp's ids and
// text. Three tokenizers: SentencePiece-style ("llama"), byte-level BPE ("gpt2", with the pre-tokenizer chosen by
// tokenizer.ggml.pre) and WordPiece ("bert").
//
// A Vocab is immutable once loaded; every const method is thread-safe.
//
// Token ids outside [0, n_tokens()) never crash (llama.cpp would throw): token_to_piece() returns "" for them,
// detokenize() and StreamingDecoder render them as "" (like a hidden control token, so a first one still takes the
// leading-space strip), and the getters return "" / 0 / false / -1.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "gguf/gguf.h"
#include "llama_crab/error.h"

namespace llama_crab {

namespace vocab_detail {
struct VocabData;
}

enum class VocabType { kSpm, kBpe, kWpm };

// Token attributes (llama.cpp's llama_token_attr bits).
enum TokenAttr : uint32_t {
    kTokenAttrUndefined = 0,
    kTokenAttrUnknown = 1u << 0,
    kTokenAttrUnused = 1u << 1,
    kTokenAttrNormal = 1u << 2,
    kTokenAttrControl = 1u << 3,
    kTokenAttrUserDefined = 1u << 4,
    kTokenAttrByte = 1u << 5,
    kTokenAttrNormalized = 1u << 6,
    kTokenAttrLstrip = 1u << 7,
    kTokenAttrRstrip = 1u << 8,
    kTokenAttrSingleWord = 1u << 9,
};

class Vocab {
public:
    // Reads the tokenizer.* metadata. Works on vocab-only files (no tensors). Warnings (an unknown pre-tokenizer
    // falls back to "default", ...) are printed to stderr and kept in warnings().
    static Result<std::shared_ptr<const Vocab>> from_gguf(const GgufFile& file);

    ~Vocab();
    Vocab(const Vocab&) = delete;
    Vocab& operator=(const Vocab&) = delete;

    VocabType type() const;
    const std::string& model_name() const;      // tokenizer.ggml.model
    const std::string& pre_tokenizer() const;   // tokenizer.ggml.pre ("" when absent)
    int32_t n_tokens() const;
    const std::vector<std::string>& warnings() const;

    // Special ids, -1 when the vocabulary has none.
    int32_t bos() const;
    int32_t eos() const;
    int32_t eot() const;
    int32_t eom() const;
    int32_t unk() const;
    int32_t pad() const;
    int32_t sep() const;
    int32_t nl() const;
    int32_t mask() const;
    int32_t fim_pre() const;
    int32_t fim_suf() const;
    int32_t fim_mid() const;
    int32_t fim_pad() const;
    int32_t fim_rep() const;
    int32_t fim_sep() const;
    const std::vector<int32_t>& eog_tokens() const;  // sorted

    bool add_bos() const;
    bool add_eos() const;
    bool add_sep() const;
    bool add_space_prefix() const;
    bool clean_spaces() const;

    bool is_eog(int32_t token) const;
    bool is_control(int32_t token) const;
    bool is_byte(int32_t token) const;
    bool is_user_defined(int32_t token) const;
    bool is_unused(int32_t token) const;
    bool is_normal(int32_t token) const;
    bool is_unknown(int32_t token) const;

    std::string_view token_text(int32_t token) const;  // the raw vocabulary entry
    float token_score(int32_t token) const;
    int32_t token_type(int32_t token) const;    // tokenizer.ggml.token_type value (1 normal, 2 unknown, 3 control,
                                                // 4 user-defined, 5 unused, 6 byte)
    uint32_t token_attr(int32_t token) const;   // TokenAttr bits
    int32_t find_token(std::string_view text) const;  // exact vocabulary entry, -1 when absent

    // add_special: BOS/EOS/SEP as the model asks. parse_special: control and user-defined tokens written in the
    // text become their ids (user-defined ones are always recognised, as in llama.cpp).
    std::vector<int32_t> tokenize(std::string_view text, bool add_special, bool parse_special) const;

    // The text of one token. special=false renders control and unknown tokens as "".
    std::string token_to_piece(int32_t token, bool special) const;

    // remove_special: drop a leading BOS / trailing EOS the tokenizer would add. unparse_special: render control
    // tokens as their text. Like llama_detokenize: strips one leading space when the vocab adds a space prefix,
    // and applies the clean-up of " ," etc. when the vocab asks for it.
    std::string detokenize(const std::vector<int32_t>& tokens, bool remove_special, bool unparse_special) const;

    // Internal data, for the tokenizer implementation files.
    const vocab_detail::VocabData& data() const { return *d_; }

private:
    explicit Vocab(std::unique_ptr<vocab_detail::VocabData> d);
    std::unique_ptr<vocab_detail::VocabData> d_;
};

// Turns a stream of token ids into text, emitting only complete UTF-8 characters (partial bytes are held until the
// rest arrives). Everything pushed, concatenated with finish(), equals Vocab::detokenize of the whole sequence with
// the same flags, including the leading-space strip and the space clean-up (text that a later token could still
// change is held back too).
class StreamingDecoder {
public:
    explicit StreamingDecoder(std::shared_ptr<const Vocab> vocab, bool remove_special = false,
                              bool unparse_special = false);

    std::string push(int32_t token);
    // Flushes whatever is held (an incomplete UTF-8 sequence is emitted as is) and resets for a new sequence.
    std::string finish();

private:
    std::string emit_ready(bool final);

    std::shared_ptr<const Vocab> vocab_;
    bool remove_special_;
    bool unparse_special_;
    bool first_ = true;
    bool remove_space_ = false;
    bool holding_eos_ = false;
    std::string raw_;      // rendered text the space clean-up may still change
    std::string pending_;  // cleaned text waiting for the rest of a UTF-8 character
};

}  // namespace llama_crab
