// The C++ snippet of the original sciqlop-cache's README, as written (between the
// markers), inside main() with the `data` it uses and the chrono literals it assumes.
// scripts/test-cpp.sh builds it against the installed package with
//   g++ -std=c++20 seed.cpp $(pkg-config --cflags --libs sciqlop-cache)
// and with CMake (find_package), and runs it in an empty directory.
#include "sciqlop_cache/sciqlop_cache.hpp"

#include <chrono>
#include <cstdio>
#include <vector>
using namespace std::chrono_literals;

int main() {
    std::vector<char> data(100, 'x');
    // ---- the snippet ----
// Full-featured cache with expiration, LRU eviction, tags, and stats
Cache cache(".cache/", /*max_size=*/1'000'000'000);
cache.set("key", std::vector<char>{'a', 'b', 'c'});
cache.set("key", data, 60s); // with expiration
cache.set("key", data, "mytag"); // with tag
cache.set("key", data, 60s, "mytag"); // both
auto value = cache.get("key"); // std::optional<Buffer>
cache.del("key");
cache.pop("key"); // get + delete
cache.add("key", data); // set only if absent
cache.touch("key", 120s); // update expiration
cache.evict_tag("mytag"); // bulk remove by tag
// Bare key-value store (no expiration/eviction/tags overhead)
Index index(".index/");
// Atomic counters
cache.incr("counter", 1, /*default=*/0);
cache.decr("counter");
// Integrity and diagnostics
auto cr = cache.check(); // structural integrity
auto cr2 = cache.check(true); // verify and fix
cache.volume(); // total disk usage in bytes
cache.stats(); // {hits, misses}
// Sharded variants for write concurrency
FanoutCache fc(".fc/", /*shard_count=*/8, /*max_size=*/0);
FanoutIndex fi(".fi/", /*shard_count=*/8);
    // ---- end of the snippet ----

    // It ran: show what it did, and fail if something is off.
    std::printf("value: %zu bytes; key after add: %s; counter: %lld; check ok: %d/%d; "
                "volume: %llu; shards: %u/%u; hits %llu misses %llu\n",
                value ? value->size() : 0, cache.exists("key") ? "present" : "absent",
                static_cast<long long>(*cache.get_counter("counter")), cr.ok, cr2.ok,
                static_cast<unsigned long long>(cache.volume()), fc.shard_count(), fi.shard_count(),
                static_cast<unsigned long long>(cache.stats().hits),
                static_cast<unsigned long long>(cache.stats().misses));
    bool ok = value && value->size() == 100 && value->to_vector() == data && cache.exists("key") &&
              *cache.get_counter("counter") == 0 && cr.ok && cr2.ok && fc.shard_count() == 8 &&
              fi.shard_count() == 8 && index.count() == 0;
    std::puts(ok ? "seed snippet: ok" : "seed snippet: FAILED");
    return ok ? 0 : 1;
}
