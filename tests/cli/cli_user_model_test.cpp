// The CLI as a new user meets it (issue 9): exit codes and unknown commands, values refused with their range,
// byte sizes, text on a terminal (newline, valid UTF-8), chat sessions whose replies are not UTF-8.
#include <gtest/gtest.h>
#include <pty.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "llama_crab/chat_session.h"
#include "llama_crab/text.h"
#include "support/test_models.h"
#include "support/testdata.h"

namespace llama_crab {
namespace {

std::string stories() { return testing::testdata_path("models/stories260K.gguf").string(); }

// Runs the CLI with args through the shell (args may redirect); stdout and stderr to *out.
int cli_all(const std::string& args, std::string* out, const std::string& env = "") {
    out->clear();
    return testing::run_command(env + " " + testing::cli_path().string() + " " + args + " 2>&1", out);
}

// Runs a shell command with stdout on a pseudo-terminal (stdin and stderr as the command line sets them);
// returns what the terminal received (the pty turns "\n" into "\r\n").
// With interrupt_after_output, SIGINT is sent to the process once its first output arrived (the command should
// `exec` the CLI so that the process is the CLI itself).
std::string run_on_terminal(const std::string& command, int* status, bool interrupt_after_output = false) {
    int master = -1;
    const pid_t pid = forkpty(&master, nullptr, nullptr, nullptr);
    if (pid == 0) {
        ::execl("/bin/sh", "sh", "-c", command.c_str(), (char*)nullptr);
        ::_exit(127);
    }
    std::string out;
    if (pid < 0) return out;
    char buf[4096];
    for (;;) {
        const ssize_t n = ::read(master, buf, sizeof(buf));
        if (n <= 0) break;  // EIO once the child side is closed
        out.append(buf, (size_t)n);
        if (interrupt_after_output) {
            ::kill(pid, SIGINT);
            interrupt_after_output = false;
        }
    }
    ::close(master);
    int st = 0;
    ::waitpid(pid, &st, 0);
    *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return out;
}

std::string crlf(const std::string& s) {
    std::string out;
    for (char c : s) out += c == '\n' ? std::string("\r\n") : std::string(1, c);
    return out;
}

class CliUser : public ::testing::Test {
protected:
    void SetUp() override {
        if (!testing::testdata_available()) GTEST_SKIP() << "no test data";
    }
    // A random-weight model: like the built-in default, it writes bytes that are not UTF-8.
    std::string random_model() {
        const std::string path = (dir_ / "random.gguf").string();
        if (!std::filesystem::exists(path)) {
            EXPECT_TRUE(write_random_model(testing::tiny_model_spec(20261127), path).ok());
        }
        return path;
    }
    testing::TempDir dir_;
};

TEST_F(CliUser, UsageErrorsExitTwoAndUnknownCommandsListTheCommands) {
    std::string out;
    EXPECT_EQ(cli_all("frobnicate", &out), 2);
    EXPECT_NE(out.find("unknown command 'frobnicate'"), std::string::npos) << out;
    for (const char* c : {"complete", "chat", "serve", "template"}) EXPECT_NE(out.find(c), std::string::npos) << c;
    EXPECT_EQ(cli_all("template frobnicate", &out), 2);
    EXPECT_NE(out.find("unknown command 'frobnicate'"), std::string::npos) << out;
    EXPECT_NE(out.find("render"), std::string::npos) << out;
    EXPECT_EQ(cli_all("", &out), 2);
    EXPECT_NE(out.find("complete"), std::string::npos) << out;
    EXPECT_EQ(cli_all("complete --bogus", &out), 2);  // CLI11: 109
    EXPECT_EQ(cli_all("complete --threads x", &out), 2);  // CLI11: 104
    EXPECT_EQ(cli_all("template render", &out), 2);  // a required flag missing; CLI11: 106
    EXPECT_EQ(cli_all("complete --help", &out), 0);
    EXPECT_NE(out.find("--prompt"), std::string::npos);
    EXPECT_EQ(cli_all("--help", &out), 0);
}

TEST_F(CliUser, NonsenseValuesAreRefusedWithTheValidRange) {
    const std::string base = "complete --model " + stories() + " --prompt hi ";
    std::string out;
    EXPECT_EQ(cli_all(base + "--threads -3", &out), 2);
    EXPECT_NE(out.find("--threads: -3 is outside the valid range: 0 to 512"), std::string::npos) << out;
    EXPECT_EQ(cli_all("eval --model " + stories() + " --tokens 1,2 --threads -3", &out), 2);
    EXPECT_NE(out.find("--threads: -3 is outside the valid range: 0 to 512"), std::string::npos) << out;
    EXPECT_EQ(cli_all("bench --model " + stories() + " -p 8 -n 4 -t 2,-3", &out), 2);
    EXPECT_NE(out.find("-3 is outside the valid range: 1 to 512"), std::string::npos) << out;
    EXPECT_EQ(cli_all("serve --threads 600", &out), 2);
    EXPECT_EQ(cli_all(base + "--temp -1", &out), 2);
    EXPECT_NE(out.find("--temp: -1 is outside the valid range: at least 0 (0 is greedy)"), std::string::npos) << out;
    EXPECT_EQ(cli_all(base + "--top-p 1.5", &out), 2);
    EXPECT_NE(out.find("0 to 1"), std::string::npos) << out;
    EXPECT_EQ(cli_all(base + "-n -5", &out), 2);
    EXPECT_NE(out.find("at least 0"), std::string::npos) << out;
    EXPECT_EQ(cli_all(base + "--seed -2", &out), 2);
    EXPECT_EQ(cli_all(base + "--ctx-size -5", &out), 2);
    EXPECT_EQ(cli_all(base + "--ctx-size 2", &out), 1);
    EXPECT_NE(out.find("--ctx-size 2 is too small"), std::string::npos) << out;
    EXPECT_EQ(cli_all("chat --model " + stories() + " --min-p 2", &out), 2);
    // Past the trained context (512 for stories260K) without RoPE scaling: a warning, and the run goes on.
    EXPECT_EQ(cli_all(base + "-n 2 --greedy -c 1024", &out), 0);
    EXPECT_NE(out.find("warning: --ctx-size 1024 is more than the 512 tokens the model was trained on"), std::string::npos) << out;
    EXPECT_EQ(cli_all(base + "-n 2 --greedy -c 512", &out), 0);
    EXPECT_EQ(out.find("warning"), std::string::npos) << out;
}

TEST_F(CliUser, ByteSizeFlagsTakeTheSameSuffixesInEveryCommand) {
    std::string out;
    EXPECT_EQ(cli_all("complete --model " + stories() + " --prompt hi -n 2 --greedy --cache-bytes 2GB --cache-dir " +
                          (dir_ / "cache").string(),
                      &out),
              0)
        << out;
    for (const char* size : {"2GB", "2G", "2gib", "512MB", "1.5GiB", "4096", "64KB"}) {
        EXPECT_EQ(cli_all(std::string("complete --cache-bytes ") + size + " --help", &out), 0) << size;
    }
    std::string complete_err, serve_err, chat_err;
    EXPECT_EQ(cli_all("complete --prompt hi --cache-bytes 2XB", &complete_err), 2);
    EXPECT_EQ(cli_all("chat --cache-bytes 2XB", &chat_err), 2);
    EXPECT_EQ(cli_all("serve --cache-bytes 2XB", &serve_err), 2);
    EXPECT_NE(complete_err.find("'2XB' is not a byte size"), std::string::npos) << complete_err;
    EXPECT_EQ(complete_err, serve_err);
    EXPECT_EQ(complete_err, chat_err);
    // The defaults agree.
    std::string complete_help, serve_help;
    ASSERT_EQ(cli_all("complete --help", &complete_help), 0);
    ASSERT_EQ(cli_all("serve --help", &serve_help), 0);
    EXPECT_NE(complete_help.find("default 4GiB"), std::string::npos) << complete_help;
    EXPECT_NE(serve_help.find("disk prefix cache budget (default 4GiB"), std::string::npos) << serve_help;
}

TEST_F(CliUser, CompleteOnATerminalEndsWithANewlineAndPrintsValidUtf8) {
    const std::string args = "complete --model " + random_model() + " --prompt 'Once upon a time' -n 48 --greedy";
    std::string piped;
    ASSERT_EQ(testing::run_command(testing::cli_path().string() + " " + args + " 2>/dev/null", &piped), 0);
    ASSERT_FALSE(piped.empty());
    // Piped output is exactly the generated bytes; this model's are not UTF-8 (else the test proves nothing).
    ASSERT_FALSE(is_valid_utf8(piped)) << "pick another seed: the random model wrote valid UTF-8";
    ASSERT_NE(piped.back(), '\n');
    int status = -1;
    const std::string shown = run_on_terminal(testing::cli_path().string() + " " + args + " 2>/dev/null", &status);
    EXPECT_EQ(status, 0);
    EXPECT_TRUE(is_valid_utf8(shown));
    EXPECT_EQ(shown, crlf(to_valid_utf8(piped)) + "\r\n");
}

TEST_F(CliUser, CtrlCEndsTheTextWithANewline) {
    // -n 0 on a 32k context runs for many seconds: Ctrl-C comes mid-generation.
    const std::string command = "exec " + testing::cli_path().string() + " complete --model " + random_model() +
                                " --prompt 'Once upon a time' -n 0 -c 32768 --greedy 2>/dev/null";
    int status = -1;
    const std::string shown = run_on_terminal(command, &status, /*interrupt_after_output=*/true);
    EXPECT_EQ(status, 130);  // stopped by SIGINT, as a shell reports it
    ASSERT_FALSE(shown.empty());
    EXPECT_TRUE(shown.ends_with("\r\n")) << shown;
    EXPECT_TRUE(is_valid_utf8(shown));
}

TEST_F(CliUser, DetokenizeOnATerminalPrintsValidUtf8) {
    // Token 229 is the byte token <0xE2> in the llama vocab (3 + 0xE2): half a character.
    std::string piped;
    ASSERT_EQ(testing::run_command(testing::cli_path().string() + " detokenize --model " + stories() + " --tokens 229 2>/dev/null", &piped), 0);
    ASSERT_FALSE(is_valid_utf8(piped)) << piped;
    int status = -1;
    const std::string shown =
        run_on_terminal(testing::cli_path().string() + " detokenize --model " + stories() + " --tokens 229 2>/dev/null", &status);
    EXPECT_EQ(status, 0);
    EXPECT_EQ(shown, crlf(to_valid_utf8(piped)));
    EXPECT_TRUE(is_valid_utf8(shown));
}

TEST_F(CliUser, ChatSavesASessionWhoseReplyIsNotUtf8) {
    const std::string model = random_model();
    const std::string session = (dir_ / "chat.session").string();
    const std::string in = (dir_ / "in.txt").string();
    std::ofstream(in) << "hello\n";
    std::string out;
    ASSERT_EQ(testing::run_command(testing::cli_path().string() + " chat --model " + model + " --greedy -n 9 --session " +
                                       session + " < " + in + " 2>/dev/null",
                                   &out),
              0);
    ASSERT_TRUE(out.ends_with("\n"));
    const std::string reply = out.substr(0, out.size() - 1);
    ASSERT_FALSE(is_valid_utf8(reply)) << "pick another seed: the reply is valid UTF-8";
    ASSERT_TRUE(std::filesystem::exists(session));
    auto llama = Llama::load(LlamaParams(model).with_n_threads(1));
    ASSERT_TRUE(llama.ok()) << llama.error().to_string();
    ChatSession chat(*llama);
    const Status st = chat.load(session);
    ASSERT_TRUE(st.ok()) << st.error().to_string();
    ASSERT_EQ(chat.messages().size(), 2u);
    EXPECT_EQ(chat.messages()[1].content, reply);

    // A session that cannot be written is an error exit naming the session file, not its temp file.
    const std::string bad = (dir_ / "missing-folder" / "chat.session").string();
    EXPECT_EQ(cli_all("chat --model " + model + " --greedy -n 4 --session " + bad + " < " + in, &out), 1);
    EXPECT_NE(out.find("'" + bad + "'"), std::string::npos) << out;
    EXPECT_EQ(out.find(".tmp-"), std::string::npos) << out;
}

TEST_F(CliUser, TemplateNameMeansABuiltinInEveryCommand) {
    const std::string messages = (dir_ / "m.json").string();
    std::ofstream(messages) << R"([{"role":"user","content":"hi"}])";
    std::string by_template, by_builtin, out;
    ASSERT_EQ(cli_all("template render --template llama3 --messages " + messages + " --add-generation-prompt", &by_template), 0)
        << by_template;
    ASSERT_EQ(cli_all("template render --builtin llama3 --messages " + messages + " --add-generation-prompt", &by_builtin), 0);
    EXPECT_EQ(by_template, by_builtin);
    EXPECT_NE(by_template.find("<|start_header_id|>user"), std::string::npos) << by_template;
    // A Jinja file: --template-file, or --template with a value that is not a built-in name.
    const std::string jinja = (dir_ / "t.jinja").string();
    std::ofstream(jinja) << "{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}";
    ASSERT_EQ(cli_all("template render --template-file " + jinja + " --messages " + messages, &out), 0);
    EXPECT_EQ(out, "[user]hi");
    ASSERT_EQ(cli_all("template render --template " + jinja + " --messages " + messages, &out), 0);
    EXPECT_EQ(out, "[user]hi");
    EXPECT_NE(cli_all("template render --template nope --messages " + messages, &out), 0);
    EXPECT_NE(out.find("chatml"), std::string::npos) << out;  // the message lists the built-ins
    EXPECT_EQ(cli_all("chat --model " + stories() + " --template nope", &out), 2);
    EXPECT_NE(out.find("chatml"), std::string::npos) << out;
    EXPECT_EQ(cli_all("serve --template nope", &out), 2);

    // chat says which template it uses when the model has none.
    const std::string in = (dir_ / "in.txt").string();
    std::ofstream(in) << "hello\n";
    ASSERT_EQ(cli_all("chat --model " + stories() + " --greedy -n 4 < " + in, &out), 0);
    EXPECT_NE(out.find("the model has no chat template: using the built-in 'chatml'"), std::string::npos) << out;
    ASSERT_EQ(cli_all("chat --model " + stories() + " --greedy -n 4 --template llama3 < " + in, &out), 0);
    EXPECT_EQ(out.find("no chat template"), std::string::npos) << out;
}

TEST_F(CliUser, TheDefaultModelSaysItIsRandom) {
    std::string out;
    ASSERT_EQ(cli_all("complete --prompt hi -n 2 --greedy", &out, "LLAMA_CRAB_CACHE='" + (dir_ / "home").string() + "'"), 0);
    EXPECT_NE(out.find("random weights"), std::string::npos) << out;
    EXPECT_NE(out.find("--model FILE.gguf"), std::string::npos) << out;
}

}  // namespace
}  // namespace llama_crab
