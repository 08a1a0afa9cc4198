// The C++ side of the wrapper's overhead benchmark (scripts/bench-cpp.sh): the same
// workload as capi/examples/bench_rust.rs, through sciqlop_cache.hpp. Prints
// `cpp get NS`, `cpp get_into NS` and `cpp set NS` (mean ns per operation).
// Usage: bench DIR GETS SETS
#include "sciqlop_cache/sciqlop_cache.hpp"

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

int main(int argc, char** argv) {
    if (argc != 4) {
        std::fprintf(stderr, "usage: bench DIR GETS SETS\n");
        return 2;
    }
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
    using clock = std::chrono::steady_clock;
    auto ns_per = [](clock::duration d, std::size_t n) { return std::chrono::duration<double, std::nano>(d).count() / double(n); };

    std::size_t bytes = 0;
    auto t = clock::now();
    for (std::size_t i = 0; i < gets; ++i) bytes += cache.get(keys[i % keys.size()])->size();
    const double get_ns = ns_per(clock::now() - t, gets);

    std::array<char, 256> buf;
    t = clock::now();
    for (std::size_t i = 0; i < gets; ++i) bytes += *cache.get_into(keys[i % keys.size()], std::span<char>(buf));
    const double get_into_ns = ns_per(clock::now() - t, gets);
    if (bytes != 2 * gets * 100) return 1;

    t = clock::now();
    for (std::size_t i = 0; i < sets; ++i) cache.set(keys[i % keys.size()], value);
    const double set_ns = ns_per(clock::now() - t, sets);
    std::printf("cpp get %.1f\ncpp get_into %.1f\ncpp set %.1f\n", get_ns, get_into_ns, set_ns);
    return 0;
}
