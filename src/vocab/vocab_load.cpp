// Building a VocabData from GGUF metadata, following llama.cpp's llama_vocab::impl::load: the defaults per tokenizer
// model, the flags per pre-tokenizer, the special ids, and the text-based detection of end-of-generation tokens.
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <optional>
#include <set>

#include "vocab/unicode.h"
#include "vocab/vocab_data.h"

namespace llama_crab::vocab_detail {

Status load_vocab_data(const GgufFile& f, VocabData& v);

namespace {

Error bad(const std::string& message) { return make_error(ErrorCode::kInvalidFormat, "vocab: " + message); }

// A string array value, or an error naming the key.
Result<const std::vector<GgufValue>*> string_array(const GgufValue* value, std::string_view key) {
    if (value->type != GgufType::ARRAY || value->elem_type != GgufType::STRING) {
        return bad(fmt::format("'{}' must be an array of strings, found {}", key,
                               value->type == GgufType::ARRAY ? gguf_type_name(value->elem_type)
                                                              : gguf_type_name(value->type)));
    }
    return &value->array;
}

uint32_t attr_from_type(int64_t type) {
    switch (type) {
        case 1: return kTokenAttrNormal;
        case 2: return kTokenAttrUnknown;
        case 3: return kTokenAttrControl;
        case 4: return kTokenAttrUserDefined;
        case 5: return kTokenAttrUnused;
        case 6: return kTokenAttrByte;
        default: return kTokenAttrUndefined;
    }
}

class Loader {
public:
    Loader(const GgufFile& f, VocabData& v) : f_(f), v_(v) {}

    Status run() {
        LC_TRY(read_model());
        LC_TRY(read_tokens());
        if (v_.type == VocabType::kBpe) LC_TRY(read_merges());
        build_maps();
        if (v_.type == VocabType::kBpe) {
            LC_ASSIGN_OR_RETURN(v_.pretokenizer, PreTokenizer::create(v_.pre_config->regexes, true));
        }
        if (v_.type == VocabType::kSpm) build_spm_pairs(v_);
        find_newline();
        LC_TRY(read_special_ids());
        LC_TRY(read_flags());
        detect_special_by_text();
        mark_unused();
        build_eog();
        build_special_list();
        v_.pieces.resize(v_.tokens.size());
        for (size_t id = 0; id < v_.tokens.size(); ++id) v_.pieces[id] = render_piece(v_, static_cast<int32_t>(id));
        LC_TRY(apply_model_attrs());
        return Status();
    }

private:
    void warn(const std::string& message) {
        std::fprintf(stderr, "llama-crab: vocab: warning: %s\n", message.c_str());
        v_.warnings.push_back(message);
    }

    Result<std::optional<std::string>> str(std::string_view key) { return f_.get_string(key); }

    Status read_model() {
        LC_ASSIGN_OR_RETURN(auto model, str("tokenizer.ggml.model"));
        if (!model) return bad("'tokenizer.ggml.model' is missing");
        LC_ASSIGN_OR_RETURN(auto pre, str("tokenizer.ggml.pre"));
        v_.model = *model;
        v_.pre = pre.value_or("");
        if (v_.model == "llama") {
            v_.type = VocabType::kSpm;
            v_.bos = 1, v_.eos = 2, v_.unk = 0;
            v_.add_space_prefix = true;
            v_.clean_spaces = false;
            v_.add_bos = true;
        } else if (v_.model == "gpt2") {
            v_.type = VocabType::kBpe;
            v_.bos = 11, v_.eos = 11;
            v_.add_space_prefix = false;
            if (v_.pre.empty()) {
                warn("tokenizer.ggml.pre is missing, using the 'default' pre-tokenizer (generation quality may suffer)");
                v_.pre_config = &default_pretokenizer_config();
            } else {
                v_.pre_config = find_pretokenizer_config(v_.pre);
                if (!v_.pre_config) {
                    warn(fmt::format("unknown pre-tokenizer '{}', using 'default'", v_.pre));
                    v_.pre_config = &default_pretokenizer_config();
                }
            }
            const PreTokenizerConfig& c = *v_.pre_config;
            v_.clean_spaces = c.clean_spaces;
            v_.ignore_merges = c.ignore_merges;
            v_.add_bos = c.add_bos;
            v_.add_sep = c.add_sep;
            if (c.no_bos) v_.bos = -1;
        } else if (v_.model == "bert") {
            v_.type = VocabType::kWpm;
            v_.bos = 101, v_.unk = 100, v_.sep = 102, v_.pad = 0, v_.mask = 103;
            v_.add_space_prefix = false;
            v_.clean_spaces = true;
            v_.add_bos = true;
            v_.add_sep = true;
        } else {
            return make_error(ErrorCode::kUnsupported,
                              fmt::format("vocab: tokenizer model '{}' is not supported (llama, gpt2, bert)", v_.model));
        }
        LC_ASSIGN_OR_RETURN(auto prefix, f_.get_bool("tokenizer.ggml.add_space_prefix"));
        if (prefix) v_.add_space_prefix = *prefix;
        LC_ASSIGN_OR_RETURN(auto extra_ws, f_.get_bool("tokenizer.ggml.remove_extra_whitespaces"));
        if (extra_ws) v_.remove_extra_whitespaces = *extra_ws;
        return Status();
    }

    Status read_tokens() {
        const GgufValue* list = f_.find("tokenizer.ggml.tokens");
        if (!list) return bad("'tokenizer.ggml.tokens' is missing");
        LC_ASSIGN_OR_RETURN(const std::vector<GgufValue>* texts, string_array(list, "tokenizer.ggml.tokens"));
        const size_t n = texts->size();
        if (n == 0) return bad("'tokenizer.ggml.tokens' is empty");
        if (n > static_cast<size_t>(INT32_MAX)) return bad(fmt::format("{} tokens is too many", n));

        const std::vector<GgufValue>* scores = nullptr;
        if (const GgufValue* s = f_.find("tokenizer.ggml.scores")) {
            if (s->type != GgufType::ARRAY || (s->elem_type != GgufType::FLOAT32 && s->elem_type != GgufType::INT32)) {
                return bad("'tokenizer.ggml.scores' must be an array of float32 or int32");
            }
            if (s->array.size() < n) {
                return bad(fmt::format("'tokenizer.ggml.scores' has {} entries for {} tokens", s->array.size(), n));
            }
            scores = &s->array;
        }
        const std::vector<GgufValue>* types = nullptr;
        if (const GgufValue* t = f_.find("tokenizer.ggml.token_type")) {
            if (t->type != GgufType::ARRAY || t->elem_type != GgufType::INT32) {
                return bad("'tokenizer.ggml.token_type' must be an array of int32");
            }
            if (t->array.size() < n) {
                return bad(fmt::format("'tokenizer.ggml.token_type' has {} entries for {} tokens", t->array.size(), n));
            }
            types = &t->array;
        }

        v_.tokens.resize(n);
        for (size_t i = 0; i < n; ++i) {
            TokenData& td = v_.tokens[i];
            td.text = std::string((*texts)[i].str);
            if (td.text.empty()) {
                warn(fmt::format("empty token at index {}", i));
                td.text = "[EMPTY_" + std::to_string(i) + "]";
            }
            if (scores) {
                const GgufValue& s = (*scores)[i];
                td.score = s.type == GgufType::FLOAT32 ? static_cast<float>(s.f) : static_cast<float>(s.i);
            }
            if (types) {
                td.type = static_cast<int32_t>((*types)[i].i);
                td.attr = attr_from_type(td.type);
            }
            v_.max_token_len = std::max(v_.max_token_len, static_cast<int>(td.text.size()));
        }
        return Status();
    }

    Status read_merges() {
        const GgufValue* list = f_.find("tokenizer.ggml.merges");
        if (!list) return bad("'tokenizer.ggml.merges' is missing (needed by a gpt2 tokenizer)");
        LC_ASSIGN_OR_RETURN(const std::vector<GgufValue>* merges, string_array(list, "tokenizer.ggml.merges"));
        v_.merges.reserve(merges->size());
        for (const GgufValue& m : *merges) v_.merges.emplace_back(m.str);
        return Status();
    }

    // Built only once the vectors are final: the maps hold views into their strings.
    void build_maps() {
        v_.token_to_id.reserve(v_.tokens.size());
        for (size_t i = 0; i < v_.tokens.size(); ++i) {
            auto [it, inserted] = v_.token_to_id.emplace(v_.tokens[i].text, static_cast<int32_t>(i));
            if (!inserted) {
                // llama.cpp refuses such a file; we keep the first id so that a slightly broken vocabulary still works.
                warn(fmt::format("duplicate token '{}' has ids {} and {}; keeping {}", v_.tokens[i].text, it->second, i,
                                 it->second));
            }
        }
        v_.merge_rank.reserve(v_.merges.size());
        v_.merge_by_ids.reserve(v_.merges.size());
        for (size_t i = 0; i < v_.merges.size(); ++i) {
            const std::string& m = v_.merges[i];
            // Split at the first space after the first byte, as llama.cpp does; "left right" is then the lookup key.
            const size_t pos = m.find(' ', 1);
            if (pos == std::string::npos) continue;
            if (!v_.merge_rank.emplace(m, static_cast<int32_t>(i)).second) continue;
            const int32_t left = v_.find(std::string_view(m).substr(0, pos));
            const int32_t right = v_.find(std::string_view(m).substr(pos + 1));
            if (left < 0 || right < 0) continue;
            std::string merged = m.substr(0, pos);
            merged.append(m, pos + 1, std::string::npos);
            const int32_t result = v_.find(merged);
            v_.merge_by_ids.emplace((static_cast<uint64_t>(left) << 32) | static_cast<uint32_t>(right),
                                    VocabData::Merge{static_cast<int32_t>(i), result});
        }
        if (v_.type == VocabType::kBpe) {
            v_.char_token.assign(0x800, -1);
            for (uint32_t cpt = 0; cpt < 0x800; ++cpt) v_.char_token[cpt] = v_.find(unicode::to_utf8(cpt));
        }
        v_.byte_token.fill(-1);
        for (int b = 0; b < 256; ++b) {
            const std::string raw(1, static_cast<char>(b));
            if (v_.type == VocabType::kSpm) {
                const int32_t hex = v_.find(fmt::format("<0x{:02X}>", b));
                v_.byte_token[b] = hex >= 0 ? hex : v_.find(raw);
            } else if (v_.type == VocabType::kBpe) {
                v_.byte_token[b] = v_.find(raw);
            }
        }
    }

    void find_newline() {
        // Done before the special ids are read, as in llama.cpp, so the fallback is the family's default pad.
        if (v_.type == VocabType::kSpm) {
            v_.nl = v_.byte_token['\n'] >= 0 ? v_.byte_token['\n'] : v_.pad;
        } else if (v_.type == VocabType::kBpe) {
            std::vector<int32_t> ids;
            bpe_tokenize(v_, "\n", ids);
            v_.nl = ids.empty() ? v_.pad : ids[0];
        } else {
            v_.nl = v_.pad;
        }
    }

    Status read_special_ids() {
        struct Key {
            const char* name;
            int32_t* id;
        };
        const Key keys[] = {
            {"tokenizer.ggml.bos_token_id", &v_.bos},         {"tokenizer.ggml.eos_token_id", &v_.eos},
            {"tokenizer.ggml.eot_token_id", &v_.eot},         {"tokenizer.ggml.eom_token_id", &v_.eom},
            {"tokenizer.ggml.unknown_token_id", &v_.unk},     {"tokenizer.ggml.seperator_token_id", &v_.sep},
            {"tokenizer.ggml.padding_token_id", &v_.pad},     {"tokenizer.ggml.mask_token_id", &v_.mask},
            {"tokenizer.ggml.fim_pre_token_id", &v_.fim_pre}, {"tokenizer.ggml.fim_suf_token_id", &v_.fim_suf},
            {"tokenizer.ggml.fim_mid_token_id", &v_.fim_mid}, {"tokenizer.ggml.fim_pad_token_id", &v_.fim_pad},
            {"tokenizer.ggml.fim_rep_token_id", &v_.fim_rep}, {"tokenizer.ggml.fim_sep_token_id", &v_.fim_sep},
            // deprecated spellings of the FIM ids
            {"tokenizer.ggml.prefix_token_id", &v_.fim_pre},  {"tokenizer.ggml.suffix_token_id", &v_.fim_suf},
            {"tokenizer.ggml.middle_token_id", &v_.fim_mid},
        };
        const int64_t n = static_cast<int64_t>(v_.tokens.size());
        for (const Key& k : keys) {
            if (*k.id >= n) {
                warn(fmt::format("default special token '{}' = {} is out of the vocabulary, disabling it", k.name, *k.id));
                *k.id = -1;
            }
            LC_ASSIGN_OR_RETURN(auto value, f_.get_int(k.name));
            if (!value) continue;
            if (*value < 0 || *value >= n) {
                warn(fmt::format("bad special token '{}' = {}, keeping {}", k.name, *value, *k.id));
            } else {
                *k.id = static_cast<int32_t>(*value);
            }
        }
        return Status();
    }

    Status read_flags() {
        LC_ASSIGN_OR_RETURN(auto add_bos, f_.get_bool("tokenizer.ggml.add_bos_token"));
        LC_ASSIGN_OR_RETURN(auto add_eos, f_.get_bool("tokenizer.ggml.add_eos_token"));
        LC_ASSIGN_OR_RETURN(auto add_sep, f_.get_bool("tokenizer.ggml.add_sep_token"));
        if (add_bos) v_.add_bos = *add_bos;
        if (add_eos) v_.add_eos = *add_eos;
        if (add_sep) v_.add_sep = *add_sep;
        if (v_.add_bos && v_.bos < 0) return bad("add_bos_token is true, but bos_token_id is not set");
        if (v_.add_eos && v_.eos < 0) return bad("add_eos_token is true, but eos_token_id is not set");
        if (v_.add_sep && v_.sep < 0) return bad("add_sep_token is true, but seperator_token_id is not set");
        LC_ASSIGN_OR_RETURN(auto lowercase, f_.get_bool("tokenizer.ggml.normalizer.lowercase"));
        if (lowercase) v_.lowercase = *lowercase;
        v_.strip_accents = v_.lowercase;
        LC_ASSIGN_OR_RETURN(auto strip, f_.get_bool("tokenizer.ggml.normalizer.strip_accents"));
        if (strip) v_.strip_accents = *strip;
        return Status();
    }

    void force_control(int32_t id) {
        uint32_t& attr = v_.tokens[id].attr;
        if ((attr & kTokenAttrControl) == 0) {
            warn(fmt::format("control-looking token {} '{}' was not control-type; treating it as control", id,
                             v_.tokens[id].text));
            attr |= kTokenAttrControl;
        }
    }

    // Models that do not name their EOT / FIM tokens get them from the token text. llama.cpp takes the first match
    // in hash-map order; we take the candidates in the listed order, which is deterministic.
    void detect_special_by_text() {
        struct Rule {
            int32_t* id;
            std::vector<std::string_view> texts;
        };
        const Rule rules[] = {
            {&v_.eot, {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>",
                       "<EOT>", "_<EOT>", "[EOT]", "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>",
                       "<end_of_utterance>"}},
            {&v_.eom, {"<|eom_id|>"}},
            {&v_.fim_pre, {"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>",
                           "<\xef\xbd\x9c" "fim\xe2\x96\x81" "begin\xef\xbd\x9c>", "<PRE>", "\xe2\x96\x81<PRE>",
                           "<|code_prefix|>", "<|prefix|>"}},
            {&v_.fim_suf, {"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>",
                           "<\xef\xbd\x9c" "fim\xe2\x96\x81hole\xef\xbd\x9c>", "<SUF>", "\xe2\x96\x81<SUF>",
                           "<|code_suffix|>", "<|suffix|>"}},
            {&v_.fim_mid, {"<|fim_middle|>", "<fim-middle>", "<fim_middle>",
                           "<\xef\xbd\x9c" "fim\xe2\x96\x81" "end\xef\xbd\x9c>", "<MID>", "\xe2\x96\x81<MID>",
                           "<|code_middle|>", "<|middle|>"}},
            {&v_.fim_pad, {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"}},
            {&v_.fim_rep, {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"}},
            {&v_.fim_sep, {"<|file_sep|>"}},
        };
        for (const Rule& r : rules) {
            if (*r.id >= 0) continue;
            for (std::string_view text : r.texts) {
                const int32_t id = v_.find(text);
                if (id < 0) continue;
                *r.id = id;
                force_control(id);
                break;
            }
        }
    }

    void mark_unused() {
        for (TokenData& t : v_.tokens) {
            if ((t.attr & kTokenAttrControl) && t.text.find("unused") != std::string::npos) t.attr |= kTokenAttrUnused;
        }
    }

    void build_eog() {
        std::set<int32_t> eog;
        for (int32_t id : {v_.fim_pad, v_.fim_rep, v_.fim_sep}) {
            if (id >= 0) eog.insert(id);
        }
        static const std::string_view kEogTexts[] = {
            "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
            "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
            "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
            "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>", "[e~[",
        };
        for (std::string_view text : kEogTexts) {
            const int32_t id = v_.find(text);
            if (id < 0) continue;
            eog.insert(id);
            force_control(id);
        }
        // gpt-oss: these are always rendered.
        for (std::string_view text : {"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"}) {
            const int32_t id = v_.find(text);
            if (id >= 0) v_.tokens[id].attr = kTokenAttrUserDefined;
        }
        for (int32_t id : {v_.eos, v_.eot, v_.eom}) {
            if (id >= 0) eog.insert(id);
        }
        // o200k_harmony / solar-open: "<|end|>" ends a message, not the generation.
        auto has = [&](std::string_view text) {
            const int32_t id = v_.find(text);
            return id >= 0 && eog.count(id) ? id : -1;
        };
        const int32_t end_id = has("<|end|>");
        const bool has_call = has("<|call|>") >= 0 || has("<|calls|>") >= 0;
        if (end_id >= 0 && ((has("<|return|>") >= 0 && has_call) || (has_call && has("<|flush|>") >= 0))) {
            eog.erase(end_id);
            v_.tokens[end_id].attr = kTokenAttrUserDefined;
        }
        // gemma4 / paddleocr: "</s>" is not an end of generation there.
        const int32_t s_id = has("</s>");
        if (s_id >= 0 && has("<|tool_response>") >= 0) {
            eog.erase(s_id);
            v_.tokens[s_id].attr = kTokenAttrNormal;
        }
        v_.eog_sorted.assign(eog.begin(), eog.end());
        v_.eog.insert(eog.begin(), eog.end());
    }

    void build_special_list() {
        for (size_t id = 0; id < v_.tokens.size(); ++id) {
            if (v_.tokens[id].attr & (kTokenAttrControl | kTokenAttrUserDefined | kTokenAttrUnknown)) {
                v_.special_tokens.push_back(static_cast<int32_t>(id));
            }
        }
        // Longest first. llama.cpp's sort is not stable; ties keep id order here.
        std::stable_sort(v_.special_tokens.begin(), v_.special_tokens.end(), [&](int32_t a, int32_t b) {
            return v_.tokens[a].text.size() > v_.tokens[b].text.size();
        });
    }

    // Per-model attribute fixes that llama.cpp applies after loading (the files do not carry lstrip/rstrip).
    Status apply_model_attrs() {
        LC_ASSIGN_OR_RETURN(auto name_opt, str("general.name"));
        LC_ASSIGN_OR_RETURN(auto arch_opt, str("general.architecture"));
        std::string name = name_opt.value_or("");
        const std::string arch = arch_opt.value_or("");
        std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
        auto contains_any = [](const std::string& s, std::initializer_list<std::string_view> parts) {
            return std::any_of(parts.begin(), parts.end(), [&](std::string_view p) { return s.find(p) != std::string::npos; });
        };
        auto set_attr = [&](std::string_view text, uint32_t bit, bool on) {
            const int32_t id = v_.find(text);
            if (id < 0) return;
            uint32_t& a = v_.tokens[id].attr;
            a = on ? (a | bit) : (a & ~bit);
        };
        if (contains_any(v_.pre, {"jina-v2-de", "jina-v2-es", "jina-v2-code"}) ||
            contains_any(arch, {"nomic-bert-moe", "jina-bert-v3"})) {
            set_attr("<mask>", kTokenAttrLstrip, true);
        } else if (contains_any(name, {"phi-3", "phi3"})) {
            for (int32_t id : v_.special_tokens) v_.tokens[id].attr |= kTokenAttrRstrip;
            set_attr("</s>", kTokenAttrRstrip, true);
            for (std::string_view t : {"<unk>", "<s>", "<|endoftext|>"}) set_attr(t, kTokenAttrRstrip, false);
        } else if (contains_any(name, {"modern-bert"})) {
            set_attr("[MASK]", kTokenAttrLstrip, true);
        }
        return Status();
    }

    const GgufFile& f_;
    VocabData& v_;
};

}  // namespace

Status load_vocab_data(const GgufFile& f, VocabData& v) {
    Loader loader(f, v);
    return loader.run();
}

}  // namespace llama_crab::vocab_detail
