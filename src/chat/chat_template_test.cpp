// The public ChatTemplate API: from_source, render options, built-in formats and their detection.
#include <gtest/gtest.h>

#include <thread>

#include "llama_crab/chat.h"

namespace llama_crab {
namespace {

const std::vector<ChatMessage> kConversation = {
    {"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello!"}, {"user", "Bye"}};

std::string render(const ChatTemplate& t, const std::vector<ChatMessage>& msgs, bool agp, std::string bos = "<s>",
                   std::string eos = "</s>") {
    ChatRenderOptions o;
    o.add_generation_prompt = agp;
    o.bos_token = std::move(bos);
    o.eos_token = std::move(eos);
    auto r = t.render(msgs, o);
    EXPECT_TRUE(r.ok()) << r.error().message;
    return r.ok() ? *r : "";
}

TEST(ChatTemplate, FromSourceRendersVariables) {
    auto t = ChatTemplate::from_source(
        "{{ bos_token }}{% for m in messages %}[{{ m.role }}:{{ m['content'] }}]{% endfor %}"
        "{% if add_generation_prompt %}>{% endif %}{{ eos_token }}{{ tools is none }}{{ documents is none }}");
    ASSERT_TRUE(t.ok()) << t.error().message;
    EXPECT_EQ(render(*t, {{"user", "a"}, {"assistant", "b"}}, true, "B", "E"), "B[user:a][assistant:b]>ETrueTrue");
    EXPECT_EQ(render(*t, {}, false, "", ""), "TrueTrue");
    EXPECT_EQ(t->builtin_name(), "");
}

TEST(ChatTemplate, SyntaxErrorsAreReportedAtParse) {
    auto t = ChatTemplate::from_source("{% for m in messages %}\n{{ m.role }\n");
    ASSERT_FALSE(t.ok());
    EXPECT_EQ(t.error().code, ErrorCode::kInvalidFormat);
    EXPECT_NE(t.error().message.find("chat template: line 2"), std::string::npos) << t.error().message;
}

TEST(ChatTemplate, RaiseExceptionMessageIsKept) {
    auto t = ChatTemplate::from_source(
        "{% if messages[0].role == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}");
    ASSERT_TRUE(t.ok());
    auto r = t->render({{"system", "x"}}, {});
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("TemplateError: System role not supported"), std::string::npos)
        << r.error().message;
}

TEST(ChatTemplate, StrftimeNowIsInjectable) {
    auto t = ChatTemplate::from_source("{{ strftime_now('%d %b %Y') }}");
    ASSERT_TRUE(t.ok());
    ChatRenderOptions o;
    o.strftime_now = [](const std::string& fmt) { return std::string("fixed:") + fmt; };
    EXPECT_EQ(*t->render({}, o), "fixed:%d %b %Y");
    auto real = t->render({}, {});  // the local clock
    ASSERT_TRUE(real.ok());
    EXPECT_EQ(real->size(), 11u) << *real;
}

TEST(ChatTemplate, InvalidUtf8InputsAreRejected) {
    auto t = ChatTemplate::from_source("{{ messages[0].content }}");
    ASSERT_TRUE(t.ok());
    auto r = t->render({{"user", "bad \xff"}}, {});
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("messages[0].content"), std::string::npos);
    EXPECT_FALSE(ChatTemplate::from_source("\xc3(").ok());
}

TEST(ChatTemplate, ConcurrentRendersShareOneTemplate) {
    auto t = ChatTemplate::builtin("chatml");
    ASSERT_TRUE(t.ok());
    std::vector<std::thread> threads;
    std::vector<std::string> outs(4);
    for (int i = 0; i < 4; ++i) {
        threads.emplace_back([&, i] {
            for (int k = 0; k < 50; ++k) outs[static_cast<size_t>(i)] = render(*t, kConversation, true);
        });
    }
    for (auto& th : threads) th.join();
    for (const auto& o : outs) EXPECT_EQ(o, outs[0]);
}

TEST(ChatTemplate, BuiltinNames) {
    EXPECT_EQ(ChatTemplate::builtin_names(),
              (std::vector<std::string>{"chatml", "llama2", "llama3", "mistral", "zephyr", "gemma", "phi3", "deepseek"}));
    for (const auto& name : ChatTemplate::builtin_names()) {
        auto t = ChatTemplate::builtin(name);
        ASSERT_TRUE(t.ok()) << name << ": " << t.error().message;
        EXPECT_EQ(t->builtin_name(), name);
    }
    auto bad = ChatTemplate::builtin("nope");
    ASSERT_FALSE(bad.ok());
    EXPECT_NE(bad.error().message.find("chatml"), std::string::npos);
}

TEST(ChatTemplate, BuiltinFormats) {
    auto r = [](const char* name, bool agp, const char* bos, const char* eos) {
        auto t = ChatTemplate::builtin(name);
        EXPECT_TRUE(t.ok());
        return t.ok() ? render(*t, kConversation, agp, bos, eos) : "";
    };
    EXPECT_EQ(r("chatml", true, "", ""),
              "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
              "Hello!<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n");
    EXPECT_EQ(r("llama2", true, "<s>", "</s>"),
              "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello! </s><s>[INST] Bye [/INST]");
    EXPECT_EQ(r("llama3", true, "<|begin_of_text|>", "<|eot_id|>"),
              "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
              "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
              "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>"
              "<|start_header_id|>user<|end_header_id|>\n\nBye<|eot_id|>"
              "<|start_header_id|>assistant<|end_header_id|>\n\n");
    EXPECT_EQ(r("mistral", true, "<s>", "</s>"), "<s>[INST] Be brief.\n\nHi [/INST]Hello!</s>[INST] Bye [/INST]");
    EXPECT_EQ(r("zephyr", true, "<s>", "</s>"),
              "<|system|>\nBe brief.</s>\n<|user|>\nHi</s>\n<|assistant|>\nHello!</s>\n<|user|>\nBye</s>\n"
              "<|assistant|>\n");
    EXPECT_EQ(r("gemma", true, "<bos>", "<eos>"),
              "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n"
              "<start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n");
    EXPECT_EQ(r("phi3", false, "<s>", "<|endoftext|>"),
              "<|system|>\nBe brief.<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>\nHello!<|end|>\n<|user|>\nBye<|end|>\n");
    EXPECT_EQ(r("deepseek", true, "<\xef\xbd\x9c" "begin\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>", ""),
              "<\xef\xbd\x9c" "begin\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>Be brief.\n\n"
              "<\xef\xbd\x9cUser\xef\xbd\x9c>Hi<\xef\xbd\x9c" "Assistant\xef\xbd\x9c>Hello!"
              "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>"
              "<\xef\xbd\x9cUser\xef\xbd\x9c>Bye<\xef\xbd\x9c" "Assistant\xef\xbd\x9c>");
}

TEST(ChatTemplate, DetectBuiltin) {
    EXPECT_EQ(ChatTemplate::detect_builtin("{{ '<|im_start|>' + m.role }}"), "chatml");
    EXPECT_EQ(ChatTemplate::detect_builtin("<|start_header_id|>{{ x }}<|end_header_id|>"), "llama3");
    EXPECT_EQ(ChatTemplate::detect_builtin("[INST] <<SYS>>\n"), "llama2");
    EXPECT_EQ(ChatTemplate::detect_builtin("{{ '[INST] ' + c + ' [/INST]' }}"), "mistral");
    EXPECT_EQ(ChatTemplate::detect_builtin("<start_of_turn>user"), "gemma");
    EXPECT_EQ(ChatTemplate::detect_builtin("<|user|>\n{{ c }}<|end|>\n<|assistant|>"), "phi3");
    EXPECT_EQ(ChatTemplate::detect_builtin("<|user|>\n{{ c }}</s>\n<|assistant|>"), "zephyr");
    EXPECT_EQ(ChatTemplate::detect_builtin("<\xef\xbd\x9cUser\xef\xbd\x9c>"), "deepseek");
    EXPECT_EQ(ChatTemplate::detect_builtin("{{ messages }}"), std::nullopt);
    // Every detected name is a usable built-in.
    for (const char* src : {"<|im_start|>", "[INST]", "<start_of_turn>"}) {
        auto name = ChatTemplate::detect_builtin(src);
        ASSERT_TRUE(name);
        EXPECT_TRUE(ChatTemplate::builtin(*name).ok());
    }
}

}  // namespace
}  // namespace llama_crab
