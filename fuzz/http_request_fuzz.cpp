// libFuzzer target: arbitrary bytes as what a client sends on one connection, fed to the HTTP request parser in
// pieces whose sizes come from the input. Parsing must never crash, hang or throw; a body never passes the limit;
// every refusal is a 4xx/5xx with a reason.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "http_parser.h"

using llama_crab::server::HttpLimits;
using llama_crab::server::RequestParser;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1) return 0;
    const size_t step = 1 + data[0] % 64;  // the first byte chooses how the rest is split
    const HttpLimits limits{512, 256};
    RequestParser p(limits);
    std::string in;
    for (size_t i = 1; i < size; i += step) {
        in.append(reinterpret_cast<const char*>(data) + i, std::min(step, size - i));
        for (int requests = 0; requests < 64; ++requests) {  // pipelined requests in what arrived
            const auto s = p.feed(in);
            if (s == RequestParser::State::kError) {
                if (p.error_status() < 400 || p.error_status() > 505 || p.error_message().empty()) std::abort();
                return 0;
            }
            if (s != RequestParser::State::kComplete) break;
            if (p.take_request().body.size() > limits.max_body_bytes) std::abort();
        }
        if (in.size() > limits.max_header_bytes + 1024 + step) std::abort();  // unparsed bytes stay bounded
    }
    return 0;
}
