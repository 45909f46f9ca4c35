// ChatSession: history rendering, prefix reuse through the completion path, context shift, save and load.
#include "llama_crab/chat_session.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "llama_crab/text.h"
#include "util/atomic_file.h"
#include "util/sha256.h"

namespace llama_crab {
namespace {

using nlohmann::json;

// Session file: magic, version, JSON (history and options) with its SHA-256, then the KV state in the session
// format (which carries its own fingerprint, layout and checksum). All integers little-endian.
//   "LCCHATS\0" | u32 version | u32 reserved | u64 json_len | 64 hex chars sha256(json) | json | u64 state_len | state
constexpr char kMagic[8] = {'L', 'C', 'C', 'H', 'A', 'T', 'S', '\0'};
constexpr uint32_t kVersion = 1;
constexpr size_t kHeaderBytes = 8 + 4 + 4 + 8 + 64;
constexpr size_t kMaxJsonBytes = size_t{1} << 30;

void put_u32(std::vector<uint8_t>& out, uint32_t v) {
    for (int i = 0; i < 4; ++i) out.push_back((uint8_t)(v >> (8 * i)));
}
void put_u64(std::vector<uint8_t>& out, uint64_t v) {
    for (int i = 0; i < 8; ++i) out.push_back((uint8_t)(v >> (8 * i)));
}
uint64_t get_u64(const uint8_t* p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v |= (uint64_t)p[i] << (8 * i);
    return v;
}
uint32_t get_u32(const uint8_t* p) {
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v |= (uint32_t)p[i] << (8 * i);
    return v;
}

// JSON strings must be UTF-8, but a reply cut by a token limit can end mid-character: such text is stored
// losslessly as "<key>_hex" (its bytes in hex) instead of "<key>", so the history renders to the same tokens
// after a load and the KV cache still matches it.
void put_text(json& j, const char* key, const std::string& text) {
    if (is_valid_utf8(text)) {
        j[key] = text;
        return;
    }
    static constexpr char kHex[] = "0123456789abcdef";
    std::string hex;
    hex.reserve(text.size() * 2);
    for (unsigned char c : text) {
        hex += kHex[c >> 4];
        hex += kHex[c & 15];
    }
    j[std::string(key) + "_hex"] = std::move(hex);
}

// Throws (caught by load) when the field is missing or the hex is malformed.
std::string get_text(const json& j, const char* key) {
    const std::string hex_key = std::string(key) + "_hex";
    if (!j.contains(hex_key)) return j.at(key).get<std::string>();
    const std::string hex = j.at(hex_key).get<std::string>();
    auto nibble = [&](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        throw std::runtime_error(fmt::format("{} holds a character that is not a hex digit", hex_key));
    };
    if (hex.size() % 2 != 0) throw std::runtime_error(fmt::format("{} has an odd number of hex digits", hex_key));
    std::string out(hex.size() / 2, '\0');
    for (size_t i = 0; i < out.size(); ++i) out[i] = (char)(nibble(hex[2 * i]) << 4 | nibble(hex[2 * i + 1]));
    return out;
}

Error bad_file(const std::string& path, const std::string& what) {
    return Error{ErrorCode::kInvalidFormat, fmt::format("chat session '{}': {}", path, what)};
}

}  // namespace

ChatSession::ChatSession(Llama& llama, ChatSessionOptions options) : llama_(&llama), options_(std::move(options)) {
    clear();
}

void ChatSession::clear() {
    messages_.clear();
    if (!options_.system_prompt.empty()) messages_.push_back({"system", options_.system_prompt});
}

namespace {

// Where the history may be cut when old turns are dropped, oldest first: cuts[k] is the number of messages after
// the system prompt that go when k+1 units go. A unit is a user+assistant pair (so strict templates still
// alternate), else one message; the last message (the new user message) always stays.
std::vector<size_t> drop_cuts(const std::vector<ChatMessage>& history, size_t first_turn) {
    std::vector<size_t> cuts;
    size_t i = first_turn;
    while (i + 1 < history.size()) {
        const bool pair = history[i].role == "user" && i + 2 < history.size() && history[i + 1].role == "assistant";
        i += pair ? 2 : 1;
        cuts.push_back(i - first_turn);
    }
    return cuts;
}

std::vector<ChatMessage> without_turns(const std::vector<ChatMessage>& history, size_t first_turn, size_t n_dropped) {
    std::vector<ChatMessage> kept(history.begin(), history.begin() + (ptrdiff_t)first_turn);
    kept.insert(kept.end(), history.begin() + (ptrdiff_t)(first_turn + n_dropped), history.end());
    return kept;
}

// A first guess at how many drop units (minus one: an index into cuts) make the prompt fit: the oldest units
// whose share of the history's bytes (plus some per message for the template's markup) covers the excess tokens.
int64_t estimate_units(const std::vector<ChatMessage>& history, size_t first_turn, const std::vector<size_t>& cuts, size_t n_tokens,
                       size_t excess) {
    auto weight = [](const ChatMessage& m) { return (double)(m.content.size() + m.role.size() + 16); };
    double total = 0.0;
    for (const auto& m : history) total += weight(m);
    const double need = total * (double)excess / (double)std::max<size_t>(n_tokens, 1);
    double dropped = 0.0;
    size_t done = 0;
    for (size_t k = 0; k < cuts.size(); ++k) {
        for (; done < cuts[k]; ++done) dropped += weight(history[first_turn + done]);
        if (dropped >= need) return (int64_t)k;
    }
    return (int64_t)cuts.size() - 1;
}

}  // namespace

// Finds the fewest oldest turns to drop (dropping more never makes the prompt longer). Each try renders and
// tokenizes the kept history, so the search starts from an estimate by bytes and gallops from it: a few
// renderings a turn, not one per dropped turn (which made a 12,000-message turn take seconds).
Result<int32_t> ChatSession::shift_to_fit(std::vector<Token>& tokens, int32_t reserve, ChatTurn& turn,
                                          std::vector<ChatMessage>& history) {
    const int32_t n_ctx = llama_->context().n_ctx();
    auto fits = [&](const std::vector<Token>& t) { return (int64_t)t.size() + reserve <= n_ctx; };
    if (fits(tokens)) return 0;
    const size_t first_turn = (!history.empty() && history[0].role == "system") ? 1 : 0;
    const std::vector<size_t> cuts = drop_cuts(history, first_turn);
    const int64_t n_units = (int64_t)cuts.size();
    std::vector<Token> fit_tokens, last_tried = tokens;
    // Renders the history without its k+1 oldest units; fit_tokens always holds the rendering at `hi`.
    auto try_units = [&](int64_t k) -> Result<bool> {
        LC_ASSIGN_OR_RETURN(std::vector<Token> t, llama_->tokenize_chat(without_turns(history, first_turn, cuts[(size_t)k]), true,
                                                                         options_.template_name));
        const bool ok = fits(t);
        (ok ? fit_tokens : last_tried) = std::move(t);
        return ok;
    };
    // Invariant: dropping lo+1 units does not fit (lo = -1: dropping none, checked above), dropping hi+1 does.
    int64_t lo = -1, hi = -1;
    if (n_units > 0) {
        const int64_t guess = estimate_units(history, first_turn, cuts, tokens.size(), tokens.size() + reserve - n_ctx);
        LC_ASSIGN_OR_RETURN(bool guess_fits, try_units(guess));
        if (guess_fits) {
            hi = guess;
            for (int64_t step = 1; hi - step > lo; step *= 2) {
                LC_ASSIGN_OR_RETURN(bool f, try_units(hi - step));
                if (!f) {
                    lo = hi - step;
                    break;
                }
                hi -= step;
            }
        } else {
            lo = guess;
            for (int64_t step = 1; hi < 0 && lo < n_units - 1; step *= 2) {
                const int64_t probe = std::min(lo + step, n_units - 1);
                LC_ASSIGN_OR_RETURN(bool f, try_units(probe));
                (f ? hi : lo) = probe;
            }
        }
    }
    if (hi < 0) {
        return make_error(ErrorCode::kInvalidArgument,
                          fmt::format("chat: the message needs {} prompt tokens plus {} for the reply, more than the "
                                      "context's {} even after dropping every earlier turn",
                                      last_tried.size(), reserve, n_ctx));
    }
    while (hi - lo > 1) {
        const int64_t mid = lo + (hi - lo) / 2;
        LC_ASSIGN_OR_RETURN(bool f, try_units(mid));
        (f ? hi : lo) = mid;
    }
    tokens = std::move(fit_tokens);
    const size_t dropped = cuts[(size_t)hi];
    std::vector<ChatMessage> kept = without_turns(history, first_turn, dropped);

    // Where the dropped turns sit in the KV cache: after the common prefix with the new prompt (the system part),
    // up to the end of the old history's rendering of those turns.
    const std::vector<Token> kv = llama_->kv_tokens();
    const size_t begin = common_prefix(kv, tokens);
    std::vector<ChatMessage> through_dropped(history.begin(), history.begin() + (ptrdiff_t)(first_turn + dropped));
    size_t end = begin;
    if (auto old = llama_->tokenize_chat(through_dropped, false, options_.template_name); old.ok()) {
        end = std::max(begin, common_prefix(kv, *old));
    }
    // Without a clean boundary (a template that cannot render a partial history) nothing is shifted: the
    // completion path then recomputes from the first difference, which is always correct.
    if (end > begin && end <= kv.size()) {
        LC_TRY(llama_->kv_shift((int32_t)begin, (int32_t)end));
        turn.n_shifted_tokens = (int32_t)(end - begin);
    }
    turn.context_shifted = true;
    turn.n_dropped_messages = (int32_t)dropped;
    messages_.erase(messages_.begin() + (ptrdiff_t)first_turn, messages_.begin() + (ptrdiff_t)(first_turn + dropped));
    history = std::move(kept);
    return (int32_t)dropped;
}

Result<ChatTurn> ChatSession::send(const std::string& user_message, const ChatOptions& options, const StreamCallback& callback) {
    ChatTurn turn;
    std::vector<ChatMessage> history = messages_;
    history.push_back({"user", user_message});
    // The session's template wins; a session without one adopts the first one a turn asks for.
    if (!options_.template_name && options.template_name) options_.template_name = options.template_name;
    LC_ASSIGN_OR_RETURN(std::vector<Token> tokens, llama_->tokenize_chat(history, true, options_.template_name));

    const int32_t n_ctx = llama_->context().n_ctx();
    int32_t reserve = options.max_tokens > 0 ? options.max_tokens : (options_.reply_reserve > 0 ? options_.reply_reserve : n_ctx / 4);
    // At most half the context: a reply limit as large as the context (chat's -n 512 on a 512-token model)
    // would leave no room for any prompt; the reply then ends when the context is full.
    reserve = std::clamp(reserve, 1, std::max(1, n_ctx / 2));
    LC_TRY(shift_to_fit(tokens, reserve, turn, history));

    LC_ASSIGN_OR_RETURN(turn.completion, llama_->create_completion_tokens(tokens, options, callback));
    messages_.push_back({"user", user_message});
    messages_.push_back({"assistant", turn.completion.text});
    return turn;
}

Status ChatSession::save(const std::string& path) const {
    json j;
    put_text(j, "system_prompt", options_.system_prompt);
    if (options_.template_name) put_text(j, "template_name", *options_.template_name);
    j["reply_reserve"] = options_.reply_reserve;
    json msgs = json::array();
    for (const auto& m : messages_) {
        json mj = json::object();
        put_text(mj, "role", m.role);
        put_text(mj, "content", m.content);
        msgs.push_back(std::move(mj));
    }
    j["messages"] = std::move(msgs);
    const std::string text = j.dump();  // every string in it is valid UTF-8 (put_text)
    const std::vector<uint8_t> state = llama_->state_get();

    std::vector<uint8_t> out;
    out.reserve(kHeaderBytes + text.size() + 8 + state.size());
    out.insert(out.end(), kMagic, kMagic + 8);
    put_u32(out, kVersion);
    put_u32(out, 0);
    put_u64(out, text.size());
    const std::string digest = sha256_hex(text.data(), text.size());
    out.insert(out.end(), digest.begin(), digest.end());
    out.insert(out.end(), text.begin(), text.end());
    put_u64(out, state.size());
    out.insert(out.end(), state.begin(), state.end());
    if (auto st = write_file_atomic(path, out.data(), out.size()); !st.ok()) {
        return Error{st.error().code, fmt::format("chat session '{}' not saved: {}", path, st.error().message)};
    }
    return {};
}

Status ChatSession::load(const std::string& path) {
    LC_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, read_file(path));
    if (bytes.size() < kHeaderBytes) return bad_file(path, fmt::format("{} bytes is shorter than the {}-byte header", bytes.size(), kHeaderBytes));
    if (std::memcmp(bytes.data(), kMagic, 8) != 0) return bad_file(path, "bad magic (not a llama-crab chat session file)");
    const uint32_t version = get_u32(bytes.data() + 8);
    if (version != kVersion) {
        return Error{ErrorCode::kUnsupported, fmt::format("chat session '{}': version {} (this build reads {})", path, version, kVersion)};
    }
    const uint64_t json_len = get_u64(bytes.data() + 16);
    if (json_len > kMaxJsonBytes || json_len + 8 > bytes.size() - kHeaderBytes) {
        return bad_file(path, fmt::format("history length {} at offset 16 runs past the end of the file", json_len));
    }
    const char* json_begin = (const char*)bytes.data() + kHeaderBytes;
    const std::string digest((const char*)bytes.data() + 24, 64);
    if (sha256_hex(json_begin, json_len) != digest) {
        return Error{ErrorCode::kChecksum, fmt::format("chat session '{}': the history's SHA-256 does not match", path)};
    }
    const size_t state_off = kHeaderBytes + json_len + 8;
    const uint64_t state_len = get_u64(bytes.data() + kHeaderBytes + json_len);
    if (state_len != bytes.size() - state_off) {
        return bad_file(path, fmt::format("state length {} at offset {} does not match the {} bytes that follow",
                                          state_len, state_off - 8, bytes.size() - state_off));
    }

    ChatSessionOptions opts;
    std::vector<ChatMessage> msgs;
    try {
        const json j = json::parse(json_begin, json_begin + json_len);
        opts.system_prompt = get_text(j, "system_prompt");
        if (j.contains("template_name") || j.contains("template_name_hex")) opts.template_name = get_text(j, "template_name");
        opts.reply_reserve = j.at("reply_reserve").get<int32_t>();
        for (const auto& m : j.at("messages")) msgs.push_back({get_text(m, "role"), get_text(m, "content")});
    } catch (const std::exception& e) {
        return bad_file(path, fmt::format("bad history JSON: {}", e.what()));
    }
    std::vector<uint8_t> state(bytes.begin() + (ptrdiff_t)state_off, bytes.end());
    // Everything parsed: only now touch the KV cache (state_set leaves it unchanged when it fails).
    auto n = llama_->state_set(state);
    if (!n.ok()) return Error{n.error().code, fmt::format("chat session '{}': {}", path, n.error().message)};
    options_ = std::move(opts);
    messages_ = std::move(msgs);
    return {};
}

}  // namespace llama_crab
