// Vocab: loading entry point, getters, and tokenize() with llama.cpp's special-token partitioning.
#include "vocab/vocab.h"

#include <cctype>

#include "vocab/vocab_data.h"

namespace llama_crab {

namespace vocab_detail {
Status load_vocab_data(const GgufFile& f, VocabData& v);
}

using vocab_detail::VocabData;

Vocab::Vocab(std::unique_ptr<VocabData> d) : d_(std::move(d)) {}
Vocab::~Vocab() = default;

Result<std::shared_ptr<const Vocab>> Vocab::from_gguf(const GgufFile& file) {
    auto d = std::make_unique<VocabData>();
    try {
        LC_TRY(vocab_detail::load_vocab_data(file, *d));
    } catch (const std::exception& e) {
        return make_error(ErrorCode::kInternal, std::string("vocab: loading failed: ") + e.what());
    }
    return std::shared_ptr<const Vocab>(new Vocab(std::move(d)));
}

VocabType Vocab::type() const { return d_->type; }
const std::string& Vocab::model_name() const { return d_->model; }
const std::string& Vocab::pre_tokenizer() const { return d_->pre; }
int32_t Vocab::n_tokens() const { return static_cast<int32_t>(d_->tokens.size()); }
const std::vector<std::string>& Vocab::warnings() const { return d_->warnings; }

int32_t Vocab::bos() const { return d_->bos; }
int32_t Vocab::eos() const { return d_->eos; }
int32_t Vocab::eot() const { return d_->eot; }
int32_t Vocab::eom() const { return d_->eom; }
int32_t Vocab::unk() const { return d_->unk; }
int32_t Vocab::pad() const { return d_->pad; }
int32_t Vocab::sep() const { return d_->sep; }
int32_t Vocab::nl() const { return d_->nl; }
int32_t Vocab::mask() const { return d_->mask; }
int32_t Vocab::fim_pre() const { return d_->fim_pre; }
int32_t Vocab::fim_suf() const { return d_->fim_suf; }
int32_t Vocab::fim_mid() const { return d_->fim_mid; }
int32_t Vocab::fim_pad() const { return d_->fim_pad; }
int32_t Vocab::fim_rep() const { return d_->fim_rep; }
int32_t Vocab::fim_sep() const { return d_->fim_sep; }
const std::vector<int32_t>& Vocab::eog_tokens() const { return d_->eog_sorted; }

bool Vocab::add_bos() const { return d_->add_bos; }
bool Vocab::add_eos() const { return d_->add_eos; }
bool Vocab::add_sep() const { return d_->add_sep; }
bool Vocab::add_space_prefix() const { return d_->add_space_prefix; }
bool Vocab::clean_spaces() const { return d_->clean_spaces; }

bool Vocab::is_eog(int32_t token) const { return token >= 0 && d_->eog.count(token) > 0; }
bool Vocab::is_control(int32_t token) const { return d_->attr(token) & kTokenAttrControl; }
bool Vocab::is_byte(int32_t token) const { return d_->attr(token) & kTokenAttrByte; }
bool Vocab::is_user_defined(int32_t token) const { return d_->attr(token) & kTokenAttrUserDefined; }
bool Vocab::is_unused(int32_t token) const { return d_->attr(token) & kTokenAttrUnused; }
bool Vocab::is_normal(int32_t token) const { return d_->attr(token) & kTokenAttrNormal; }
bool Vocab::is_unknown(int32_t token) const { return d_->attr(token) & kTokenAttrUnknown; }

std::string_view Vocab::token_text(int32_t token) const {
    return d_->valid(token) ? std::string_view(d_->tokens[token].text) : std::string_view();
}
float Vocab::token_score(int32_t token) const { return d_->valid(token) ? d_->tokens[token].score : 0.0f; }
int32_t Vocab::token_type(int32_t token) const { return d_->valid(token) ? d_->tokens[token].type : 0; }
uint32_t Vocab::token_attr(int32_t token) const { return d_->attr(token); }
int32_t Vocab::find_token(std::string_view text) const { return d_->find(text); }

namespace {

// A stretch of the input: either raw text [offset, offset + length) or one special token.
struct Fragment {
    int32_t token;  // -1 for text
    uint32_t offset;
    uint32_t length;
};

bool is_c_space(char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }

// Cuts special tokens out of the text: one token at a time, longest first, every occurrence in every remaining text
// fragment, honouring lstrip/rstrip. Control and unknown tokens only when parse_special; user-defined ones always.
std::vector<Fragment> partition(const VocabData& v, std::string_view text, bool parse_special) {
    std::vector<Fragment> frags, next;
    if (text.empty()) return frags;
    frags.push_back({-1, 0, static_cast<uint32_t>(text.size())});
    for (int32_t id : v.special_tokens) {
        const auto& td = v.tokens[id];
        if (!parse_special && (td.attr & (kTokenAttrControl | kTokenAttrUnknown))) continue;
        const std::string_view st = td.text;
        next.clear();
        for (const Fragment& f : frags) {
            if (f.token >= 0) {
                next.push_back(f);
                continue;
            }
            size_t off = f.offset, len = f.length;
            while (true) {
                const size_t end = off + len;
                const size_t m = text.substr(0, end).find(st, off);
                if (m == std::string_view::npos) {
                    if (len > 0) next.push_back({-1, static_cast<uint32_t>(off), static_cast<uint32_t>(len)});
                    break;
                }
                size_t left_len = m - off;
                if (td.attr & kTokenAttrLstrip) {
                    while (left_len > 0 && is_c_space(text[off + left_len - 1])) --left_len;
                }
                if (left_len > 0) next.push_back({-1, static_cast<uint32_t>(off), static_cast<uint32_t>(left_len)});
                next.push_back({id, 0, 0});
                size_t right_off = m + st.size();
                if (right_off >= end) break;
                size_t right_len = end - right_off;
                if (td.attr & kTokenAttrRstrip) {
                    while (right_len > 0 && is_c_space(text[right_off])) ++right_off, --right_len;
                }
                off = right_off;
                len = right_len;
            }
        }
        frags.swap(next);
    }
    return frags;
}

}  // namespace

std::vector<int32_t> Vocab::tokenize(std::string_view text, bool add_special, bool parse_special) const {
    const VocabData& v = *d_;
    std::vector<int32_t> out;
    const std::vector<Fragment> frags = partition(v, text, parse_special);
    auto raw = [&](const Fragment& f) { return text.substr(f.offset, f.length); };

    switch (v.type) {
        case VocabType::kSpm: {
            if (add_special && v.add_bos && v.bos >= 0) out.push_back(v.bos);
            // A space prefix goes before the first text and before any text that follows a special token.
            bool prev_special = true;
            std::string escaped;
            for (const Fragment& f : frags) {
                if (f.token >= 0) {
                    out.push_back(f.token);
                    prev_special = true;
                    continue;
                }
                escaped.clear();
                if (v.add_space_prefix && prev_special) escaped += "\xe2\x96\x81";
                for (char c : raw(f)) {
                    if (c == ' ') escaped += "\xe2\x96\x81";
                    else escaped += c;
                }
                vocab_detail::spm_tokenize(v, escaped, out);
                prev_special = false;
            }
            if (add_special && v.add_eos && v.eos >= 0) out.push_back(v.eos);
            break;
        }
        case VocabType::kBpe: {
            if (add_special && v.add_bos && v.bos >= 0) out.push_back(v.bos);
            for (const Fragment& f : frags) {
                if (f.token >= 0) out.push_back(f.token);
                else vocab_detail::bpe_tokenize(v, raw(f), out);
            }
            if (add_special && v.add_eos && v.eos >= 0) out.push_back(v.eos);
            break;
        }
        case VocabType::kWpm: {
            if (add_special && v.bos >= 0) out.push_back(v.bos);
            for (const Fragment& f : frags) {
                if (f.token >= 0) out.push_back(f.token);
                else vocab_detail::wpm_tokenize(v, raw(f), out);
            }
            if (add_special && v.add_sep && v.sep >= 0) out.push_back(v.sep);
            break;
        }
    }
    return out;
}

}  // namespace llama_crab
