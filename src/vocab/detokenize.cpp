// Token pieces, detokenize and the streaming decoder, following llama.cpp's token_to_piece and detokenize.
#include <fmt/format.h>

#include "vocab/unicode.h"
#include "vocab/vocab.h"
#include "vocab/vocab_data.h"

namespace llama_crab {

namespace vocab_detail {

namespace {

constexpr uint32_t kSpecialAttrs = kTokenAttrUnknown | kTokenAttrControl;

std::string unescape_spaces(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (size_t i = 0; i < text.size();) {
        if (text.compare(i, 3, "\xe2\x96\x81") == 0) {
            out += ' ';
            i += 3;
        } else {
            out += text[i++];
        }
    }
    return out;
}

// The byte of a <0xXX> token: up to two hex digits from position 3 (llama.cpp: strtol(text.substr(3, 2), 16)).
std::string byte_piece(std::string_view text) {
    if (text.size() < 3) return std::string();
    int value = 0;
    for (size_t k = 3; k < 5 && k < text.size(); ++k) {
        const char c = text[k];
        int digit;
        if (c >= '0' && c <= '9') digit = c - '0';
        else if (c >= 'a' && c <= 'f') digit = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') digit = c - 'A' + 10;
        else break;
        value = value * 16 + digit;
    }
    return std::string(1, static_cast<char>(value));
}

// GPT-2 byte-level text back to bytes. Characters outside the byte table are spelled out the way llama.cpp does.
std::string decode_byte_level(std::string_view text) {
    std::string out;
    for (uint32_t cpt : unicode::decode_lenient(text)) {
        const int b = unicode::token_cpt_to_byte(cpt);
        if (b >= 0) {
            out += static_cast<char>(b);
            continue;
        }
        out += "[UNK_BYTE_0x";
        for (char c : unicode::to_utf8(cpt)) out += fmt::format("{:02x}", static_cast<uint8_t>(c));
        out += text;
        out += "]";
    }
    return out;
}

}  // namespace

std::string render_piece(const VocabData& v, int32_t id) {
    if (!v.valid(id)) return std::string();
    const TokenData& t = v.tokens[id];
    if (t.attr & (kSpecialAttrs | kTokenAttrUserDefined)) return t.text;
    if (t.attr & kTokenAttrNormal) {
        return v.type == VocabType::kBpe ? decode_byte_level(t.text) : unescape_spaces(t.text);
    }
    if (t.attr & kTokenAttrByte) return byte_piece(t.text);
    return std::string();  // unused / undefined tokens render as nothing
}

std::string clean_up_spaces(std::string_view text) {
    if (text.empty()) return std::string();
    // Pass 1: " ?", " !", " .", " ," lose the space.
    std::string a(1, text[0]);
    for (size_t i = 1; i < text.size(); ++i) {
        const char x = text[i];
        if (text[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ',')) a.pop_back();
        a += x;
    }
    // Pass 2: " ' " becomes "'". The consumed space is blanked so that it cannot start another match.
    std::string b(1, a[0]);
    for (size_t i = 1; i < a.size(); ++i) {
        const char x = a[i];
        if (x == '\'' && i + 1 < a.size() && a[i - 1] == ' ' && a[i + 1] == ' ') {
            b.pop_back();
            a[++i] = '\0';
        }
        b += x;
    }
    // Pass 3: " 's", " 'm", " 're", " 've" lose the space (" 't", " 'd", " 'll" keep it).
    std::string c(1, b[0]);
    for (size_t i = 1; i < b.size(); ++i) {
        const char x = b[i];
        if (b[i - 1] == ' ' && x == '\'' && i + 1 < b.size()) {
            const char x1 = b[i + 1];
            if (x1 == 's' || x1 == 'm') {
                c.pop_back();
            } else if (x1 != 't' && x1 != 'd' && i + 2 < b.size()) {
                const char x2 = b[i + 2];
                if ((x1 == 'r' && x2 == 'e') || (x1 == 'v' && x2 == 'e')) c.pop_back();
            }
        }
        c += x;
    }
    return c;
}

}  // namespace vocab_detail

std::string Vocab::token_to_piece(int32_t token, bool special) const {
    if (!d_->valid(token)) return std::string();
    if (!special && (d_->tokens[token].attr & (kTokenAttrUnknown | kTokenAttrControl))) return std::string();
    return d_->pieces[token];
}

std::string Vocab::detokenize(const std::vector<int32_t>& tokens, bool remove_special, bool unparse_special) const {
    size_t begin = 0, end = tokens.size();
    bool remove_space = d_->add_space_prefix;
    if (remove_special && d_->add_bos && end > begin && tokens[begin] == d_->bos) {
        remove_space = false;
        ++begin;
    }
    if (remove_special && d_->add_eos && end > begin && tokens[end - 1] == d_->eos) --end;
    std::string text;
    for (size_t i = begin; i < end; ++i) {
        const std::string piece = token_to_piece(tokens[i], unparse_special);
        const size_t skip = (remove_space && !piece.empty() && piece[0] == ' ') ? 1 : 0;
        text.append(piece, skip, std::string::npos);
        remove_space = false;
    }
    return d_->clean_spaces ? vocab_detail::clean_up_spaces(text) : text;
}

// ---------------------------------------------------------------------------------------------------------------

StreamingDecoder::StreamingDecoder(std::shared_ptr<const Vocab> vocab, bool remove_special, bool unparse_special)
    : vocab_(std::move(vocab)), remove_special_(remove_special), unparse_special_(unparse_special) {}

namespace {

// The largest p such that cleaning text[0, p) and text[p, ...) separately gives the same as cleaning the whole:
// true when the three bytes before p hold no space and no apostrophe (every clean-up rule looks at most two bytes
// ahead of a space or an apostrophe and only ever removes spaces). 0 when there is no such cut.
size_t safe_cut(std::string_view raw) {
    size_t run = 0;  // length of the trailing run of bytes that are neither ' ' nor '\''
    size_t best = 0;
    for (size_t i = 0; i < raw.size(); ++i) {
        run = (raw[i] == ' ' || raw[i] == '\'') ? 0 : run + 1;
        if (run >= 3) best = i + 1;
    }
    return best;
}

}  // namespace

std::string StreamingDecoder::emit_ready(bool final) {
    if (vocab_->clean_spaces()) {
        const size_t cut = final ? raw_.size() : safe_cut(raw_);
        if (cut > 0) {
            pending_ += vocab_detail::clean_up_spaces(std::string_view(raw_).substr(0, cut));
            raw_.erase(0, cut);
        }
    } else {
        pending_ += raw_;
        raw_.clear();
    }
    const size_t hold = final ? 0 : unicode::incomplete_utf8_tail(pending_);
    std::string out = pending_.substr(0, pending_.size() - hold);
    pending_.erase(0, pending_.size() - hold);
    return out;
}

std::string StreamingDecoder::push(int32_t token) {
    const Vocab& v = *vocab_;
    if (first_) {
        first_ = false;
        remove_space_ = v.add_space_prefix();
        if (remove_special_ && v.add_bos() && token == v.bos()) {
            remove_space_ = false;
            return std::string();
        }
    }
    auto render = [&](int32_t t) {
        std::string piece = v.token_to_piece(t, unparse_special_);
        if (remove_space_ && !piece.empty() && piece[0] == ' ') piece.erase(0, 1);
        remove_space_ = false;
        raw_ += piece;
    };
    // detokenize drops a trailing EOS: hold an EOS back until we know whether it is the last token.
    const bool trailing_eos_rule = remove_special_ && v.add_eos();
    if (holding_eos_) {
        holding_eos_ = false;
        render(v.eos());
    }
    if (trailing_eos_rule && token == v.eos()) {
        holding_eos_ = true;
    } else {
        render(token);
    }
    return emit_ready(false);
}

std::string StreamingDecoder::finish() {
    holding_eos_ = false;  // it was the last token: dropped
    std::string out = emit_ready(true);
    first_ = true;
    remove_space_ = false;
    raw_.clear();
    pending_.clear();
    return out;
}

}  // namespace llama_crab
