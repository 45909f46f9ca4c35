#include "llama/stop_matcher.h"

#include <algorithm>

namespace llama_crab {

StopMatcher::StopMatcher(std::vector<std::string> stops) {
    for (auto& s : stops) {
        if (!s.empty()) stops_.push_back(std::move(s));
    }
}

StopMatcher::Step StopMatcher::push(const std::string& text) {
    Step step;
    pending_ += text;
    // The earliest complete stop string wins.
    size_t best = std::string::npos;
    for (const auto& s : stops_) {
        const size_t at = pending_.find(s);
        if (at != std::string::npos && at < best) {
            best = at;
            step.hit = s;
        }
    }
    if (step.hit) {
        step.emit = pending_.substr(0, best);
        pending_.clear();
        text_ += step.emit;
        return step;
    }
    // Hold back the longest suffix that is a prefix of some stop string.
    size_t hold = 0;
    for (const auto& s : stops_) {
        const size_t max_len = std::min(s.size() - 1, pending_.size());
        for (size_t len = max_len; len > hold; --len) {
            if (pending_.compare(pending_.size() - len, len, s, 0, len) == 0) {
                hold = len;
                break;
            }
        }
    }
    step.emit = pending_.substr(0, pending_.size() - hold);
    pending_.erase(0, pending_.size() - hold);
    text_ += step.emit;
    return step;
}

std::string StopMatcher::flush() {
    std::string out = std::move(pending_);
    pending_.clear();
    text_ += out;
    return out;
}

}  // namespace llama_crab
