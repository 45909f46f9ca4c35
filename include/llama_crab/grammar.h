// Structured output: GBNF grammars, JSON schema -> grammar, and the grammar sampler stage.
//
// Grammars use llama.cpp's GBNF syntax (docs/structured-output.md). A GrammarSampler removes every candidate token
// whose text cannot continue the grammar and, once the grammar can end, allows the end-of-generation tokens (and
// only then). It works on Unicode code points: a token ending in the middle of a UTF-8 character is allowed when
// some character it can become is allowed, and the next token must finish it.
#pragma once

#include "llama_crab/error.h"
#include "llama_crab/sampling.h"

#include <memory>
#include <string>
#include <vector>

namespace llama_crab {

// Parses and checks GBNF text (rules, a `root` rule, no left recursion); the error names the line and column.
Status validate_grammar(const std::string& gbnf);

// The generic JSON grammar (OpenAI `json_object` mode): any JSON value, whitespace around it allowed.
const std::string& json_grammar();

// Converts a JSON schema (JSON text) into GBNF. Supported: see docs/structured-output.md. An unsupported keyword
// or value is an error naming it and its JSON pointer, e.g. "json schema: /properties/a: 'not' is not supported".
Result<std::string> json_schema_to_grammar(const std::string& schema_json);

// What a request asks for: at most one of a GBNF grammar and a JSON schema. Returns the grammar text to use
// (empty when neither is set). For the server: response_format json_object -> json_grammar(), json_schema ->
// json_schema_to_grammar(schema).
Result<std::string> resolve_grammar(const std::string& grammar, const std::string& json_schema);

class GrammarSampler final : public Sampler {
public:
    // piece[t] is token t's text as generated (empty for control tokens, which are never allowed); eog lists the
    // end-of-generation tokens.
    static Result<std::unique_ptr<GrammarSampler>> create(const std::string& gbnf, std::vector<std::string> pieces,
                                                          std::vector<Token> eog);
    ~GrammarSampler() override;

    const char* name() const override { return "grammar"; }
    void apply(Candidates& c) override;
    void accept(Token token) override;
    void reset() override;
    std::unique_ptr<Sampler> clone() const override;

    // Keep only the first k allowed candidates in logit order (what a later top-k would keep), checking the
    // candidates from the most likely down and stopping there. 0 checks every candidate (the default).
    void set_top_k(int32_t k) { top_k_ = k; }
    // The grammar can end here (an end-of-generation token is allowed).
    bool can_end() const;
    // Whether token t may come next.
    bool allows(Token t);

private:
    struct State;
    explicit GrammarSampler(std::unique_ptr<State> state);
    const std::vector<uint64_t>* cached_mask();  // the allowed tokens of the current state, if known
    const std::vector<uint64_t>& compute_mask();
    std::unique_ptr<State> s_;
    int32_t top_k_ = 0;
};

}  // namespace llama_crab
