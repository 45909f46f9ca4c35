// A FIFO (or another non-regular file) in place of a model, session or state file is refused at once, never
// waited on (issue 9, item 5). Each call runs in a child with a generous limit, so a regression fails here
// instead of hanging the suite.
#include <gtest/gtest.h>

#include <filesystem>
#include <sys/stat.h>

#include "llama_crab/model.h"
#include "llama_crab/session.h"
#include "support/run_bounded.h"
#include "support/testdata.h"
#include "util/atomic_file.h"
#include "util/mmap.h"
#include "util/regular_file.h"

namespace llama_crab {
namespace {

namespace fs = std::filesystem;
using testing::run_bounded;

// 0 when the call reports an error that names a FIFO.
template <typename Call>
int expect_fifo_error(Call call) {
    auto r = call();
    if (r.ok()) return 1;
    if (r.error().message.find("FIFO") == std::string::npos) return 2;
    return 0;
}

class FifoFile : public ::testing::Test {
protected:
    void SetUp() override { ASSERT_EQ(::mkfifo(fifo().c_str(), 0644), 0); }
    fs::path fifo() const { return dir_ / "fifo"; }
    testing::TempDir dir_;
};

TEST_F(FifoFile, ReadFileRefusesIt) {
    EXPECT_EQ(run_bounded([&] { return expect_fifo_error([&] { return read_file(fifo().string()); }); }), 0);
}

TEST_F(FifoFile, ModelLoadRefusesItMappedOrRead) {
    EXPECT_EQ(run_bounded([&] { return expect_fifo_error([&] { return MappedFile::open(fifo().string()); }); }), 0);
    for (bool mmap : {true, false}) {
        const int status = run_bounded([&] {
            ModelParams p;
            p.use_mmap = mmap;
            return expect_fifo_error([&] { return Model::load(fifo().string(), p); });
        });
        EXPECT_EQ(status, 0) << "use_mmap " << mmap << " (-1: it hung)";
    }
}

TEST_F(FifoFile, SessionLoadRefusesIt) {
    EXPECT_EQ(run_bounded([&] { return expect_fifo_error([&] { return read_state_file(fifo().string()); }); }), 0);
}

TEST(RegularFile, ModelsMayBeSymlinksStateFilesMayNot) {
    testing::TempDir dir;
    testing::write_file_bytes(dir / "real", std::vector<uint8_t>(16, 7));
    fs::create_symlink(dir / "real", dir / "link");
    auto mapped = MappedFile::open((dir / "link").string());  // users symlink their models
    ASSERT_TRUE(mapped.ok()) << mapped.error().to_string();
    EXPECT_EQ(mapped->size(), 16u);
    auto state = read_state_file((dir / "link").string());  // a link planted where a state file should be
    ASSERT_FALSE(state.ok());
    EXPECT_NE(state.error().message.find("symbolic link"), std::string::npos) << state.error().message;
    auto folder = read_file(dir.path().string());
    ASSERT_FALSE(folder.ok());
    EXPECT_NE(folder.error().message.find("a folder"), std::string::npos) << folder.error().message;
}

}  // namespace
}  // namespace llama_crab
