// The incremental HTTP request parser: limits hold in every transfer encoding, whatever way the bytes are split.
#include "http_parser.h"

#include <gtest/gtest.h>

namespace llama_crab::server {
namespace {

using State = RequestParser::State;

// Feeds `text` in pieces of `step` bytes; returns the final state (the parser stops at the first complete request).
State feed_in_steps(RequestParser& p, std::string& in, const std::string& text, size_t step) {
    State s = State::kIdle;
    for (size_t i = 0; i < text.size() && s != State::kComplete && s != State::kError; i += step) {
        in.append(text, i, step);
        s = p.feed(in);
    }
    return s;
}

TEST(HttpParserTest, ContentLengthBodyAndQueryWhateverTheSplit) {
    const std::string text = "POST /slots/3?action=save&x=a%20b HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n{\"a\": true}";
    for (size_t step : {1, 2, 7, 64, 4096}) {
        RequestParser p({});
        std::string in;
        ASSERT_EQ(feed_in_steps(p, in, text, step), State::kComplete) << step;
        EXPECT_TRUE(p.keep_alive());
        httplib::Request r = p.take_request();
        EXPECT_EQ(r.method, "POST");
        EXPECT_EQ(r.path, "/slots/3");
        EXPECT_EQ(r.get_param_value("action"), "save");
        EXPECT_EQ(r.get_param_value("x"), "a b");
        EXPECT_EQ(r.get_header_value("host"), "h");
        EXPECT_EQ(r.body, "{\"a\": true}");
        EXPECT_EQ(p.state(), State::kIdle);
    }
}

TEST(HttpParserTest, ChunkedBodyWithExtensionsAndTrailers) {
    const std::string text =
        "POST /v1/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-T: 1\r\n\r\n";
    for (size_t step : {1, 3, 1000}) {
        RequestParser p({});
        std::string in;
        ASSERT_EQ(feed_in_steps(p, in, text, step), State::kComplete) << step;
        EXPECT_EQ(p.take_request().body, "hello world");
    }
}

TEST(HttpParserTest, PipelinedRequestsStayInTheBuffer) {
    RequestParser p({});
    std::string in = "GET /health HTTP/1.1\r\n\r\nGET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n";
    ASSERT_EQ(p.feed(in), State::kComplete);
    EXPECT_EQ(p.take_request().path, "/health");
    ASSERT_EQ(p.feed(in), State::kComplete);
    EXPECT_FALSE(p.keep_alive());
    EXPECT_EQ(p.take_request().path, "/metrics");
    EXPECT_TRUE(in.empty());
}

TEST(HttpParserTest, ChunkedBodyAboveTheLimitFailsAsSoonAsAChunkPassesIt) {
    RequestParser p({16 << 10, 1000});
    std::string in = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
    State s = p.feed(in);
    size_t chunks = 0;
    for (; chunks < 100 && s != State::kError; ++chunks) {
        in += "190\r\n" + std::string(400, 'x') + "\r\n";  // 400 bytes a chunk
        s = p.feed(in);
    }
    EXPECT_EQ(s, State::kError);
    EXPECT_EQ(p.error_status(), 413);
    EXPECT_EQ(chunks, 3u) << "the third chunk passes 1000 bytes";
    // A huge declared chunk fails before its data arrives.
    RequestParser q({16 << 10, 1000});
    in = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffff\r\n";
    EXPECT_EQ(q.feed(in), State::kError);
    EXPECT_EQ(q.error_status(), 413);
}

TEST(HttpParserTest, RefusesWithTheRightStatus) {
    struct Case {
        std::string text;
        int status;
    };
    const Case cases[] = {
        {"POST / HTTP/1.1\r\nContent-Length: 1001\r\n\r\n", 413},
        {"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400},  // request smuggling
        {"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400},
        {"POST / HTTP/1.1\r\nContent-Length: -5\r\n\r\n", 400},
        {"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501},
        {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400},
        {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY", 400},
        {"GET / HTTP/2.0\r\n\r\n", 505},
        {"GET /\r\n\r\n", 400},
        {"get / HTTP/1.1\r\n\r\n", 400},
        {"GET nothing HTTP/1.1\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nX: a\r\n folded\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nX: " + std::string(20000, 'a') + "\r\n\r\n", 431},
        {"GET / HTTP/1.1\r\nX: " + std::string(20000, 'a'), 431},  // no end of headers yet: fails without waiting
    };
    for (const Case& c : cases) {
        RequestParser p({16 << 10, 1000});
        std::string in = c.text;
        EXPECT_EQ(p.feed(in), State::kError) << c.text.substr(0, 80);
        EXPECT_EQ(p.error_status(), c.status) << c.text.substr(0, 80) << ": " << p.error_message();
        EXPECT_FALSE(p.error_message().empty());
    }
}

TEST(HttpParserTest, ExpectContinueAndHttp10) {
    RequestParser p({});
    std::string in = "POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n";
    EXPECT_EQ(p.feed(in), State::kBody);
    EXPECT_TRUE(p.expects_continue());
    in = "abc";
    EXPECT_EQ(p.feed(in), State::kComplete);
    p.take_request();
    in = "GET / HTTP/1.0\r\n\r\n";
    EXPECT_EQ(p.feed(in), State::kComplete);
    EXPECT_FALSE(p.keep_alive());
}

}  // namespace
}  // namespace llama_crab::server
