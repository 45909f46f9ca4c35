// CPU feature detection and the choice of the kernel level (cpu_isa.h).
//
// CPUID directly rather than __builtin_cpu_supports: clang-14 does not know every feature name g++ 12 does.
#include "ops/cpu_isa.h"

#include <cpuid.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "llama_crab/system.h"

namespace llama_crab {
namespace {

struct Features {
    bool avx2 = false, fma = false, f16c = false, bmi2 = false, os_ymm = false;
    bool avx512f = false, avx512bw = false, avx512dq = false, avx512vl = false, avx512vnni = false, os_zmm = false;
};

Features detect() {
    Features f;
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
    f.fma = (c >> 12) & 1u;
    f.f16c = (c >> 29) & 1u;
    const bool osxsave = (c >> 27) & 1u, avx = (c >> 28) & 1u;
    if (osxsave && avx) {
        unsigned xcr0_lo = 0, xcr0_hi = 0;
        __asm__("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
        f.os_ymm = (xcr0_lo & 0x6u) == 0x6u;     // SSE and AVX state
        f.os_zmm = (xcr0_lo & 0xe6u) == 0xe6u;   // ... and opmask, ZMM0-15 upper halves, ZMM16-31
    }
    if (__get_cpuid_max(0, nullptr) < 7) return f;
    __cpuid_count(7, 0, a, b, c, d);
    f.avx2 = (b >> 5) & 1u;
    f.bmi2 = (b >> 8) & 1u;
    f.avx512f = (b >> 16) & 1u;
    f.avx512dq = (b >> 17) & 1u;
    f.avx512bw = (b >> 30) & 1u;
    f.avx512vl = (b >> 31) & 1u;
    f.avx512vnni = (c >> 11) & 1u;
    return f;
}

const Features& features() {
    static const Features f = detect();
    return f;
}

void add(std::string& out, bool have, const char* name) {
    if (have) return;
    if (!out.empty()) out += ", ";
    out += name;
}

bool parse_level(const char* s, IsaLevel* out) {
    for (IsaLevel l : kIsaLevels) {
        if (std::strcmp(s, isa_name(l)) == 0) {
            *out = l;
            return true;
        }
    }
    return false;
}

IsaLevel choose_level() {
    const IsaLevel best = cpu_isa_detected();
    const char* env = std::getenv("LLAMA_CRAB_ISA");
    if (env == nullptr || *env == '\0') return best;
    IsaLevel want = best;
    if (!parse_level(env, &want)) {
        std::fprintf(stderr, "llama-crab: LLAMA_CRAB_ISA=%s is not one of scalar, avx2, avx512; using %s\n", env,
                     isa_name(best));
        return best;
    }
    if (!cpu_supports(want)) {
        std::fprintf(stderr, "llama-crab: LLAMA_CRAB_ISA=%s: this CPU lacks %s; using %s\n", env,
                     isa_missing_features(want).c_str(), isa_name(best));
        return best;
    }
    return want;
}

}  // namespace

const char* isa_name(IsaLevel level) {
    switch (level) {
        case IsaLevel::kScalar: return "scalar";
        case IsaLevel::kAvx2: return "avx2";
        case IsaLevel::kAvx512: return "avx512";
    }
    return "?";
}

std::string isa_missing_features(IsaLevel level) {
    const Features& f = features();
    std::string out;
    if (level >= IsaLevel::kAvx2) {
        add(out, f.avx2, "avx2");
        add(out, f.fma, "fma");
        add(out, f.f16c, "f16c");
        add(out, f.bmi2, "bmi2");
        add(out, f.os_ymm, "OS support of YMM state");
    }
    if (level >= IsaLevel::kAvx512) {
        add(out, f.avx512f, "avx512f");
        add(out, f.avx512bw, "avx512bw");
        add(out, f.avx512dq, "avx512dq");
        add(out, f.avx512vl, "avx512vl");
        add(out, f.avx512vnni, "avx512vnni");
        add(out, f.os_zmm, "OS support of ZMM state");
    }
    return out;
}

bool cpu_supports(IsaLevel level) {
    static const bool ok[3] = {true, isa_missing_features(IsaLevel::kAvx2).empty(),
                               isa_missing_features(IsaLevel::kAvx512).empty()};
    return ok[(int)level];
}

IsaLevel cpu_isa_detected() {
    if (cpu_supports(IsaLevel::kAvx512)) return IsaLevel::kAvx512;
    if (cpu_supports(IsaLevel::kAvx2)) return IsaLevel::kAvx2;
    return IsaLevel::kScalar;
}

IsaLevel cpu_isa() {
    static const IsaLevel level = choose_level();
    return level;
}

bool cpu_has_avx2() { return cpu_isa() >= IsaLevel::kAvx2; }

const char* kernel_isa_name() { return isa_name(cpu_isa()); }

}  // namespace llama_crab
