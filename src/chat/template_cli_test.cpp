// `llama-crab template render`: run the real binary on a template file, a built-in format and a small GGUF
// carrying a chat template and a vocabulary.
#include <gtest/gtest.h>

#include <fstream>

#include "gguf/gguf_writer.h"
#include "support/testdata.h"

namespace llama_crab {
namespace {

using testing::TempDir;

void write_text(const std::filesystem::path& p, const std::string& s) {
    std::ofstream f(p, std::ios::binary);
    f << s;
}

std::string quote(const std::filesystem::path& p) { return std::string("'") + p.string() + "'"; }

struct CliResult {
    int status;
    std::string out;
};

CliResult run(const std::string& args) {
    CliResult r;
    r.status = testing::run_command(quote(testing::cli_path()) + " template render " + args + " 2>/dev/null", &r.out);
    return r;
}

const char* kMessages = R"([{"role": "system", "content": "S"}, {"role": "user", "content": "Hi \u00e9"}])";

TEST(ChatTemplateCli, RendersTemplateFileExactly) {
    TempDir dir;
    write_text(dir / "t.jinja", "{{ bos_token }}{% for m in messages %}<{{ m.role }}>{{ m.content }}\n{% endfor %}"
                                "{% if add_generation_prompt %}<assistant>{% endif %}{{ eos_token }}\n");
    write_text(dir / "m.json", kMessages);
    auto r = run(std::string("--template ") + quote(dir / "t.jinja") + " --messages " + quote(dir / "m.json") +
                 " --add-generation-prompt --bos-token '<s>' --eos-token ''");
    EXPECT_EQ(r.status, 0);
    EXPECT_EQ(r.out, "<s><system>S\n<user>Hi \xc3\xa9\n<assistant>");  // no trailing newline added
    r = run(std::string("--template ") + quote(dir / "t.jinja") + " --messages " + quote(dir / "m.json"));
    EXPECT_EQ(r.out, "<system>S\n<user>Hi \xc3\xa9\n");
}

TEST(ChatTemplateCli, BuiltinFormat) {
    TempDir dir;
    write_text(dir / "m.json", kMessages);
    auto r = run(std::string("--builtin chatml --messages ") + quote(dir / "m.json") + " --add-generation-prompt");
    EXPECT_EQ(r.status, 0);
    EXPECT_EQ(r.out, "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi \xc3\xa9<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplateCli, ModelTemplateAndSpecialTokens) {
    TempDir dir;
    GgufWriter w;
    w.set("general.architecture", GgufWriteValue::string("llama"));
    w.set("tokenizer.ggml.tokens", GgufWriteValue::strings({"<unk>", "<BOS>", "<EOS>", "a"}));
    w.set("tokenizer.ggml.bos_token_id", GgufWriteValue::u32(1));
    w.set("tokenizer.ggml.eos_token_id", GgufWriteValue::u32(2));
    w.set("tokenizer.chat_template",
          GgufWriteValue::string("{{ bos_token }}{% for m in messages %}[{{ m.role }}]{{ m.content }}{{ eos_token }}"
                                 "{% endfor %}"));
    ASSERT_TRUE(w.write((dir / "m.gguf").string()).ok());
    write_text(dir / "m.json", kMessages);
    auto r = run(std::string("--model ") + quote(dir / "m.gguf") + " --messages " + quote(dir / "m.json"));
    EXPECT_EQ(r.status, 0);
    EXPECT_EQ(r.out, "<BOS>[system]S<EOS>[user]Hi \xc3\xa9<EOS>");
    r = run(std::string("--model ") + quote(dir / "m.gguf") + " --messages " + quote(dir / "m.json") + " --bos-token X");
    EXPECT_EQ(r.out, "X[system]S<EOS>[user]Hi \xc3\xa9<EOS>");
}

TEST(ChatTemplateCli, FailuresExitNonZeroWithAMessage) {
    TempDir dir;
    write_text(dir / "m.json", kMessages);
    write_text(dir / "bad.json", R"([{"role": "user"}])");
    write_text(dir / "raise.jinja", "{{ raise_exception('no system role') }}");
    write_text(dir / "syntax.jinja", "{% if %}");
    const std::string cli = quote(testing::cli_path()) + " template render ";
    std::string out;
    EXPECT_NE(testing::run_command(cli + "--template " + quote(dir / "raise.jinja") + " --messages " +
                                       quote(dir / "m.json") + " 2>&1",
                                   &out),
              0);
    EXPECT_NE(out.find("TemplateError: no system role"), std::string::npos) << out;
    out.clear();
    EXPECT_NE(testing::run_command(cli + "--template " + quote(dir / "syntax.jinja") + " --messages " +
                                       quote(dir / "m.json") + " 2>&1",
                                   &out),
              0);
    EXPECT_NE(out.find("TemplateSyntaxError"), std::string::npos) << out;
    out.clear();
    EXPECT_NE(testing::run_command(cli + "--builtin chatml --messages " + quote(dir / "bad.json") + " 2>&1", &out), 0);
    EXPECT_NE(out.find("messages[0].content"), std::string::npos) << out;
    EXPECT_NE(run(std::string("--messages ") + quote(dir / "m.json")).status, 0);
    EXPECT_NE(run(std::string("--builtin nope --messages ") + quote(dir / "m.json")).status, 0);
    EXPECT_NE(run(std::string("--builtin chatml --template x --messages ") + quote(dir / "m.json")).status, 0);
}

}  // namespace
}  // namespace llama_crab
