// Slot files and the prefix caches across server processes: save a slot, restore it in a fresh process and
// continue, which gives the same tokens as an uninterrupted run; file names stay inside --slot-save-dir; a disk
// cache filled by one process serves the next.
#include <gtest/gtest.h>

#include <filesystem>

#include "server_harness.h"
#include "support/testdata.h"

namespace llama_crab::testing {
namespace {

const std::string kStory = "Once upon a time, there was a little girl named Lily. She loved to play outside in the sun.";

json greedy(const std::string& prompt, int max_tokens) {
    return {{"prompt", prompt}, {"max_tokens", max_tokens}, {"temperature", 0}, {"ignore_eos", true}};
}

TEST(ServerSlotsTest, SaveRestoreInAFreshProcessContinuesLikeAnUninterruptedRun) {
    TempDir dir;
    const std::vector<std::string> args = {"--slots", "2", "--ctx-size", "512", "--slot-save-dir", dir.path().string()};
    std::string first_text, continued_text;
    {
        // The uninterrupted run: a first request, then one that extends it, on the same server.
        auto server = ServerProcess::start(stories_model(), args);
        ASSERT_TRUE(server);
        auto a = http_post(server->port(), "/v1/completions", greedy(kStory, 40));
        ASSERT_EQ(a.status, 200);
        first_text = response_text(a.body);
        auto slots = http_get(server->port(), "/slots").body;
        int used = -1;
        for (const auto& s : slots) {
            if (s["n_tokens"] > 0) used = s["id"];
        }
        ASSERT_GE(used, 0) << slots;
        auto saved = http_post(server->port(), "/slots/" + std::to_string(used) + "?action=save", json{{"filename", "story.slot"}});
        ASSERT_EQ(saved.status, 200) << saved.raw;
        EXPECT_GT(saved.body["n_saved"].get<int>(), 40);
        EXPECT_TRUE(std::filesystem::exists(dir / "story.slot"));

        auto b = http_post(server->port(), "/v1/completions", greedy(kStory + first_text + " Then", 40));
        ASSERT_EQ(b.status, 200);
        continued_text = response_text(b.body);
        EXPECT_GT(b.body["usage"]["prompt_tokens_details"]["cached_tokens"].get<int>(), 40);
        EXPECT_EQ(server->stop(), 0);
    }
    // A fresh process: restore into slot 1, then the same extending request.
    auto server = ServerProcess::start(stories_model(), args);
    ASSERT_TRUE(server);
    auto restored = http_post(server->port(), "/slots/1?action=restore", json{{"filename", "story.slot"}});
    ASSERT_EQ(restored.status, 200) << restored.raw;
    EXPECT_GT(restored.body["n_restored"].get<int>(), 40);
    EXPECT_EQ(http_get(server->port(), "/slots").body[1]["n_tokens"], restored.body["n_restored"]);
    auto b = http_post(server->port(), "/v1/completions", greedy(kStory + first_text + " Then", 40));
    ASSERT_EQ(b.status, 200);
    EXPECT_EQ(response_text(b.body), continued_text);
    EXPECT_GT(b.body["usage"]["prompt_tokens_details"]["cached_tokens"].get<int>(), 40) << "the restored slot should be reused";

    // Erase empties the slot.
    auto erased = http_post(server->port(), "/slots/1?action=erase", std::string());
    EXPECT_EQ(erased.status, 200) << erased.raw;
    EXPECT_EQ(http_get(server->port(), "/slots").body[1]["n_tokens"], 0);
}

TEST(ServerSlotsTest, FileNamesStayInsideTheSaveFolder) {
    TempDir dir;
    const auto save_dir = dir / "slots";
    std::filesystem::create_directories(save_dir);
    std::filesystem::create_symlink("/etc/passwd", save_dir / "link.slot");
    auto server = ServerProcess::start(stories_model(), {"--slots", "1", "--slot-save-dir", save_dir.string()});
    ASSERT_TRUE(server);
    ASSERT_EQ(http_post(server->port(), "/v1/completions", greedy("Hello", 4)).status, 200);
    for (const std::string name : {"../escape.slot", "/tmp/abs.slot", "a/b.slot", ".hidden", "..", "", "link.slot", "x\\y", "a b"}) {
        for (const char* action : {"save", "restore"}) {
            auto r = http_post(server->port(), std::string("/slots/0?action=") + action, json{{"filename", name}});
            EXPECT_EQ(r.status, 400) << action << " '" << name << "': " << r.raw;
            EXPECT_EQ(r.body["error"]["param"], "filename") << r.raw;
        }
    }
    EXPECT_FALSE(std::filesystem::exists(dir / "escape.slot"));
    EXPECT_FALSE(std::filesystem::exists("/tmp/abs.slot"));
    // Restoring a missing file is a 404; restoring garbage is a 400 that says why.
    EXPECT_EQ(http_post(server->port(), "/slots/0?action=restore", json{{"filename", "missing.slot"}}).status, 404);
    write_file_bytes(save_dir / "junk.slot", std::vector<uint8_t>(100, 7));
    auto junk = http_post(server->port(), "/slots/0?action=restore", json{{"filename", "junk.slot"}});
    EXPECT_EQ(junk.status, 400) << junk.raw;
    EXPECT_EQ(http_post(server->port(), "/slots/0?action=save", std::string("{}")).status, 400);
}

TEST(ServerSlotsTest, DiskCacheServesTheNextProcess) {
    TempDir dir;
    const std::vector<std::string> args = {"--slots", "1", "--ctx-size", "512", "--cache-dir", (dir / "cache").string(), "--cache-bytes", "64MB"};
    std::string text;
    {
        auto server = ServerProcess::start(stories_model(), args);
        ASSERT_TRUE(server);
        auto a = http_post(server->port(), "/v1/completions", greedy(kStory, 16));
        ASSERT_EQ(a.status, 200);
        EXPECT_EQ(a.body["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
        text = response_text(a.body);
        // Shutting down stores the slots' states.
        EXPECT_EQ(server->stop(), 0) << server->log();
    }
    auto server = ServerProcess::start(stories_model(), args);
    ASSERT_TRUE(server);
    auto b = http_post(server->port(), "/v1/completions", greedy(kStory, 16));
    ASSERT_EQ(b.status, 200);
    EXPECT_EQ(response_text(b.body), text);
    const int prompt_tokens = b.body["usage"]["prompt_tokens"];
    EXPECT_EQ(b.body["usage"]["prompt_tokens_details"]["cached_tokens"], prompt_tokens - 1) << b.raw;
    const std::string m = http_get(server->port(), "/metrics").raw;
    EXPECT_EQ(metric_value(m, "llamacrab_cache_hits_total{tier=\"disk\"}"), 1);
    EXPECT_GT(metric_value(m, "llamacrab_cache_bytes{tier=\"disk\"}"), 0);
}

TEST(ServerSlotsTest, RamCacheKeepsAnEvictedSlotsPrefix) {
    // One slot: a second, unrelated prompt takes it over; the first prompt's state was stored in the RAM cache
    // before that, so asking again reuses it.
    auto server = ServerProcess::start(stories_model(), {"--slots", "1", "--ctx-size", "512", "--ram-cache-bytes", "32MB"});
    ASSERT_TRUE(server);
    const int port = server->port();
    ASSERT_EQ(http_post(port, "/v1/completions", greedy(kStory, 8)).status, 200);
    ASSERT_EQ(http_post(port, "/v1/completions", greedy("A completely different start", 8)).status, 200);
    auto again = http_post(port, "/v1/completions", greedy(kStory + " More", 8));
    ASSERT_EQ(again.status, 200);
    EXPECT_GT(again.body["usage"]["prompt_tokens_details"]["cached_tokens"].get<int>(), 20) << again.raw;
    EXPECT_TRUE(wait_until([&] { return metric_value(http_get(port, "/metrics").raw, "llamacrab_cache_hits_total{tier=\"ram\"}") == 1; },
                           std::chrono::seconds(2)));
}

}  // namespace
}  // namespace llama_crab::testing
