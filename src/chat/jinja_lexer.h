// Tokenizer for the Jinja2 subset, with the whitespace rules of the rendering environment the chat
// templates are written for: trim_blocks=True, lstrip_blocks=True, `-`/`+` markers, newline
// normalisation and one trailing newline dropped (keep_trailing_newline=False).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace llama_crab::jinja {

enum class TokenType : uint8_t {
    kData,        // template text (already whitespace-controlled)
    kVarBegin,    // {{
    kVarEnd,      // }}
    kBlockBegin,  // {%
    kBlockEnd,    // %}
    kName,
    kString,      // text holds the decoded value
    kInteger,     // ival
    kFloat,       // fval
    kOperator,    // text holds the operator: + - / // * ** % ~ [ ] ( ) { } == != > >= < <= = . : | , ;
    kEof,
};

struct Token {
    TokenType type = TokenType::kEof;
    std::string text;
    int64_t ival = 0;
    double fval = 0;
    int line = 1;
};

const char* token_type_name(TokenType t);
// A short description for error messages, as Jinja's describe_token.
std::string describe_token(const Token& t);

// Tokenizes a whole template (valid UTF-8). Throws JinjaError(kSyntax) with the line on failure.
std::vector<Token> tokenize(std::string_view source);

}  // namespace llama_crab::jinja
