// An incremental HTTP/1.1 request parser with limits enforced while the bytes arrive: the request line and headers
// are bounded by max_header_bytes (431), the body by max_body_bytes in every transfer encoding (413: a declared
// Content-Length at once, a chunked body as soon as its chunks pass the limit). It never holds more than the limits
// plus the bytes of one read. The event loop (http_server.cpp) feeds it; the fuzzer can too.
//
//   RequestParser p(limits);
//   p.feed(buffer);                       // consumes what it used from the front of buffer
//   if (p.state() == RequestParser::State::kComplete) handle(p.take_request());
#pragma once

#include <httplib.h>

#include <cstddef>
#include <string>

namespace llama_crab::server {

struct HttpLimits {
    size_t max_header_bytes = 16 << 10;  // request line + headers (and chunked trailers)
    size_t max_body_bytes = 8 << 20;
};

class RequestParser {
public:
    enum class State { kIdle, kHeaders, kBody, kChunkSize, kChunkData, kChunkEnd, kTrailers, kComplete, kError };

    explicit RequestParser(HttpLimits limits) : limits_(limits) {}

    // Parses as much of `in` as it can and erases what it consumed. Stops at kComplete (bytes of a pipelined next
    // request stay in `in`) and at kError.
    State feed(std::string& in);

    State state() const { return state_; }
    bool started() const { return state_ != State::kIdle; }
    bool headers_done() const { return state_ != State::kIdle && state_ != State::kHeaders; }
    // The client sent `Expect: 100-continue` and waits for a go-ahead before sending its body.
    bool expects_continue() const { return expect_continue_; }
    // After kError: the HTTP status to answer (400, 413, 431, 501, 505) and why.
    int error_status() const { return error_status_; }
    const std::string& error_message() const { return error_message_; }
    // After kComplete: whether the connection may carry another request.
    bool keep_alive() const { return keep_alive_; }
    // The parsed request (method, target, path, params, headers, version, body); resets the parser for the next one.
    httplib::Request take_request();
    // What was parsed so far (method and path once the headers are in), for error responses.
    const httplib::Request& partial() const { return req_; }

private:
    bool fail(int status, std::string message);
    bool parse_head(const std::string& head);
    bool parse_request_line(const std::string& line);
    bool parse_header_line(const std::string& line);
    bool choose_body();
    size_t step(const std::string& in, size_t pos);
    size_t step_chunk_size(const std::string& in, size_t pos);
    size_t step_trailers(const std::string& in, size_t pos);

    HttpLimits limits_;
    State state_ = State::kIdle;
    httplib::Request req_;
    size_t scan_from_ = 0;      // where to resume looking for the end of the headers
    size_t body_left_ = 0;      // Content-Length bytes still to come, or the current chunk's
    size_t trailer_bytes_ = 0;
    bool expect_continue_ = false;
    bool keep_alive_ = true;
    int error_status_ = 0;
    std::string error_message_;
};

}  // namespace llama_crab::server
