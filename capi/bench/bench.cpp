// The C++ side of the wrapper's overhead benchmark (scripts/bench-cpp.sh): the same
// workload as capi/examples/bench_rust.rs, through sciqlop_cache.hpp. Prints
// `cpp get WALL CPU`, `cpp get_into WALL CPU` and `cpp set WALL CPU`: mean ns per
// operation of wall time and of the thread's CPU time.
// Usage: bench DIR GETS SETS [get|get_into|all]   (the last: which get loops run)
#include "sciqlop_cache/sciqlop_cache.hpp"

#include <time.h>

#include <array>
#include <chrono>
#include <thread>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

int main(int argc, char** argv) {
    if (argc != 4 && argc != 5) {
        std::fprintf(stderr, "usage: bench DIR GETS SETS [get|get_into|all]\n");
        return 2;
    }
    const std::string ops = argc == 5 ? argv[4] : "all";
    const bool run_get = ops == "all" || ops == "get", run_into = ops == "all" || ops == "get_into";
    const std::size_t gets = std::strtoull(argv[2], nullptr, 10), sets = std::strtoull(argv[3], nullptr, 10);
    Cache cache(argv[1]);
    std::vector<std::string> keys;
    char name[32];
    for (int i = 0; i < 1000; ++i) {
        std::snprintf(name, sizeof name, "key/%06d", i);
        keys.emplace_back(name);
    }
    const std::array<char, 100> value = [] {
        std::array<char, 100> v;
        v.fill('v');
        return v;
    }();
    for (auto& k : keys) cache.set(k, value);
    // Wall and thread CPU nanoseconds.
    auto now = [] {
        timespec w, c;
        clock_gettime(CLOCK_MONOTONIC, &w);
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c);
        return std::array<double, 2>{w.tv_sec * 1e9 + w.tv_nsec, c.tv_sec * 1e9 + c.tv_nsec};
    };
    auto report = [&](const char* op, std::array<double, 2> t0, std::size_t n) {
        auto t1 = now();
        std::printf("cpp %s %.1f %.1f\n", op, (t1[0] - t0[0]) / double(n), (t1[1] - t0[1]) / double(n));
    };

    // As in bench_rust.rs: let the upkeep thread copy the WAL back after the writes,
    // then warm up, so that the timed loop is not the first reads after writes.
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    for (auto& k : keys) (void)cache.get(k);
    std::size_t bytes = 0;
    auto t = now();
    if (run_get) {
        for (std::size_t i = 0; i < gets; ++i) bytes += cache.get(keys[i % keys.size()])->size();
        report("get", t, gets);
    }
    std::array<char, 256> buf;
    if (run_into) {
        t = now();
        for (std::size_t i = 0; i < gets; ++i) bytes += *cache.get_into(keys[i % keys.size()], std::span<char>(buf));
        report("get_into", t, gets);
    }
    if (bytes != (std::size_t(run_get) + run_into) * gets * 100) return 1;

    t = now();
    for (std::size_t i = 0; i < sets; ++i) cache.set(keys[i % keys.size()], value);
    report("set", t, sets);
    return 0;
}
