// Test hook of DiskCache: called at named points of a store so tests can kill the process exactly there.
// Never set outside tests.
#pragma once

namespace llama_crab::cache_detail {

// Points: "temps_written" (block files in tmp/, no transaction), "published" (files renamed into blocks/ and
// rows inserted, not committed), "evicted" (eviction done, not committed), "committed" (before evicted files
// are unlinked).
using CrashHook = void (*)(const char* point);
void set_disk_cache_crash_hook(CrashHook hook);

}  // namespace llama_crab::cache_detail
