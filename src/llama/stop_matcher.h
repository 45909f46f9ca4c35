// Stop strings over streamed text: text is released only once no stop string can still start inside it, so a
// stop string split across tokens is never emitted.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace llama_crab {

class StopMatcher {
public:
    explicit StopMatcher(std::vector<std::string> stops);

    struct Step {
        std::string emit;               // text safe to show now
        std::optional<std::string> hit;  // the stop string found (generation ends; the text before it is in emit)
    };
    // Adds generated text (whole UTF-8 characters) and returns what can be released.
    Step push(const std::string& text);
    // Generation ended without a stop string: releases everything held back.
    std::string flush();
    const std::string& text() const { return text_; }  // everything released so far

private:
    std::vector<std::string> stops_;
    std::string pending_;  // held back: might be the start of a stop string
    std::string text_;
};

}  // namespace llama_crab
