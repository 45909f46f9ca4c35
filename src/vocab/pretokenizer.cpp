// The pre-tokenizer table and the PCRE2 splitter.
//
// The regexes are llama.cpp's (src/llama-vocab.cpp), written as PCRE2 source; non-ASCII literals are spelled as
// \x{...} so that no editor or compiler can normalise them. llama.cpp runs them with std::regex on a copy of the text
// in which every non-ASCII whitespace character became \v, and with ASCII-only \s \d \w; we mirror both (the subject
// gets the same substitution, adapt_regex_for_pcre2 makes the classes ASCII). Unicode categories (\p{L}, \p{N}, ...)
// come from PCRE2's tables.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "vocab/pretokenizer.h"

#include <pcre2.h>

#include <algorithm>
#include <fmt/format.h>

#include "vocab/unicode.h"

namespace llama_crab {

namespace {

// Contractions as llama.cpp spells them without (?i:...).
#define LC_CONTRACTIONS R"re((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD]))re"

// GPT-2. llama.cpp matches this one with a hand-written splitter that also has the final `|\s+` alternative of the
// original pattern, so we keep it here.
constexpr std::string_view kGpt2 = R"re('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)re";
constexpr std::string_view kLlama3 =
    LC_CONTRACTIONS R"re(|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";
constexpr std::string_view kQwen2 =
    LC_CONTRACTIONS R"re(|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";
constexpr std::string_view kQwen35 =
    LC_CONTRACTIONS R"re(|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";
constexpr std::string_view kJais2 =
    LC_CONTRACTIONS R"re(|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s{512}(?!\S)|\s{256}(?!\S)|\s{128}(?!\S)|\s{64}(?!\S)|\s{32}(?!\S)|\s{16}(?!\S)|\s{8}(?!\S)|\s{4}(?!\S)|\s{1,2}(?!\S)|\s{1})re";
// Letters that change case (an older Unicode's L&), as in DeepSeek's tokenizer.json.
constexpr std::string_view kDeepseekLlmLetters =
    R"re(\s?[\x{41}-\x{5A}\x{61}-\x{7A}\x{B5}\x{C0}-\x{D6}\x{D8}-\x{F6}\x{F8}-\x{1BA}\x{1BC}-\x{1BF}\x{1C4}-\x{293}\x{295}-\x{2AF}\x{370}-\x{373}\x{376}\x{377}\x{37B}-\x{37D}\x{37F}\x{386}\x{388}-\x{38A}\x{38C}\x{38E}-\x{3A1}\x{3A3}-\x{3F5}\x{3F7}-\x{481}\x{48A}-\x{52F}\x{531}-\x{556}\x{10A0}-\x{10C5}\x{13A0}-\x{13F5}\x{13F8}-\x{13FD}\x{1C90}-\x{1CBA}\x{1CBD}-\x{1CBF}\x{1D00}-\x{1D2B}\x{1D6B}-\x{1D77}\x{1D79}-\x{1D9A}\x{1E00}-\x{1F15}\x{1F18}-\x{1F1D}\x{1F20}-\x{1F45}\x{1F48}-\x{1F4D}\x{1F50}-\x{1F57}\x{1F59}\x{1F5B}\x{1F5D}\x{1F5F}-\x{1F7D}\x{1F80}-\x{1FB4}\x{1FB6}-\x{1FBC}\x{1FBE}\x{1FC2}-\x{1FC4}\x{1FC6}-\x{1FCC}\x{1FD0}-\x{1FD3}\x{1FD6}-\x{1FDB}\x{1FE0}-\x{1FEC}\x{1FF2}-\x{1FF4}\x{1FF6}-\x{1FFC}\x{2102}\x{2107}\x{210A}-\x{2113}\x{2115}\x{2119}-\x{211D}\x{2124}\x{2126}\x{2128}\x{212A}-\x{212D}\x{212F}-\x{2134}\x{2139}\x{213C}-\x{213F}\x{2145}-\x{2149}\x{214E}\x{2183}\x{2184}\x{2C00}-\x{2C7B}\x{2C7E}-\x{2CE4}\x{2CEB}-\x{2CEE}\x{2CF2}\x{2CF3}\x{A640}-\x{A66D}\x{A680}-\x{A69B}\x{A722}-\x{A76F}\x{A771}-\x{A787}\x{A78B}-\x{A78E}\x{AB70}-\x{ABBF}\x{FB00}-\x{FB06}\x{FB13}-\x{FB17}\x{FF21}-\x{FF3A}\x{FF41}-\x{FF5A}\x{10400}-\x{1044F}\x{104B0}-\x{104D3}\x{104D8}-\x{104FB}\x{10C80}-\x{10CB2}\x{10CC0}-\x{10CF2}\x{118A0}-\x{118DF}\x{1E900}-\x{1E943}]+)re";
// CJK ideographs, U+0800..U+4E00 and Hangul (llama.cpp: [一-龥ࠀ-一가-퟿]+).
constexpr std::string_view kCjkHangul = R"re([\x{4E00}-\x{9FA5}\x{800}-\x{4E00}\x{AC00}-\x{D7FF}]+)re";
// CJK ideographs, hiragana, katakana (llama.cpp: [一-龥぀-ゟ゠-ヿ]+).
constexpr std::string_view kCjkKana = R"re([\x{4E00}-\x{9FA5}\x{3040}-\x{309F}\x{30A0}-\x{30FF}]+)re";
// Bloom / Poro / Viking: anything up to a space or one of .,!?…。，、।۔، (the "(|)" in the class are literal).
constexpr std::string_view kBloom = R"re( ?[^(\s|.,!?\x{2026}\x{3002}\x{FF0C}\x{3001}\x{964}\x{6D4}\x{60C})]+)re";
constexpr std::string_view kDeepseekV3Main =
    R"re([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";
// Cased words without case-insensitive groups: "letter that is not a-z" = upper, "not A-Z" = lower (llama.cpp's form).
#define LC_UPPER_LOWER_WORDS \
    R"re([^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+)re"
#define LC_UPPER_LOWER_WORDS2 \
    R"re([^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*)re"
constexpr std::string_view kTekken = LC_UPPER_LOWER_WORDS "|" LC_UPPER_LOWER_WORDS2
    R"re(|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";
constexpr std::string_view kGpt4o = LC_UPPER_LOWER_WORDS LC_CONTRACTIONS "?|" LC_UPPER_LOWER_WORDS2 LC_CONTRACTIONS
    R"re(?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";
constexpr std::string_view kTinyAya =
    R"re([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+)re" LC_CONTRACTIONS
    R"re(?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*)re" LC_CONTRACTIONS
    R"re(?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";
constexpr std::string_view kBailing =
    R"re('(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+)re";
constexpr std::string_view kSeedCoder =
    LC_CONTRACTIONS R"re(|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1}| ?[^\s\p{L}\p{N}\r\n]+|\s*[\r\n]+|\s+(?!\S)|\s+)re";
constexpr std::string_view kExaoneMoe =
    LC_CONTRACTIONS R"re(|[^\r\n\p{L}\p{N}]?(?:\p{L}\p{M}*(?: \p{L}\p{M}*)*)+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]?|\s*[\r\n]|\s+(?!\S)|\s+)re";
constexpr std::string_view kMinicpm5 =
    LC_CONTRACTIONS R"re(|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}+| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";
constexpr std::string_view kUfakzeka =
    R"re([^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";

// One row per family. Flags mirror llama.cpp's llama_vocab::impl::load for that value.
std::vector<PreTokenizerConfig> build_table() {
    using V = std::vector<std::string_view>;
    std::vector<PreTokenizerConfig> t;
    auto add = [&](V names, V regexes, bool clean_spaces) -> PreTokenizerConfig& {
        PreTokenizerConfig c;
        c.names = std::move(names);
        c.regexes = std::move(regexes);
        c.clean_spaces = clean_spaces;
        t.push_back(std::move(c));
        return t.back();
    };
    add({"default"}, {R"re([\p{P}\$\+<=>\^~\|]+)re", kGpt2, R"re(\p{N}+)re", "[0-9][0-9][0-9]"}, true);
    auto& llama3 = add({"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2",
                        "jina-v5-nano"},
                       {kLlama3}, true);
    llama3.ignore_merges = true;
    llama3.add_bos = true;
    add({"dbrx", "smaug-bpe"}, {kLlama3}, true);
    add({"deepseek-llm"}, {"[\\r\\n]", kDeepseekLlmLetters,
                           R"re(\s?[!-/:-~\x{FF01}-\x{FF0F}\x{FF1A}-\x{FF5E}\x{2018}-\x{201F}\x{3000}-\x{3002}]+)re",
                           R"re(\s+$)re", kCjkHangul, R"re(\p{N}+)re"},
        false);
    add({"deepseek-coder"}, {"[\\r\\n]", R"re(\s?\p{L}+)re", R"re(\s?\p{P}+)re", kCjkHangul, R"re(\p{N})re"}, false);
    add({"deepseek-v3", "hunyuan-dense", "joyai-llm", "hy_v4"}, {R"re(\p{N}{1,3})re", kCjkKana, kDeepseekV3Main},
        false);
    add({"falcon"}, {R"re([\p{P}\$\+<=>\^~\|`]+)re", kGpt2, "[0-9][0-9][0-9]"}, true);
    add({"starcoder", "refact", "codeshell", "exaone", "minerva-7b", "mellum2"}, {R"re(\p{N})re", kGpt2}, true);
    add({"command-r", "smollm"}, {R"re(\p{N})re", kGpt2}, false);
    add({"gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de", "a.x-4.0", "mellum",
         "modern-bert", "mpt", "olmo", "jais", "exaone4"},
        {kGpt2}, true);
    add({"jina-v1-en", "jina-v2-code", "roberta-bpe"}, {kGpt2}, true).add_sep = true;
    add({"trillion", "granite-docling"}, {kGpt2}, false);
    add({"stablelm2", "megrez"}, {kQwen2}, true);
    add({"qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "hunyuan", "solar-open", "grok-2"}, {kQwen2}, false);
    add({"qwen35"}, {kQwen35}, false);
    // llama.cpp's name is "poro-chat"; "poro" is accepted as an alias.
    add({"poro-chat", "poro"}, {kBloom}, false);
    add({"bloom", "gpt3-finnish"}, {kBloom}, true);
    add({"glm4", "chatglm-bpe"}, {kLlama3}, true).no_bos = true;
    add({"viking"}, {kBloom, R"re(\p{N})re"}, false);
    add({"jais-2"}, {kJais2}, true);
    auto& tekken = add({"tekken"}, {kTekken}, false);
    tekken.ignore_merges = true;
    tekken.add_bos = true;
    add({"gpt-4o", "llama4", "kanana2", "talkie", "minimax-m2"}, {kGpt4o}, false);
    add({"chameleon"},
        {"<sentinel:[0-9]+>", "(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z", R"re(([\t\n]|    |  ))re", R"re(\p{N})re",
         R"re([\p{P}!-/:-@\[-`{-~])re", kGpt2},
        false)
        .add_bos = true;
    add({"tiny_aya", "cohere2moe"}, {R"re(\d{1,3}(?=(?:\d{3})*\b))re", kTinyAya}, false);
    add({"superbpe"}, {R"re(\p{N}+)re", R"re((?=(\d{3})+(?!\d)))re"}, false);
    add({"bailingmoe", "bailingmoe2", "llada-moe"}, {kBailing}, false);
    add({"seed-coder"}, {kSeedCoder}, false);
    add({"ufakzeka"}, {kUfakzeka}, false);
    add({"laguna"}, {"[^\\n]+|[\\n]+", kQwen2}, false);
    add({"exaone-moe"}, {kExaoneMoe}, true);
    add({"minicpm5"}, {R"re(\p{N}{1,3})re", kMinicpm5}, true).ignore_merges = true;
    return t;
}

const std::vector<PreTokenizerConfig>& table() {
    static const std::vector<PreTokenizerConfig> t = build_table();
    return t;
}

constexpr std::string_view kAsciiSpace = R"re(\t\n\x0B\f\r\x20)re";
constexpr std::string_view kAsciiDigit = "0-9";
constexpr std::string_view kAsciiWord = "A-Za-z0-9_";

}  // namespace

const PreTokenizerConfig* find_pretokenizer_config(std::string_view name) {
    for (const auto& c : table()) {
        if (std::find(c.names.begin(), c.names.end(), name) != c.names.end()) return &c;
    }
    return nullptr;
}

const PreTokenizerConfig& default_pretokenizer_config() { return table().front(); }

std::vector<std::string_view> pretokenizer_names() {
    std::vector<std::string_view> names;
    for (const auto& c : table()) names.insert(names.end(), c.names.begin(), c.names.end());
    return names;
}

Result<std::string> adapt_regex_for_pcre2(std::string_view re) {
    std::string out;
    std::string cls;  // the class being copied, so it can be wrapped when it holds \p{S}
    bool in_class = false;
    bool class_negated = false;
    bool class_has_symbol = false;
    bool class_has_tilde = false;
    size_t class_body_start = 0;  // position in `cls` after "[" or "[^"
    auto fail = [&](const std::string& why) {
        return make_error(ErrorCode::kInvalidArgument, fmt::format("regex '{}': {}", re, why));
    };
    size_t i = 0;
    while (i < re.size()) {
        const char c = re[i];
        std::string& dst = in_class ? cls : out;
        if (c == '\\') {
            if (i + 1 >= re.size()) return fail("ends with a backslash");
            const char d = re[i + 1];
            if ((d == 'p' || d == 'P' || d == 'x') && i + 2 < re.size() && re[i + 2] == '{') {
                const size_t close = re.find('}', i + 3);
                if (close == std::string_view::npos) return fail("unterminated \\p{ or \\x{");
                const std::string_view item = re.substr(i, close + 1 - i);
                if (item == "\\p{S}") {
                    if (in_class) {
                        class_has_symbol = true;
                        dst += item;
                    } else {
                        dst += "(?:(?!~)\\p{S})";
                    }
                } else {
                    dst += item;
                }
                i = close + 1;
                continue;
            }
            std::string_view replacement;
            switch (d) {
                case 's': replacement = kAsciiSpace; break;
                case 'd': replacement = kAsciiDigit; break;
                case 'w': replacement = kAsciiWord; break;
                default: break;
            }
            if (!replacement.empty()) {
                if (in_class) {
                    dst += replacement;
                } else {
                    dst += '[';
                    dst += replacement;
                    dst += ']';
                }
            } else if (d == 'S' || d == 'D' || d == 'W') {
                if (in_class) return fail("negated class escape inside a class");
                dst += "[^";
                dst += d == 'S' ? kAsciiSpace : d == 'D' ? kAsciiDigit : kAsciiWord;
                dst += ']';
            } else if (!in_class && (d == 'b' || d == 'B')) {
                const std::string w = "[A-Za-z0-9_]";
                if (d == 'b') {
                    dst += "(?:(?<=" + w + ")(?!" + w + ")|(?<!" + w + ")(?=" + w + "))";
                } else {
                    dst += "(?:(?<=" + w + ")(?=" + w + ")|(?<!" + w + ")(?!" + w + "))";
                }
            } else {
                if (d == '~') class_has_tilde = true;
                dst += c;
                dst += d;
            }
            i += 2;
            continue;
        }
        if (in_class) {
            if (c == ']' && cls.size() > class_body_start) {
                cls += ']';
                in_class = false;
                // llama.cpp's \p{S} has no '~': keep '~' out of a class that has \p{S} but no literal '~'.
                if (class_has_symbol && !class_has_tilde) {
                    out += class_negated ? "(?:~|" : "(?:(?!~)";
                    out += cls;
                    out += ')';
                } else {
                    out += cls;
                }
            } else {
                if (c == '[') return fail("nested '[' in a class");
                if (c == '~') class_has_tilde = true;
                cls += c;
            }
            ++i;
            continue;
        }
        if (c == '[') {
            in_class = true;
            class_has_symbol = false;
            class_has_tilde = false;
            cls.clear();
            cls += '[';
            class_negated = i + 1 < re.size() && re[i + 1] == '^';
            if (class_negated) {
                cls += '^';
                ++i;
            }
            class_body_start = cls.size();
            ++i;
            continue;
        }
        out += c;
        ++i;
    }
    if (in_class) return fail("unterminated class");
    return out;
}

// ---------------------------------------------------------------------------------------------------------------

struct PreTokenizer::Compiled {
    pcre2_code* code = nullptr;
};

namespace {

// One JIT stack per thread, handed to PCRE2 through the match context callback, so that one shared match context
// serves every thread. Long words need more than PCRE2's 32 KiB default.
struct ThreadJitStack {
    pcre2_jit_stack* stack = nullptr;
    ~ThreadJitStack() {
        if (stack) pcre2_jit_stack_free(stack);
    }
};

pcre2_jit_stack* jit_stack_callback(void*) {
    thread_local ThreadJitStack tls;
    if (!tls.stack) tls.stack = pcre2_jit_stack_create(64 * 1024, 16 * 1024 * 1024, nullptr);
    return tls.stack;
}

struct MatchDataDeleter {
    void operator()(pcre2_match_data* md) const { pcre2_match_data_free(md); }
};

// A byte range [begin, end) of the regex subject.
struct Piece {
    uint32_t begin;
    uint32_t end;
};

}  // namespace

Result<std::unique_ptr<PreTokenizer>> PreTokenizer::create(const std::vector<std::string_view>& regexes,
                                                           bool byte_encode) {
    std::unique_ptr<PreTokenizer> pt(new PreTokenizer());
    pt->byte_encode_ = byte_encode;
    auto* mctx = pcre2_match_context_create(nullptr);
    if (!mctx) return make_error(ErrorCode::kInternal, "pcre2_match_context_create failed");
    pcre2_jit_stack_assign(mctx, jit_stack_callback, nullptr);
    pt->match_context_ = mctx;
    for (std::string_view re : regexes) {
        LC_ASSIGN_OR_RETURN(std::string adapted, adapt_regex_for_pcre2(re));
        int err = 0;
        PCRE2_SIZE err_off = 0;
        // NO_AUTO_CAPTURE: we only need the overall match (llama.cpp uses std::regex::nosubs).
        const uint32_t options = PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY | PCRE2_NO_AUTO_CAPTURE;
        pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(adapted.data()), adapted.size(), options, &err,
                                         &err_off, nullptr);
        if (!code) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(err, msg, sizeof(msg));
            return make_error(ErrorCode::kInternal, fmt::format("pre-tokenizer regex '{}' does not compile at {}: {}",
                                                                re, (size_t)err_off, reinterpret_cast<char*>(msg)));
        }
        // JIT is optional: without it pcre2_match interprets the pattern.
        (void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
        pt->compiled_.push_back(Compiled{code});
    }
    return pt;
}

PreTokenizer::~PreTokenizer() {
    for (auto& c : compiled_) pcre2_code_free(c.code);
    if (match_context_) pcre2_match_context_free(static_cast<pcre2_match_context*>(match_context_));
}

namespace {

// True when `text` is well-formed UTF-8 without non-ASCII whitespace: then llama.cpp's decode + re-encode gives the
// same bytes and the regexes can run on the text itself.
bool is_plain_utf8(std::string_view text) {
    const auto* s = reinterpret_cast<const uint8_t*>(text.data());
    const size_t n = text.size();
    for (size_t i = 0; i < n;) {
        const uint8_t b0 = s[i];
        if (b0 < 0x80) {
            ++i;
            continue;
        }
        uint32_t cpt;
        size_t len;
        if (b0 >= 0xC2 && b0 <= 0xDF) {
            len = 2;
            cpt = b0 & 0x1Fu;
        } else if (b0 >= 0xE0 && b0 <= 0xEF) {
            len = 3;
            cpt = b0 & 0x0Fu;
        } else if (b0 >= 0xF0 && b0 <= 0xF4) {
            len = 4;
            cpt = b0 & 0x07u;
        } else {
            return false;
        }
        if (i + len > n) return false;
        for (size_t k = 1; k < len; ++k) {
            if ((s[i + k] & 0xC0) != 0x80) return false;
            cpt = (cpt << 6) | (s[i + k] & 0x3Fu);
        }
        if ((len == 3 && (cpt < 0x800 || (cpt >= 0xD800 && cpt <= 0xDFFF))) || (len == 4 && (cpt < 0x10000 || cpt > 0x10FFFF))) {
            return false;
        }
        if (unicode::is_whitespace(cpt)) return false;
        i += len;
    }
    return true;
}

}  // namespace

void PreTokenizer::split(std::string_view text, WordList& words) const {
    if (text.empty()) return;
    // `canon` is what llama.cpp rebuilds words from (its re-encoding of the decoded code points); `subject` is what
    // the regexes see: non-ASCII whitespace as \v, and code points PCRE2 cannot take (surrogates, > U+10FFFF) as a
    // private-use character, which is in none of the classes the regexes use either. For plain text both are the
    // text itself.
    std::string canon_buf, subject_buf;
    std::vector<uint32_t> canon_off, subject_off;  // per code point, only when the text is not plain
    std::string_view canon = text, subject = text;
    if (!is_plain_utf8(text)) {
        const std::vector<uint32_t> cpts = unicode::decode_lenient(text);
        const size_t n = cpts.size();
        canon_off.resize(n + 1);
        subject_off.resize(n + 1);
        for (size_t k = 0; k < n; ++k) {
            const uint32_t cpt = cpts[k];
            canon_off[k] = static_cast<uint32_t>(canon_buf.size());
            subject_off[k] = static_cast<uint32_t>(subject_buf.size());
            unicode::append_utf8(canon_buf, cpt);
            if (cpt >= 0x80 && unicode::is_whitespace(cpt)) {
                subject_buf += '\v';
            } else if ((cpt >= 0xD800 && cpt <= 0xDFFF) || cpt > 0x10FFFF) {
                unicode::append_utf8(subject_buf, 0xE000);
            } else {
                unicode::append_utf8(subject_buf, cpt);
            }
        }
        canon_off[n] = static_cast<uint32_t>(canon_buf.size());
        subject_off[n] = static_cast<uint32_t>(subject_buf.size());
        canon = canon_buf;
        subject = subject_buf;
    }

    auto* mctx = static_cast<pcre2_match_context*>(match_context_);
    std::unique_ptr<pcre2_match_data, MatchDataDeleter> md(pcre2_match_data_create(1, nullptr));
    if (!md) return;
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.get());
    auto subj = reinterpret_cast<PCRE2_SPTR>(subject.data());

    // Pieces are byte ranges of `subject`.
    std::vector<Piece> pieces{{0, static_cast<uint32_t>(subject.size())}}, next;
    for (const Compiled& re : compiled_) {
        next.clear();
        for (const Piece& p : pieces) {
            const size_t base = p.begin;
            const size_t len = p.end - p.begin;
            auto emit = [&](size_t from, size_t to) {
                if (to > from) next.push_back(Piece{static_cast<uint32_t>(base + from), static_cast<uint32_t>(base + to)});
            };
            // Iterate like std::regex_iterator: unmatched stretches become pieces of their own; after an empty
            // match, first try a non-empty match at the same place, then move on by one character.
            size_t pos = 0, last = 0;
            uint32_t options = 0;
            while (pos <= len) {
                int rc = pcre2_match(re.code, subj + base, len, pos, options | PCRE2_NO_UTF_CHECK, md.get(), mctx);
                if (rc == PCRE2_ERROR_JIT_STACKLIMIT) {
                    // Pathologically long input for the JIT stack: retry with the interpreter (heap frames).
                    rc = pcre2_match(re.code, subj + base, len, pos, options | PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT,
                                     md.get(), mctx);
                }
                if (rc == PCRE2_ERROR_NOMATCH && options != 0) {
                    if (pos >= len) break;
                    pos += unicode::utf8_len(static_cast<uint8_t>(subject[base + pos]));
                    options = 0;
                    continue;
                }
                if (rc < 0) break;  // no match, or a resource limit: the rest stays one piece
                const size_t ms = ov[0], me = ov[1];
                emit(last, ms);
                emit(ms, me);
                last = me;
                pos = me;
                options = (me == ms) ? (PCRE2_NOTEMPTY_ATSTART | PCRE2_ANCHORED) : 0;
            }
            emit(last, len);
        }
        pieces.swap(next);
    }

    // Subject byte offset -> canon byte offset (through the code point index when the two differ).
    auto to_canon = [&](uint32_t off) -> uint32_t {
        if (subject_off.empty()) return off;
        const auto it = std::lower_bound(subject_off.begin(), subject_off.end(), off);
        return canon_off[static_cast<size_t>(it - subject_off.begin())];
    };
    const auto& table = unicode::byte_token_table();
    for (const Piece& p : pieces) {
        const uint32_t begin = to_canon(p.begin);
        const std::string_view bytes = canon.substr(begin, to_canon(p.end) - begin);
        if (byte_encode_) {
            for (char ch : bytes) words.bytes += table[static_cast<uint8_t>(ch)];
        } else {
            words.bytes += bytes;
        }
        words.ends.push_back(static_cast<uint32_t>(words.bytes.size()));
    }
}

}  // namespace llama_crab
