// Reads every GGUF file of the shared test data.
#include <gtest/gtest.h>

#include <filesystem>

#include "gguf/gguf.h"
#include "support/testdata.h"

namespace llama_crab {
namespace {

TEST(GgufTestdata, EveryModelAndVocabFileParses) {
    if (!testing::testdata_available()) GTEST_SKIP() << "no test data";
    int n_files = 0;
    for (const char* sub : {"models", "vocab"}) {
        for (const auto& entry : std::filesystem::directory_iterator(testing::testdata_dir() / sub)) {
            if (entry.path().extension() != ".gguf") continue;
            auto f = GgufFile::open(entry.path().string());
            ASSERT_TRUE(f.ok()) << entry.path() << ": " << f.error().to_string();
            EXPECT_TRUE(f->get_string("general.architecture").ok());
            if (std::string(sub) == "models") {
                EXPECT_GT(f->tensors().size(), 0u) << entry.path();
            }
            ++n_files;
        }
    }
    EXPECT_GE(n_files, 30);
}

TEST(GgufTestdata, Stories260kContents) {
    if (!testing::testdata_available()) GTEST_SKIP() << "no test data";
    auto f = GgufFile::open(testing::testdata_path("models/stories260K.gguf").string());
    ASSERT_TRUE(f.ok()) << f.error().to_string();
    EXPECT_EQ(f->tensors().size(), 48u);
    EXPECT_EQ(*f->get_string("general.architecture").value(), "llama");
    EXPECT_EQ(*f->get_int("llama.embedding_length").value(), 64);
    const GgufValue* tokens = f->find("tokenizer.ggml.tokens");
    ASSERT_NE(tokens, nullptr);
    EXPECT_EQ(tokens->array.size(), 512u);
    EXPECT_EQ(tokens->array[1].str, "<s>");
    const GgufTensorInfo* emb = f->find_tensor("token_embd.weight");
    ASSERT_NE(emb, nullptr);
    EXPECT_EQ(emb->ne[0], 64);
    EXPECT_EQ(emb->ne[1], 512);
    EXPECT_EQ(emb->type, TensorType::F32);
}

}  // namespace
}  // namespace llama_crab
