// Invariants: a state consumes bytes only when it can use them (the head is consumed whole, once its end is seen);
// req_.body never exceeds max_body_bytes; unconsumed head bytes never exceed max_header_bytes before failing with 431.
#include "http_parser.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cstring>

namespace llama_crab::server {
namespace {

constexpr size_t kMaxChunkLine = 1024;  // chunk size with extensions
constexpr size_t kMaxHeaderLines = 100;
constexpr size_t kMaxMethod = 16;

std::string lower_trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    std::string out(s);
    for (char& c : out) c = (char)std::tolower((unsigned char)c);
    return out;
}

bool is_token_char(unsigned char c) { return c > 32 && c < 127 && !std::strchr("()<>@,;:\\\"/[]?={}", c); }

// Comma-separated tokens of every value of header `name`, lower case.
std::vector<std::string> header_tokens(const httplib::Headers& headers, const char* name) {
    std::vector<std::string> out;
    auto [b, e] = headers.equal_range(name);
    for (auto it = b; it != e; ++it) {
        std::string_view v = it->second;
        size_t start = 0;
        while (start <= v.size()) {
            size_t comma = v.find(',', start);
            if (comma == std::string_view::npos) comma = v.size();
            std::string t = lower_trim(v.substr(start, comma - start));
            if (!t.empty()) out.push_back(std::move(t));
            start = comma + 1;
        }
    }
    return out;
}

}  // namespace

bool RequestParser::fail(int status, std::string message) {
    state_ = State::kError;
    error_status_ = status;
    error_message_ = std::move(message);
    return false;
}

RequestParser::State RequestParser::feed(std::string& in) {
    size_t pos = 0;
    // Each step consumes bytes or changes state; a step that does neither needs more input.
    for (size_t guard = 0; guard < in.size() + 16; ++guard) {
        if (state_ == State::kComplete || state_ == State::kError) break;
        const State before = state_;
        const size_t used = step(in, pos);
        pos += used;
        if (used == 0 && state_ == before) break;
    }
    in.erase(0, pos);
    return state_;
}

size_t RequestParser::step(const std::string& in, size_t pos) {
    const size_t avail = in.size() - pos;
    switch (state_) {
        case State::kIdle:
            if (avail == 0) return 0;
            state_ = State::kHeaders;
            scan_from_ = 0;
            return 0;
        case State::kHeaders: {
            // Empty lines before a request line are allowed (RFC 9112 2.2).
            if (scan_from_ == 0 && avail > 0 && (in[pos] == '\r' || in[pos] == '\n')) return 1;
            const size_t end = in.find("\r\n\r\n", pos + scan_from_);
            if (end == std::string::npos) {
                if (avail > limits_.max_header_bytes) {
                    fail(431, fmt::format("the request headers exceed the limit of {} bytes", limits_.max_header_bytes));
                    return 0;
                }
                scan_from_ = avail > 3 ? avail - 3 : 0;
                return 0;
            }
            const size_t head_len = end - pos;
            if (head_len + 4 > limits_.max_header_bytes) {
                fail(431, fmt::format("the request headers exceed the limit of {} bytes", limits_.max_header_bytes));
                return 0;
            }
            if (parse_head(in.substr(pos, head_len))) choose_body();
            return head_len + 4;
        }
        case State::kBody:
        case State::kChunkData: {
            const size_t n = std::min(body_left_, avail);
            req_.body.append(in, pos, n);
            body_left_ -= n;
            if (body_left_ == 0) state_ = state_ == State::kBody ? State::kComplete : State::kChunkEnd;
            return n;
        }
        case State::kChunkSize: return step_chunk_size(in, pos);
        case State::kChunkEnd:
            if (avail < 2) return 0;
            if (in.compare(pos, 2, "\r\n") != 0) {
                fail(400, "malformed chunked body: a chunk does not end with CRLF");
                return 0;
            }
            state_ = State::kChunkSize;
            return 2;
        case State::kTrailers: return step_trailers(in, pos);
        case State::kComplete:
        case State::kError: return 0;
    }
    return 0;
}

size_t RequestParser::step_chunk_size(const std::string& in, size_t pos) {
    const size_t end = in.find("\r\n", pos);
    if (end == std::string::npos) {
        if (in.size() - pos > kMaxChunkLine) fail(400, "malformed chunked body: the chunk size line is too long");
        return 0;
    }
    if (end - pos > kMaxChunkLine) {
        fail(400, "malformed chunked body: the chunk size line is too long");
        return 0;
    }
    std::string_view line(in.data() + pos, end - pos);
    if (size_t semi = line.find(';'); semi != std::string_view::npos) line = line.substr(0, semi);  // extensions
    while (!line.empty() && (line.back() == ' ' || line.back() == '\t')) line.remove_suffix(1);
    if (line.empty() || line.size() > 15 || !std::all_of(line.begin(), line.end(), [](char c) { return std::isxdigit((unsigned char)c); })) {
        fail(400, fmt::format("malformed chunked body: bad chunk size '{}'", std::string(line.substr(0, 32))));
        return 0;
    }
    const size_t size = std::stoull(std::string(line), nullptr, 16);
    if (size == 0) {
        state_ = State::kTrailers;
    } else if (size > limits_.max_body_bytes - req_.body.size()) {
        fail(413, fmt::format("the request body exceeds the limit of {} bytes", limits_.max_body_bytes));
        return 0;
    } else {
        body_left_ = size;
        state_ = State::kChunkData;
    }
    return end + 2 - pos;
}

size_t RequestParser::step_trailers(const std::string& in, size_t pos) {
    const size_t end = in.find("\r\n", pos);
    const size_t len = end == std::string::npos ? in.size() - pos : end - pos;
    if (trailer_bytes_ + len > limits_.max_header_bytes) {
        fail(431, fmt::format("the request trailers exceed the limit of {} bytes", limits_.max_header_bytes));
        return 0;
    }
    if (end == std::string::npos) return 0;
    if (len == 0) state_ = State::kComplete;
    trailer_bytes_ += len + 2;  // trailer fields are read and ignored
    return len + 2;
}

bool RequestParser::parse_head(const std::string& head) {
    size_t start = 0, lines = 0;
    while (start <= head.size()) {
        size_t end = head.find("\r\n", start);
        if (end == std::string::npos) end = head.size();
        const std::string line = head.substr(start, end - start);
        if (line.find('\0') != std::string::npos || line.find('\n') != std::string::npos || line.find('\r') != std::string::npos) {
            return fail(400, "malformed request: stray control characters in the request head");
        }
        if (lines == 0 ? !parse_request_line(line) : !parse_header_line(line)) return false;
        if (++lines > kMaxHeaderLines + 1) return fail(431, fmt::format("more than {} request headers", kMaxHeaderLines));
        start = end + 2;
    }
    return true;
}

bool RequestParser::parse_request_line(const std::string& line) {
    const size_t sp1 = line.find(' ');
    const size_t sp2 = sp1 == std::string::npos ? sp1 : line.find(' ', sp1 + 1);
    if (sp2 == std::string::npos || line.find(' ', sp2 + 1) != std::string::npos) {
        return fail(400, "malformed request line: expected 'METHOD /target HTTP/1.1'");
    }
    req_.method = line.substr(0, sp1);
    req_.target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    req_.version = line.substr(sp2 + 1);
    if (req_.method.empty() || req_.method.size() > kMaxMethod ||
        !std::all_of(req_.method.begin(), req_.method.end(), [](char c) { return c >= 'A' && c <= 'Z'; })) {
        return fail(400, "malformed request line: bad method");
    }
    if (req_.target.empty() || req_.target[0] != '/') return fail(400, "malformed request line: the target must start with '/'");
    if (req_.version == "HTTP/1.0") {
        keep_alive_ = false;
    } else if (req_.version != "HTTP/1.1") {
        return fail(req_.version.rfind("HTTP/", 0) == 0 ? 505 : 400, "unsupported HTTP version; this server speaks HTTP/1.1");
    }
    const size_t q = req_.target.find('?');
    req_.path = httplib::detail::decode_url(req_.target.substr(0, q), false);
    if (q != std::string::npos) httplib::detail::parse_query_text(req_.target.substr(q + 1), req_.params);
    return true;
}

bool RequestParser::parse_header_line(const std::string& line) {
    const size_t colon = line.find(':');
    if (colon == std::string::npos || colon == 0) return fail(400, "malformed header line: expected 'Name: value'");
    const std::string name = line.substr(0, colon);
    if (!std::all_of(name.begin(), name.end(), [](char c) { return is_token_char((unsigned char)c); })) {
        return fail(400, "malformed header name (no spaces before the colon, no line folding)");
    }
    std::string_view value(line);
    value.remove_prefix(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    req_.headers.emplace(name, std::string(value));
    return true;
}

bool RequestParser::choose_body() {
    const auto te = header_tokens(req_.headers, "Transfer-Encoding");
    const size_t n_length = req_.headers.count("Content-Length");
    for (const auto& t : header_tokens(req_.headers, "Connection")) {
        if (t == "close") keep_alive_ = false;
        if (t == "keep-alive") keep_alive_ = true;
    }
    if (!te.empty()) {
        if (n_length > 0) return fail(400, "a request may not carry both Transfer-Encoding and Content-Length");
        if (te.size() != 1 || te[0] != "chunked") {
            return fail(501, fmt::format("unsupported Transfer-Encoding '{}'; only chunked is accepted", req_.get_header_value("Transfer-Encoding")));
        }
        state_ = State::kChunkSize;
    } else if (n_length > 0) {
        const std::string v = lower_trim(req_.get_header_value("Content-Length"));
        for (size_t i = 1; i < n_length; ++i) {
            if (lower_trim(req_.get_header_value("Content-Length", i)) != v) return fail(400, "conflicting Content-Length headers");
        }
        if (v.empty() || v.size() > 18 || !std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; })) {
            return fail(400, "malformed Content-Length");
        }
        const size_t length = std::stoull(v);
        if (length > limits_.max_body_bytes) return fail(413, fmt::format("the request body exceeds the limit of {} bytes", limits_.max_body_bytes));
        body_left_ = length;
        state_ = length > 0 ? State::kBody : State::kComplete;
    } else {
        state_ = State::kComplete;
    }
    expect_continue_ = state_ != State::kComplete && lower_trim(req_.get_header_value("Expect")) == "100-continue";
    return true;
}

httplib::Request RequestParser::take_request() {
    httplib::Request out = std::move(req_);
    req_ = httplib::Request();
    state_ = State::kIdle;
    scan_from_ = body_left_ = trailer_bytes_ = 0;
    expect_continue_ = false;
    keep_alive_ = true;
    error_status_ = 0;
    error_message_.clear();
    return out;
}

}  // namespace llama_crab::server
