// Golden tests: our logits and greedy continuations against llama.cpp's reference files
// (../shared/testdata/refs, and refs/archs for the llama3/qwen3/gemma3/phi3 families). Tolerances come from
// refs/TOLERANCES.json (by type) and refs/archs/TOLERANCES.json (by architecture and type; for gemma3 the ones
// that assume llama.cpp's f16 GELU table, which we mirror); the differences we actually get are printed so they
// can be reported.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "llama_crab/context.h"
#include "llama_crab/model.h"
#include "support/testdata.h"

namespace llama_crab {
namespace {

using nlohmann::json;

json load_json(const std::filesystem::path& p) {
    std::ifstream in(p);
    return json::parse(in);
}

struct RefFile {
    std::string dir;      // "refs" or "refs/archs"
    std::string stem;     // file name without .json
    std::string model;    // model stem
    bool kv_f32;
};

std::vector<RefFile> ref_files() {
    std::vector<RefFile> out;
    if (!testing::testdata_available()) return out;
    for (const std::string dir : {"refs", "refs/archs"}) {
        if (!std::filesystem::is_directory(testing::testdata_dir() / dir)) continue;
        for (const auto& e : std::filesystem::directory_iterator(testing::testdata_dir() / dir)) {
            const std::string name = e.path().filename().string();
            if (e.path().extension() != ".json" || name == "TOLERANCES.json") continue;
            RefFile r;
            r.dir = dir;
            r.stem = name.substr(0, name.size() - 5);
            r.kv_f32 = r.stem.size() > 6 && r.stem.substr(r.stem.size() - 6) == ".kvf32";
            r.model = r.kv_f32 ? r.stem.substr(0, r.stem.size() - 6) : r.stem;
            out.push_back(r);
        }
    }
    std::sort(out.begin(), out.end(), [](const RefFile& a, const RefFile& b) { return a.dir + a.stem < b.dir + b.stem; });
    return out;
}

struct Tolerance {
    std::string type;
    double max_abs, rms;
};

// refs/TOLERANCES.json: by_type[type][kv]; refs/archs/TOLERANCES.json: by_arch[arch][type][kv], preferring the
// tolerances that assume llama.cpp's f16 GELU table (gemma3) since our GELU mirrors it.
Tolerance tolerance_of(const RefFile& rf) {
    const json all = load_json(testing::testdata_dir() / rf.dir / "TOLERANCES.json");
    const json& m = all["models"][rf.model];
    const std::string type = m["type"];
    const char* kv = rf.kv_f32 ? "kv_f32" : "kv_f16";
    const json& t = rf.dir == "refs" ? all["by_type"][type][kv] : all["by_arch"][m["arch"].get<std::string>()][type][kv];
    if (t.contains("recommended_max_abs_tolerance_gelu_f16")) {
        return {type, t["recommended_max_abs_tolerance_gelu_f16"], t["recommended_rms_tolerance_gelu_f16"]};
    }
    return {type, t["recommended_max_abs_tolerance"], t["recommended_rms_tolerance"]};
}

struct Diffs {
    double max_abs = 0.0;
    double sum_sq = 0.0;
    int64_t n = 0;
    void add(double d) {
        max_abs = std::max(max_abs, std::fabs(d));
        sum_sq += d * d;
        ++n;
    }
    double rms() const { return n ? std::sqrt(sum_sq / (double)n) : 0.0; }
};

int argmax(const float* logits, int64_t n) {
    int best = 0;
    for (int64_t i = 1; i < n; ++i) {
        if (logits[i] > logits[best]) best = (int)i;
    }
    return best;
}

class GoldenTest : public ::testing::TestWithParam<RefFile> {};

TEST_P(GoldenTest, LogitsAndGreedyMatchLlamaCpp) {
    const RefFile& rf = GetParam();
    const json ref = load_json(testing::testdata_dir() / rf.dir / (rf.stem + ".json"));
    const Tolerance tol = tolerance_of(rf);
    const std::string& type = tol.type;
    const double max_tol = tol.max_abs;
    const double rms_tol = tol.rms;

    auto model = Model::load((testing::testdata_dir() / ref["model_file"].get<std::string>()).string());
    ASSERT_TRUE(model.ok()) << model.error().to_string();
    const int64_t n_vocab = (*model)->hparams().n_vocab;
    ASSERT_EQ(n_vocab, ref["n_vocab"].get<int64_t>());

    ContextParams cp;
    cp.n_ctx = 512;
    cp.n_threads = 2;
    cp.kv_type = rf.kv_f32 ? KvType::kF32 : KvType::kF16;

    Diffs prompt_diffs, last_diffs, teacher_diffs;
    int top1_checked = 0, greedy_steps_checked = 0;
    for (const auto& c : ref["cases"]) {
        const std::string case_name = c["name"];
        const std::vector<Token> tokens = c["tokens"].get<std::vector<Token>>();
        const std::vector<Token> greedy = c["greedy"].get<std::vector<Token>>();
        SCOPED_TRACE(rf.stem + " case " + case_name);

        // 1. The prompt in one batch, logits at every position.
        {
            auto ctx = Context::create(*model, cp);
            ASSERT_TRUE(ctx.ok()) << ctx.error().to_string();
            Batch b;
            b.add_sequence(tokens, 0, true);
            auto st = (*ctx)->decode(b);
            ASSERT_TRUE(st.ok()) << st.error().to_string();
            for (size_t p = 0; p < tokens.size(); ++p) {
                const float* lg = (*ctx)->logits_ith((int32_t)p);
                ASSERT_NE(lg, nullptr);
                for (const auto& pair : c["top"][p]) prompt_diffs.add((double)lg[pair[0].get<int>()] - pair[1].get<double>());
                const double margin = c["margin"][p];
                if (margin > max_tol) {
                    EXPECT_EQ(argmax(lg, n_vocab), c["top"][p][0][0].get<int>()) << "top-1 at position " << p;
                    ++top1_checked;
                }
            }
            // The full last-position vector.
            std::vector<float> last;
            if (c.contains("last_logits")) {
                last = c["last_logits"].get<std::vector<float>>();
            } else {
                auto bytes = testing::read_file_bytes(testing::testdata_dir() / rf.dir / c["last_logits_file"].get<std::string>());
                last.resize(bytes.size() / 4);
                std::memcpy(last.data(), bytes.data(), last.size() * 4);
            }
            ASSERT_EQ((int64_t)last.size(), n_vocab);
            const float* lg = (*ctx)->logits_ith((int32_t)tokens.size() - 1);
            for (int64_t i = 0; i < n_vocab; ++i) last_diffs.add((double)lg[i] - last[(size_t)i]);

            // 2. Free-running greedy continuation, one token per decode (the generation path), compared up to the
            // first step whose reference margin is within the tolerance.
            Pos pos = (Pos)tokens.size();
            Token next = (Token)argmax(lg, n_vocab);
            for (size_t i = 0; i < greedy.size(); ++i) {
                if (c["greedy_margin"][i].get<double>() <= max_tol) break;
                ASSERT_EQ(next, greedy[i]) << "greedy step " << i;
                ++greedy_steps_checked;
                if (i + 1 == greedy.size()) break;
                Batch one;
                one.add(next, pos++, {0}, true);
                ASSERT_TRUE((*ctx)->decode(one).ok());
                next = (Token)argmax((*ctx)->logits_ith(0), n_vocab);
            }
        }

        // 3. Teacher forcing: tokens + greedy[0:31] in one batch; row n_prompt-1+i matches greedy_top[i].
        {
            auto ctx = Context::create(*model, cp);
            ASSERT_TRUE(ctx.ok());
            std::vector<Token> all = tokens;
            all.insert(all.end(), greedy.begin(), greedy.end() - 1);
            Batch b;
            b.add_sequence(all, 0, true);
            ASSERT_TRUE((*ctx)->decode(b).ok());
            for (size_t i = 0; i < greedy.size(); ++i) {
                const float* lg = (*ctx)->logits_ith((int32_t)(tokens.size() - 1 + i));
                for (const auto& pair : c["greedy_top"][i]) teacher_diffs.add((double)lg[pair[0].get<int>()] - pair[1].get<double>());
            }
        }
    }
    std::printf("[golden] %-28s type %-7s kv %s | prompt max %.3g rms %.3g | last-vector max %.3g rms %.3g | teacher max %.3g rms %.3g | "
                "tol %.3g/%.3g | top1 %d greedy %d\n",
                rf.stem.c_str(), type.c_str(), rf.kv_f32 ? "f32" : "f16", prompt_diffs.max_abs, prompt_diffs.rms(), last_diffs.max_abs,
                last_diffs.rms(), teacher_diffs.max_abs, teacher_diffs.rms(), max_tol, rms_tol, top1_checked, greedy_steps_checked);
    EXPECT_LE(prompt_diffs.max_abs, max_tol);
    EXPECT_LE(last_diffs.max_abs, max_tol);
    EXPECT_LE(teacher_diffs.max_abs, max_tol);
    EXPECT_LE(prompt_diffs.rms(), rms_tol);
    EXPECT_LE(last_diffs.rms(), rms_tol);
    EXPECT_LE(teacher_diffs.rms(), rms_tol);
}

INSTANTIATE_TEST_SUITE_P(AllRefs, GoldenTest, ::testing::ValuesIn(ref_files()),
                         [](const ::testing::TestParamInfo<RefFile>& info) {
                             std::string n = (info.param.dir == "refs" ? "" : "archs_") + info.param.stem;
                             for (char& ch : n) {
                                 if (!std::isalnum((unsigned char)ch)) ch = '_';
                             }
                             return n;
                         });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(GoldenTest);

}  // namespace
}  // namespace llama_crab
