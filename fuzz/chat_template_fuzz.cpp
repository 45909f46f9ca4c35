// libFuzzer target: arbitrary bytes as a chat template source, parsed and rendered with a small fixed message
// list. Must never crash, hang or leak; failures must come back as errors. The real templates make a good
// seed corpus:  ./chat_template_fuzz -max_len=20000 ../shared/testdata/templates/
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "chat/jinja.h"

namespace {

using namespace llama_crab::jinja;

Value message(const char* role, const char* content) {
    DictPtr d = make_dict();
    d->set(Value::string("role"), Value::string(role));
    d->set(Value::string("content"), Value::string(content));
    return Value::dict(d);
}

const RenderContext& context() {
    static const RenderContext ctx = [] {
        RenderContext c;
        c.vars = {
            {"messages", Value::list({message("system", "You are helpful."), message("user", "Hi \"there\"\n\xc3\xa9"),
                                      message("assistant", "<think>x</think>Hello!"), message("user", "Bye")})},
            {"tools", Value::none()},
            {"documents", Value::none()},
            {"add_generation_prompt", Value::boolean(true)},
            {"bos_token", Value::string("<s>")},
            {"eos_token", Value::string("</s>")},
        };
        c.strftime_now = [](const std::string&) { return std::string("27 Nov 2026"); };
        // Tighter limits than the defaults keep each input fast.
        c.limits.max_output_bytes = 1 << 20;
        c.limits.max_string_bytes = 1 << 20;
        c.limits.max_total_bytes = 16 << 20;
        c.limits.max_steps = 300000;
        c.limits.max_loop_iterations = 100000;
        c.limits.max_call_depth = 64;
        return c;
    }();
    return ctx;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view source(reinterpret_cast<const char*>(data), size);
    auto ast = parse(source);
    if (!ast.ok()) {
        if (ast.error().message.empty()) std::abort();
        return 0;
    }
    auto out = render(**ast, context());
    if (out.ok()) {
        if (out->size() > context().limits.max_output_bytes) std::abort();
    } else if (out.error().message.empty()) {
        std::abort();
    }
    return 0;
}
