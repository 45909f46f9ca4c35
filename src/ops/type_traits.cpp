#include "ops/tensor_type.h"

#include <array>
#include <cctype>
#include <cpuid.h>
#include <string>

#include "ops/quant_basic.h"
#include "ops/quant_k.h"

namespace llama_crab {
namespace {

constexpr size_t kMaxTypeId = 40;

struct TraitsTable {
    std::array<TypeTraits, kMaxTypeId> by_id{};
    std::array<bool, kMaxTypeId> present{};

    TraitsTable() {
        const bool avx2 = cpu_has_avx2();
        std::array<TypeTraits, kMaxTypeId> filled{};
        fill_basic_type_traits(filled.data(), avx2);
        fill_k_type_traits(filled.data(), avx2);
        for (size_t i = 0; i < kMaxTypeId; ++i) {
            if (filled[i].name != nullptr) {
                by_id[i] = filled[i];
                present[i] = true;
            }
        }
    }
};

const TraitsTable& table() {
    static const TraitsTable t;
    return t;
}

}  // namespace

bool cpu_has_avx2() {
    static const bool has = [] {
        // CPUID directly: clang-14 does not know the "f16c" feature name of __builtin_cpu_supports.
        unsigned a = 0, b = 0, c = 0, d = 0;
        if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
        const bool fma = (c >> 12) & 1u, osxsave = (c >> 27) & 1u, avx = (c >> 28) & 1u, f16c = (c >> 29) & 1u;
        if (!(fma && osxsave && avx && f16c)) return false;
        unsigned xcr0_lo = 0, xcr0_hi = 0;
        __asm__("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
        if ((xcr0_lo & 6u) != 6u) return false;  // the OS saves the YMM registers
        if (__get_cpuid_max(0, nullptr) < 7) return false;
        __cpuid_count(7, 0, a, b, c, d);
        return ((b >> 5) & 1u) != 0;  // AVX2
    }();
    return has;
}

const TypeTraits* find_type_traits(uint32_t type_id) {
    if (type_id >= kMaxTypeId || !table().present[type_id]) return nullptr;
    return &table().by_id[type_id];
}

const TypeTraits& type_traits(TensorType type) { return *find_type_traits((uint32_t)type); }

std::optional<TensorType> type_from_name(std::string_view name) {
    std::string lower;
    for (char c : name) lower += (char)std::tolower((unsigned char)c);
    for (size_t i = 0; i < kMaxTypeId; ++i) {
        if (!table().present[i]) continue;
        std::string n = table().by_id[i].name;
        for (char& c : n) c = (char)std::tolower((unsigned char)c);
        if (n == lower) return (TensorType)i;
    }
    return std::nullopt;
}

}  // namespace llama_crab
