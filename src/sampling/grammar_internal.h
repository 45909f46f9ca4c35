// The GBNF grammar engine (internal): the compiled grammar and the pushdown matcher over Unicode code points.
//
// A compiled Grammar is one flat array of elements. Every alternative of every rule is a run of elements ended by
// kEnd; a rule lists where its alternatives start. Repetitions (* + ? {m,n}) and groups are compiled into helper
// rules, so the matcher knows only three kinds of element: a character class, a rule reference and the end of an
// alternative.
//
// The matcher keeps a set of stacks. A stack is a chain of positions: its top is the character class to match next,
// the positions below are where to continue once the rule above them ends. Stacks are interned nodes
// (position, parent) in an arena, so stacks sharing a suffix share its nodes and equal stacks have equal ids: the
// set never holds a stack twice, whatever the grammar's ambiguity. The compiler refuses left recursion (a rule that
// can reach itself without consuming a character), so expanding rule references always terminates.
#pragma once

#include "llama_crab/error.h"

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace llama_crab::grammar {

enum class ElemKind : uint8_t { kEnd, kChars, kRule };

struct Elem {
    ElemKind kind = ElemKind::kEnd;
    uint32_t arg = 0;  // kChars: index into classes; kRule: rule id
};

struct CharClass {
    bool negated = false;
    std::vector<std::pair<uint32_t, uint32_t>> ranges;  // inclusive
    uint64_t ascii[2] = {0, 0};                          // the answer for code points < 128, after negation

    void finish();  // fills ascii from ranges and negated
    bool matches(uint32_t cp) const {
        if (cp < 128) return (ascii[cp >> 6] >> (cp & 63)) & 1u;
        bool in = false;
        for (const auto& r : ranges) in = in || (cp >= r.first && cp <= r.second);
        return in != negated;
    }
    // True when some code point in [lo, hi] may match (exact for plain classes, conservative for negated ones).
    bool may_match_range(uint32_t lo, uint32_t hi) const;
};

struct Rule {
    std::string name;
    std::vector<uint32_t> alts;  // start positions in Grammar::elems
};

struct Grammar {
    std::vector<Elem> elems;
    std::vector<CharClass> classes;
    std::vector<Rule> rules;
    uint32_t root = 0;
};

// Limits on untrusted grammar text.
inline constexpr size_t kMaxGrammarBytes = 4u << 20;
inline constexpr uint32_t kMaxRepetition = 10000;     // m and n of {m,n}
inline constexpr size_t kMaxElements = 4u << 20;      // after expanding repetitions
inline constexpr int kMaxNesting = 200;               // nested groups
inline constexpr size_t kMaxExpansion = 1u << 18;     // (position, parent) items expanded per code point

// Parses GBNF text (llama.cpp's syntax). Errors name the line and column.
Result<Grammar> parse_grammar(std::string_view text);

// A set of stacks: the interned top nodes, and whether some stack is empty (the grammar can end here).
struct StackSet {
    std::vector<int32_t> tops;
    bool can_end = false;
    bool empty() const { return tops.empty() && !can_end; }
};

// An incomplete UTF-8 character: its bits so far and how many continuation bytes it still needs.
struct Utf8Partial {
    uint32_t value = 0;
    uint8_t need = 0;
    uint8_t len = 0;  // the whole character's length in bytes
};

// The matcher's stack sets are interned too (a state id per distinct set) and the transitions between them are
// memoised: (state, code point) -> state. Checking a token is then mostly hash lookups, a lazily built DFA over the
// states the generation actually visits.
class Matcher {
public:
    explicit Matcher(std::shared_ptr<const Grammar> grammar);

    void reset();
    // The current state.
    const StackSet& stacks() const { return sets_[(size_t)cur_]; }
    int32_t state() const { return cur_; }
    // Changes whenever state ids are renumbered (the tables are dropped when they grow too large).
    uint64_t epoch() const { return epoch_; }
    const Utf8Partial& partial() const { return partial_; }
    // The grammar can end now (no stack left to continue, or an empty one among them, and no half character).
    bool can_end() const { return stacks().can_end && partial_.need == 0; }
    // Whether these bytes can follow from the current state (a trailing half character counts if some code point
    // it can become is allowed). Does not change the state.
    bool can_accept(std::string_view bytes);
    // Consumes the bytes; false (state unchanged) when they cannot follow.
    bool accept(std::string_view bytes);
    // Whether the code point cp can follow the current state (no half character pending).
    bool can_accept_code_point(uint32_t cp) { return step(cur_, cp) >= 0; }
    size_t arena_size() const { return nodes_.size(); }
    // True once some expansion hit kMaxExpansion (the stacks beyond it were dropped: the grammar is too ambiguous).
    bool overflowed() const { return overflowed_; }

private:
    struct Node {
        uint32_t pos;
        int32_t parent;
    };
    bool run(std::string_view bytes, Utf8Partial& partial, int32_t& state);
    int32_t step(int32_t state, uint32_t cp);  // -1: cp cannot follow
    int32_t intern_set(StackSet& set);         // sorts the tops; -1 for an empty set
    void advance(const StackSet& in, uint32_t cp, StackSet& out);
    void expand();  // drains work_ into out_ (see advance)
    int32_t intern(uint32_t pos, int32_t parent);
    bool mark(uint32_t pos, int32_t parent);  // false when (pos, parent) was already seen this expansion
    void compact();

    std::shared_ptr<const Grammar> g_;
    std::vector<Node> nodes_;
    std::vector<int32_t> index_;  // open addressing over nodes_, -1 empty
    std::vector<uint64_t> seen_keys_;
    std::vector<uint32_t> seen_gen_;
    uint32_t gen_ = 0;
    size_t seen_count_ = 0;
    std::vector<std::pair<uint32_t, int32_t>> work_;
    StackSet* out_ = nullptr;
    std::vector<StackSet> sets_;
    std::unordered_map<std::string, int32_t> set_index_;
    std::unordered_map<uint64_t, int32_t> transitions_;  // (state, code point >= 128) -> state
    std::vector<int32_t> ascii_next_;                    // state * 128 + code point -> state; -2 not yet known
    int32_t cur_ = -1;
    uint64_t epoch_ = 0;
    bool overflowed_ = false;
    Utf8Partial partial_;
    StackSet tmp_;
};

}  // namespace llama_crab::grammar
