// Renders every entry of ../shared/testdata/templates/renders.json (56 real model templates x 4 message
// sets, rendered by Python Jinja2 in the transformers environment) and compares byte for byte. Entries
// whose reference render raised must fail here too (for raise_exception, with the same message).
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "llama_crab/chat.h"
#include "support/testdata.h"

namespace llama_crab {
namespace {

// Entries known not to match, as "<template>|<messages_set>|<add_generation_prompt>", each with the reason.
// Empty: all 224 entries pass. An entry listed here that starts passing fails the test, so the list stays
// accurate.
const std::map<std::string, std::string> kKnownFailures = {};

std::string slurp(const std::filesystem::path& p) {
    std::ifstream f(p, std::ios::binary);
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
}

TEST(ChatTemplatesModel, RendersMatchReference) {
    const auto dir = testing::testdata_path("templates");
    const auto renders_path = dir / "renders.json";
    if (!std::filesystem::exists(renders_path)) GTEST_SKIP() << "no " << renders_path;
    auto entries = nlohmann::ordered_json::parse(slurp(renders_path));
    ASSERT_TRUE(entries.is_array());

    std::map<std::string, Result<ChatTemplate>> templates;
    int total = 0, passed = 0, known_failed = 0;
    std::set<std::string> template_names;
    for (const auto& e : entries) {
        ++total;
        const std::string name = e.at("template");
        template_names.insert(name);
        const bool agp = e.at("add_generation_prompt");
        const std::string key = name + "|" + std::string(e.at("messages_set")) + "|" + (agp ? "true" : "false");
        SCOPED_TRACE(key);

        auto it = templates.find(name);
        if (it == templates.end()) it = templates.emplace(name, ChatTemplate::from_source(slurp(dir / name))).first;

        std::vector<ChatMessage> messages;
        for (const auto& m : e.at("messages")) messages.push_back({m.at("role"), m.at("content")});
        ChatRenderOptions opts;
        opts.add_generation_prompt = agp;
        opts.bos_token = e.at("bos_token");
        opts.eos_token = e.at("eos_token");
        opts.strftime_now = [](const std::string&) { return std::string("27 Nov 2026"); };

        Result<std::string> out = it->second.ok() ? it->second->render(messages, opts) : Result<std::string>(it->second.error());
        bool ok;
        std::string detail;
        if (e.contains("error")) {
            const std::string err = e.at("error");
            ok = !out.ok();
            if (ok && err.rfind("TemplateError: ", 0) == 0) {
                ok = out.error().message.find(err.substr(15)) != std::string::npos;
                detail = std::string("error message '") + out.error().message + "' lacks '" + err.substr(15) + "'";
            } else if (!ok) {
                detail = std::string("rendered, but the reference failed with ") + err;
            }
        } else {
            const std::string expected = e.at("expected");
            ok = out.ok() && *out == expected;
            if (!out.ok()) detail = std::string("error: ") + out.error().message;
            else if (!ok) detail = std::string("output differs:\n--- expected\n") + expected + "\n--- got\n" + *out;
        }

        const bool known = kKnownFailures.count(key) > 0;
        if (ok) {
            ++passed;
            EXPECT_FALSE(known) << key << " is listed as a known failure but passes; remove it from the list";
        } else if (known) {
            ++known_failed;
        } else {
            ADD_FAILURE() << key << ": " << detail;
        }
    }
    std::cout << "[ChatTemplatesModel] renders.json: " << passed << "/" << total << " entries pass ("
              << template_names.size() << " templates, " << known_failed << " known failures)\n";
    EXPECT_EQ(total, 224);
    EXPECT_EQ(template_names.size(), 56u);
}

}  // namespace
}  // namespace llama_crab
