// The grammar sampler stage: masks the candidates whose text cannot continue the grammar.
//
// Cost: a candidate is checked by running its bytes through the matcher, whose transitions are memoised (a lazy
// DFA over the visited states), so a check is a few hash lookups. On top of that:
//   - the first character of every token is decoded once (at creation); per step, whether an ASCII first
//     character can follow is decided once and rejects most tokens without running them;
//   - the set of allowed tokens of a state (a bitmask over the vocabulary) is cached by state, so a state seen
//     before (inside a string, between members...) costs one pass over the candidates;
//   - with set_top_k(k) and no cached mask, the 256 most likely candidates are checked first; when k of them
//     are allowed, checking stops there: the result is exactly what masking everything and then keeping the top k
//     would give. Otherwise the state's mask is computed (and cached).
#include "llama_crab/grammar.h"
#include "sampling/grammar_internal.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <unordered_map>

namespace llama_crab {

namespace {

constexpr uint32_t kNoFirst = UINT32_MAX;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr size_t kMaxCachedMaskBytes = 8u << 20;  // per sampler: 2048 masks of a 32k vocabulary, 430 of 152k
constexpr size_t kLazyHead = 256;         // candidates checked before a full mask, when a top-k follows

struct Vocabulary {
    std::vector<std::string> pieces;
    std::vector<uint32_t> first;  // the first code point when it is ASCII, else kNoFirst
    std::vector<bool> eog;
};

}  // namespace

struct GrammarSampler::State {
    std::shared_ptr<const grammar::Grammar> grammar;
    std::shared_ptr<const Vocabulary> vocab;
    grammar::Matcher matcher;
    int8_t ascii_ok[128];  // per step: -1 unknown, 0 no, 1 yes
    std::unordered_map<uint64_t, std::vector<uint64_t>> masks;  // state key -> allowed tokens
    uint64_t masks_epoch = 0;
    std::vector<uint32_t> hits;  // scratch: allowed candidates in the lazy head

    State(std::shared_ptr<const grammar::Grammar> g, std::shared_ptr<const Vocabulary> v)
        : grammar(std::move(g)), vocab(std::move(v)), matcher(grammar) {
        forget();
    }
    void forget() { std::fill(std::begin(ascii_ok), std::end(ascii_ok), int8_t{-1}); }
};

Status validate_grammar(const std::string& gbnf) {
    auto g = grammar::parse_grammar(gbnf);
    if (!g.ok()) return g.error();
    return {};
}

Result<std::string> resolve_grammar(const std::string& grammar_text, const std::string& json_schema) {
    if (!grammar_text.empty() && !json_schema.empty()) {
        return make_error(ErrorCode::kInvalidArgument, "grammar and json_schema are both set; give one of them");
    }
    if (!json_schema.empty()) return json_schema_to_grammar(json_schema);
    if (!grammar_text.empty()) LC_TRY(validate_grammar(grammar_text));
    return grammar_text;
}

Result<std::unique_ptr<GrammarSampler>> GrammarSampler::create(const std::string& gbnf, std::vector<std::string> pieces,
                                                               std::vector<Token> eog) {
    auto g = grammar::parse_grammar(gbnf);
    if (!g.ok()) return g.error();
    auto v = std::make_shared<Vocabulary>();
    v->first.resize(pieces.size(), kNoFirst);
    v->eog.resize(pieces.size(), false);
    for (size_t t = 0; t < pieces.size(); ++t) {
        if (!pieces[t].empty() && (unsigned char)pieces[t][0] < 0x80) v->first[t] = (unsigned char)pieces[t][0];
    }
    for (Token t : eog) {
        if (t < 0 || (size_t)t >= pieces.size()) {
            return make_error(ErrorCode::kInvalidArgument,
                              fmt::format("grammar sampler: end-of-generation token {} is outside the vocabulary of {}",
                                          t, pieces.size()));
        }
        v->eog[(size_t)t] = true;
    }
    v->pieces = std::move(pieces);
    auto gp = std::make_shared<const grammar::Grammar>(std::move(g).value());
    auto state = std::make_unique<State>(gp, v);
    if (state->matcher.overflowed()) {
        return make_error(ErrorCode::kInvalidArgument,
                          fmt::format("grammar: too ambiguous: its start expands to more than {} parser positions "
                                      "(nested repetitions of things that can be empty?)",
                                      grammar::kMaxExpansion));
    }
    return std::unique_ptr<GrammarSampler>(new GrammarSampler(std::move(state)));
}

GrammarSampler::GrammarSampler(std::unique_ptr<State> state) : s_(std::move(state)) {}
GrammarSampler::~GrammarSampler() = default;

bool GrammarSampler::can_end() const { return s_->matcher.can_end(); }

bool GrammarSampler::allows(Token t) {
    const Vocabulary& v = *s_->vocab;
    if (t < 0 || (size_t)t >= v.pieces.size()) return false;
    if (v.eog[(size_t)t]) return s_->matcher.can_end();
    const std::string& piece = v.pieces[(size_t)t];
    if (piece.empty()) return false;
    const uint32_t first = v.first[(size_t)t];
    if (first != kNoFirst && s_->matcher.partial().need == 0) {
        int8_t& ok = s_->ascii_ok[first];
        if (ok < 0) ok = s_->matcher.can_accept_code_point(first) ? 1 : 0;
        if (ok == 0) return false;
        if (piece.size() == 1) return true;
    }
    return s_->matcher.can_accept(piece);
}

const std::vector<uint64_t>* GrammarSampler::cached_mask() {
    State& st = *s_;
    if (st.masks_epoch != st.matcher.epoch()) {
        st.masks.clear();
        st.masks_epoch = st.matcher.epoch();
    }
    const grammar::Utf8Partial& p = st.matcher.partial();
    const uint64_t key = ((uint64_t)(uint32_t)st.matcher.state() << 20) | (p.value << 2) | p.need;
    auto it = st.masks.find(key);
    return it == st.masks.end() ? nullptr : &it->second;
}

const std::vector<uint64_t>& GrammarSampler::compute_mask() {
    State& st = *s_;
    const size_t n = st.vocab->pieces.size();
    std::vector<uint64_t> mask((n + 63) / 64, 0);
    for (size_t t = 0; t < n; ++t) {
        if (allows((Token)t)) mask[t >> 6] |= uint64_t{1} << (t & 63);
    }
    if ((st.masks.size() + 1) * mask.size() * sizeof(uint64_t) > kMaxCachedMaskBytes) st.masks.clear();
    const grammar::Utf8Partial& p = st.matcher.partial();
    const uint64_t key = ((uint64_t)(uint32_t)st.matcher.state() << 20) | (p.value << 2) | p.need;
    return st.masks[key] = std::move(mask);
}

void GrammarSampler::apply(Candidates& c) {
    if (c.empty()) return;
    const size_t n_vocab = s_->vocab->pieces.size();
    const std::vector<uint64_t>* mask = cached_mask();
    auto allowed = [&](Token t) {
        return (size_t)t < n_vocab && ((*mask)[(size_t)t >> 6] >> ((size_t)t & 63)) & 1u;
    };
    size_t kept = 0;
    TokenData* d = c.data();
    const size_t n = c.size();
    if (top_k_ > 0) {
        const size_t k = (size_t)top_k_;
        if (mask == nullptr) {  // first visit of this state: try the most likely candidates before a full mask
            const size_t head = std::min(n, kLazyHead);
            std::partial_sort(d, d + head, d + n, candidate_before);
            c.set_identity_layout(false);
            std::vector<uint32_t>& hits = s_->hits;
            hits.clear();
            for (size_t i = 0; i < head && hits.size() < k; ++i) {
                if (d[i].logit != kNegInf && allows(d[i].id)) hits.push_back((uint32_t)i);
            }
            if (hits.size() < k && head < n) {
                mask = &compute_mask();  // the head was not enough: decide every candidate
            } else {
                for (uint32_t i : hits) d[kept++] = d[i];  // i >= kept: nothing unread is overwritten
            }
        }
        if (mask != nullptr) {
            for (size_t i = 0; i < n; ++i) {
                if (d[i].logit != kNegInf && allowed(d[i].id)) d[kept++] = d[i];
            }
            const size_t keep = std::min(kept, k);
            std::partial_sort(d, d + keep, d + kept, candidate_before);
            kept = keep;
        }
        c.set_identity_layout(false);
        if (kept > 0) {
            c.truncate(kept);
            c.set_sorted(true);
            return;
        }
    } else {
        if (mask == nullptr) mask = &compute_mask();
        for (size_t i = 0; i < n; ++i) {
            if (d[i].logit == kNegInf) continue;
            if (allowed(d[i].id)) {
                ++kept;
            } else {
                d[i].logit = kNegInf;
            }
        }
        if (kept > 0) return;
    }
    // Nothing the grammar allows survived (a vocabulary without the needed characters, or the end-of-generation
    // tokens masked while the grammar can only end): end the generation rather than emit text off the grammar.
    const Vocabulary& v = *s_->vocab;
    size_t w = 0;
    for (size_t t = 0; t < v.eog.size(); ++t) {
        if (v.eog[t]) c[w++] = TokenData{(Token)t, 0.0f, 0.0f};
        if (w == c.size()) break;
    }
    if (w == 0) return;
    c.truncate(w);
    c.set_identity_layout(false);
    c.set_sorted(false);
}

void GrammarSampler::accept(Token token) {
    const Vocabulary& v = *s_->vocab;
    if (token < 0 || (size_t)token >= v.pieces.size() || v.eog[(size_t)token]) return;
    s_->forget();
    (void)s_->matcher.accept(v.pieces[(size_t)token]);  // a token forced off the grammar leaves the state as it was
}

void GrammarSampler::reset() {
    s_->forget();
    s_->matcher.reset();
}

std::unique_ptr<Sampler> GrammarSampler::clone() const {
    auto copy = std::unique_ptr<GrammarSampler>(new GrammarSampler(std::make_unique<State>(*s_)));
    copy->top_k_ = top_k_;
    return copy;
}

}  // namespace llama_crab
