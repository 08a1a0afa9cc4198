// Tests of the C++20 wrapper (sciqlop_cache/sciqlop_cache.hpp) over the C ABI: every
// method of the four store types, RAII types, errors, threads and processes.
// Built and run by scripts/test-cpp.sh, also under ASan + UBSan.
//
// Modes besides the tests (used by the script and by the process test):
//   test_wrapper --child-incr DIR N      increments counter "shared" N times in DIR
//   test_wrapper --write-interop DIR     writes the entries the interop checks read
//   test_wrapper --incr DIR KEY DELTA [NS]  increments counter KEY of the Cache in DIR
//                                        (in its namespace NS)
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include "sciqlop_cache/sciqlop_cache.hpp"

#include <unistd.h>
#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
namespace fs = std::filesystem;
namespace sc = sciqlop_cache;

namespace {

std::string self_exe;

/// A fresh directory, removed at the end of the test.
struct TempDir {
    fs::path path;
    TempDir() {
        std::string tmpl = (fs::temp_directory_path() / "sqc-cpp-XXXXXX").string();
        REQUIRE(mkdtemp(tmpl.data()) != nullptr);
        path = tmpl;
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
    std::string sub(const char* name) const { return (path / name).string(); }
};

template <class F>
sqc_status code_of(F&& f) {
    try {
        f();
    } catch (const sc::Error& e) {
        return e.code();
    }
    return SQC_STATUS_OK;
}

std::vector<fs::path> value_files(const fs::path& dir) {
    std::vector<fs::path> out;
    for (auto& e : fs::recursive_directory_iterator(dir / "data"))
        if (e.is_regular_file() && e.path().extension() == ".val") out.push_back(e.path());
    return out;
}

// Compile-time checks of what each kind offers.
template <class S>
concept HasTags = requires(const S& s) { s.set("k", std::string("v"), std::string_view("t")); };
template <class S>
concept HasShards = requires(const S& s) { s.shard_count(); };
static_assert(HasTags<Cache> && HasTags<FanoutCache>);
static_assert(!HasTags<Index> && !HasTags<FanoutIndex>);
static_assert(HasShards<FanoutCache> && HasShards<FanoutIndex> && !HasShards<Cache>);
static_assert(!std::is_copy_constructible_v<Cache> && std::is_move_constructible_v<Cache>);
static_assert(std::is_base_of_v<std::runtime_error, sc::Error>);
static_assert(std::input_iterator<sc::KeyCursor::iterator>);

}  // namespace

TEST_CASE("set and get with every kind of byte container") {
    TempDir d;
    Cache cache(d.sub("c"));
    cache.set("vector", std::vector<char>{'a', 'b', 'c'});
    cache.set("string", std::string("hello"));
    cache.set("view", std::string_view("view"));
    cache.set("literal", "lit");
    const std::array<std::byte, 2> raw{std::byte{0}, std::byte{255}};
    cache.set("span", std::span<const std::byte>(raw));
    cache.set("u8", std::vector<std::uint8_t>{1, 2, 3, 4});
    cache.set("empty", std::string());

    CHECK(cache.get("vector")->to_vector() == std::vector<char>{'a', 'b', 'c'});
    CHECK(cache.get("string")->to_string() == "hello");
    CHECK(cache.get("view")->view() == "view");
    CHECK(cache.get("literal")->size() == 3);
    auto span = cache.get("span");
    REQUIRE(span);
    CHECK(span->size() == 2);
    CHECK(span->bytes()[1] == std::byte{255});
    CHECK(cache.get("u8")->size() == 4);
    auto empty = cache.get("empty");
    REQUIRE(empty);
    CHECK(empty->empty());
    CHECK_FALSE(cache.get("missing"));

    // A file-backed value (over the 8 KiB threshold) and the empty key.
    std::string big(100'000, 'z');
    big[5] = '\0';
    cache.set("big", big);
    CHECK(cache.get("big")->to_string() == big);
    CHECK(value_files(d.path / "c").size() == 1);
    cache.set("", "empty key");
    CHECK(cache.get("")->to_string() == "empty key");
}

TEST_CASE("Buffer copies, moves and compares") {
    TempDir d;
    Cache cache(d.sub("c"));
    cache.set("k", "abc");
    auto v = cache.get("k");
    REQUIRE(v);
    sc::Buffer copy = *v;
    sc::Buffer moved = std::move(*v);
    CHECK(copy == moved);
    CHECK(v->size() == 0);
    CHECK(std::string(copy.begin(), copy.end()) == "abc");
    auto popped = cache.pop("k");
    REQUIRE(popped);
    sc::Buffer from_lib = std::move(*popped);
    CHECK(from_lib.to_string() == "abc");
    from_lib = copy;
    CHECK(from_lib.to_string() == "abc");
}

TEST_CASE("get_into a caller buffer") {
    TempDir d;
    Index index(d.sub("i"));
    index.set("k", "0123456789");
    std::array<char, 16> buf{};
    auto n = index.get_into("k", std::span<char>(buf));
    REQUIRE(n);
    CHECK(*n == 10);
    CHECK(std::string_view(buf.data(), *n) == "0123456789");
    CHECK_FALSE(index.get_into("missing", std::span<char>(buf)));
    std::array<std::byte, 4> small{};
    try {
        (void)index.get_into("k", std::span<std::byte>(small));
        FAIL("no exception");
    } catch (const sc::Error& e) {
        CHECK(e.code() == SQC_STATUS_BUFFER_TOO_SMALL);
        CHECK(std::string(e.what()).find("10 bytes") != std::string::npos);
    }
}

TEST_CASE("expiry, touch and tags") {
    TempDir d;
    Cache cache(d.sub("c"));
    std::vector<char> data{'x', 'y'};
    cache.set("short", data, 1ms);
    cache.set("now", data, 0s);
    cache.set("negative", data, -5s);
    cache.set("long", data, 1h);
    cache.set("tagged", data, "t1");
    cache.set("both", data, 1h, "t1");
    cache.set("other", data, std::chrono::duration<double>(3600.5), std::string("t2"));
    std::this_thread::sleep_for(20ms);
    CHECK_FALSE(cache.get("short"));
    CHECK_FALSE(cache.exists("now"));
    CHECK_FALSE(cache.exists("negative"));
    CHECK(cache.exists("long"));
    CHECK(cache.expire() >= 1);

    CHECK(cache.touch("long", 1ms));
    std::this_thread::sleep_for(20ms);
    CHECK_FALSE(cache.exists("long"));
    CHECK_FALSE(cache.touch("long", 1h));
    cache.set("persist", data, 1ms);
    CHECK(cache.touch("persist"));
    std::this_thread::sleep_for(20ms);
    CHECK(cache.exists("persist"));

    CHECK(cache.evict_tag("t1") == 2);
    CHECK_FALSE(cache.exists("tagged"));
    CHECK_FALSE(cache.exists("both"));
    CHECK(cache.exists("other"));
    CHECK(cache.evict_tag("nothing") == 0);
    // A century is fine; a duration beyond what the store can date is a clean error
    // (the conversion itself never overflows).
    cache.set("century", data, std::chrono::hours(24 * 365 * 100));
    CHECK(cache.exists("century"));
    CHECK(code_of([&] { cache.set("forever", data, std::chrono::hours::max()); }) == SQC_STATUS_INVALID_ARGUMENT);
}

TEST_CASE("add, del, pop, exists, count, size, volume, clear") {
    TempDir d;
    Cache cache(d.sub("c"));
    CHECK(cache.add("k", "v1"));
    CHECK_FALSE(cache.add("k", "v2"));
    CHECK(cache.get("k")->to_string() == "v1");
    CHECK(cache.add("e", "x", 1ms));
    std::this_thread::sleep_for(20ms);
    CHECK(cache.add("e", "y", "tag"));  // expired counts as absent
    CHECK(cache.add("f", "z", 1h, "tag"));
    CHECK(cache.count() == 3);
    CHECK(cache.size() == 4);
    CHECK(cache.volume() > 0);
    CHECK(cache.del("k"));
    CHECK_FALSE(cache.del("k"));
    CHECK(cache.pop("e")->to_string() == "y");
    CHECK_FALSE(cache.pop("e"));
    CHECK(cache.exists("f"));
    CHECK(cache.clear() == 1);
    CHECK(cache.count() == 0);
}

TEST_CASE("counters") {
    TempDir d;
    Cache cache(d.sub("c"));
    CHECK(cache.incr("n") == 1);
    CHECK(cache.incr("n", 5) == 6);
    CHECK(cache.decr("n") == 5);
    CHECK(cache.decr("m", 2, 10) == 8);
    CHECK(cache.incr("counter", 1, /*default=*/0) == 1);
    CHECK(cache.get_counter("n") == 5);
    CHECK_FALSE(cache.get_counter("absent"));
    CHECK(cache.get("n")->to_string() == "5");  // ASCII decimal
    cache.set("text", "not a number");
    CHECK(code_of([&] { cache.incr("text"); }) == SQC_STATUS_NOT_A_COUNTER);
    CHECK(code_of([&] { cache.get_counter("text"); }) == SQC_STATUS_NOT_A_COUNTER);
    cache.set("max", std::to_string(INT64_MAX));
    CHECK(code_of([&] { cache.incr("max"); }) == SQC_STATUS_COUNTER_OVERFLOW);
    CHECK(cache.get("text")->to_string() == "not a number");  // never overwritten
}

TEST_CASE("stats, max_size, evict") {
    TempDir d;
    sc::Options opts;
    opts.maintenance_interval = 0us;  // no background eviction: evict() does it
    Cache cache(d.sub("c"), opts);
    cache.set("k", "v");
    (void)cache.get("k");
    (void)cache.get("missing");
    CHECK(cache.stats() == sc::Stats{1, 1});
    cache.reset_stats();
    CHECK(cache.stats() == sc::Stats{0, 0});
    CHECK(cache.max_size() == 0);
    for (int i = 0; i < 20; ++i) cache.set("k" + std::to_string(i), std::string(100, 'v'));
    CHECK(cache.evict() == 0);
    cache.set_max_size(1000);
    CHECK(cache.max_size() == 1000);
    (void)cache.evict();
    CHECK(cache.size() <= 1000);
    Cache bounded(d.sub("b"), 500);
    CHECK(bounded.max_size() == 500);
}

TEST_CASE("check finds and fixes orphaned files and dangling rows") {
    TempDir d;
    fs::path dir = d.path / "c";
    Cache cache(dir.string());
    auto ok = cache.check();
    CHECK(ok.ok);
    CHECK(ok.counters_consistent);
    CHECK(ok.sqlite_integrity_ok);
    CHECK_FALSE(ok.fixed);
    cache.set("big1", std::string(20'000, 'a'));
    cache.set("big2", std::string(20'000, 'b'));
    auto files = value_files(dir);
    REQUIRE(files.size() == 2);
    fs::remove(files[0]);                                                    // a dangling row
    fs::copy_file(files[1], files[1].parent_path() / "ffffffffffffffffffffffffffffff.val");  // an orphan
    auto cr = cache.check();
    CHECK_FALSE(cr.ok);
    CHECK(cr.dangling_rows == 1);
    CHECK(cr.orphaned_files == 1);
    CHECK(cr.size_mismatches == 0);
    auto cr2 = cache.check(true);
    CHECK(cr2.fixed);
    CHECK(cr2.ok);
    CHECK(cache.check().ok);
    CHECK(cache.count() == 1);
}

TEST_CASE("Index") {
    TempDir d;
    Index index(d.sub("i"));
    index.set("dataset/v2", "metadata");
    CHECK(index.get("dataset/v2")->to_string() == "metadata");
    CHECK(index.add("x", "1"));
    CHECK(index.incr("n", 2) == 2);
    CHECK(index.count() == 3);
    CHECK(index.del("x"));
    CHECK(index.check().ok);
    auto tx = index.transaction();
    index.set("in-tx", "1");
    tx.rollback();
    CHECK_FALSE(index.exists("in-tx"));
    // Through the C API, the Cache-only operations are refused with a code.
    bool b = false;
    CHECK(sqc_touch(index.handle(), "n", 1, 5, &b) == SQC_STATUS_UNSUPPORTED);
    sqc_set_options o{10, "tag", 3};
    CHECK(sqc_set(index.handle(), "k", 1, nullptr, 0, &o) == SQC_STATUS_UNSUPPORTED);
    CHECK(std::string(sqc_last_error()).find("Index") != std::string::npos);
}

TEST_CASE("FanoutCache and FanoutIndex") {
    TempDir d;
    FanoutCache fc(d.sub("fc"), /*shard_count=*/4, /*max_size=*/0);
    CHECK(fc.shard_count() == 4);
    for (int i = 0; i < 50; ++i) fc.set("k" + std::to_string(i), std::to_string(i), 1h, "t");
    CHECK(fc.count() == 50);
    CHECK(fc.get("k7")->to_string() == "7");
    CHECK(fc.evict_tag("t") == 50);
    fc.set("a", "1");
    CHECK(fc.incr("ctr", 3) == 3);
    CHECK(fc.stats().hits == 1);
    CHECK(fc.check().ok);
    {
        auto tx = fc.transaction("ctr");
        fc.incr("ctr");
    }  // rolled back
    CHECK(fc.get_counter("ctr") == 3);
    fc.transact("ctr", [&] { fc.incr("ctr"); });
    CHECK(fc.get_counter("ctr") == 4);
    // A transaction covers the keys of its shard only: writing a key of another shard
    // meanwhile throws WRONG_SHARD (and writes nothing); a key of its shard joins it.
    int same_shard = 0, other_shard = 0;
    for (int i = 0; i < 40; ++i) {
        std::string k = "o" + std::to_string(i);
        {
            auto tx = fc.transaction("ctr");
            int code = code_of([&] { fc.set(k, "x"); });
            CHECK((code == SQC_STATUS_OK || code == SQC_STATUS_WRONG_SHARD));
            (code == SQC_STATUS_OK ? same_shard : other_shard) += 1;
        }  // rolled back
        CHECK_FALSE(fc.exists(k));
    }
    CHECK(same_shard > 0);
    CHECK(other_shard > 0);
    // Reopening with another shard count is an error, with the directory's count fine.
    CHECK(code_of([&] { FanoutCache again(d.sub("fc"), 8); }) == SQC_STATUS_SHARD_COUNT_MISMATCH);
    FanoutCache same(d.sub("fc"));
    CHECK(same.shard_count() == 4);

    FanoutIndex fi(d.sub("fi"), /*shard_count=*/8);
    CHECK(fi.shard_count() == 8);
    fi.set("x", "y");
    CHECK(fi.get("x")->to_string() == "y");
    std::vector<std::string> keys;
    for (int i = 0; i < 30; ++i) fi.set("p/" + std::to_string(100 + i), "v");
    for (const auto& k : fi.keys("p/")) keys.push_back(k);
    REQUIRE(keys.size() == 30);
    CHECK(std::is_sorted(keys.begin(), keys.end()));
}

TEST_CASE("transactions") {
    TempDir d;
    Cache cache(d.sub("c"));
    {
        auto tx = cache.transaction();
        cache.set("a", "1");
        CHECK(cache.exists("a"));  // own writes are seen
        tx.commit();
        CHECK_FALSE(tx.active());
    }
    CHECK(cache.exists("a"));
    {
        auto tx = cache.transaction();
        cache.set("b", "1");
    }  // destroyed uncommitted: rolled back
    CHECK_FALSE(cache.exists("b"));
    CHECK(cache.transact([&] {
        cache.set("c", "1");
        return 42;
    }) == 42);
    CHECK(cache.exists("c"));
    CHECK_THROWS_AS(cache.transact([&] {
        cache.set("d", "1");
        throw std::runtime_error("abort");
    }),
                    std::runtime_error);
    CHECK_FALSE(cache.exists("d"));
    // Nested: the inner rollback undoes only the inner part.
    {
        auto outer = cache.transaction();
        cache.set("o", "1");
        {
            auto inner = cache.transaction();
            cache.set("i", "1");
            inner.rollback();
        }
        outer.commit();
    }
    CHECK(cache.exists("o"));
    CHECK_FALSE(cache.exists("i"));
    // Another thread sees nothing until the commit; it cannot end the transaction.
    auto tx = cache.transaction();
    cache.set("t", "1");
    bool seen = true;
    sqc_status from_other = SQC_STATUS_OK;
    std::thread([&] {
        seen = cache.exists("t");
        from_other = sqc_tx_commit(tx.handle());
    }).join();
    CHECK_FALSE(seen);
    CHECK(from_other == SQC_STATUS_WRONG_THREAD);
    tx.commit();
    CHECK(cache.exists("t"));
    CHECK(code_of([&] { tx.commit(); }) == SQC_STATUS_INVALID_HANDLE);
}

TEST_CASE("locks") {
    TempDir d;
    Cache cache(d.sub("c"));
    {
        auto lk = cache.lock("res", 30s);
        CHECK(lk.held());
        CHECK_FALSE(cache.try_lock("res", 30s));
        CHECK(code_of([&] { auto l = cache.lock("res", 30s, 20ms); }) == SQC_STATUS_LOCK_TIMEOUT);
        // Another thread may release it.
        std::thread([l = std::move(lk)]() mutable { l.release(); }).join();
    }
    auto again = cache.try_lock("res", 30s);
    REQUIRE(again);
    CHECK(again->held());
    again->release();
    CHECK(code_of([&] { again->release(); }) == SQC_STATUS_INVALID_HANDLE);
    {
        auto l = cache.lock("scoped", 30s);
    }
    CHECK(cache.try_lock("scoped", 30s));
    // An expired lock (holder died) can be taken.
    sqc_lock raw{};
    REQUIRE(sqc_lock_acquire(cache.handle(), "dead", 4, 1000, -1, &raw) == SQC_STATUS_OK);
    std::this_thread::sleep_for(20ms);
    CHECK(cache.try_lock("dead", 30s));
    CHECK(sqc_lock_acquire(cache.handle(), "neg", 3, -1, -1, &raw) == SQC_STATUS_INVALID_ARGUMENT);
    Index index(d.sub("i"));
    auto il = index.lock("x", 1s);
    CHECK(il.held());
}

TEST_CASE("keys, metadata, reopen") {
    TempDir d;
    Cache cache(d.sub("c"));
    for (const char* k : {"a/1", "a/2", "b/1"}) cache.set(k, "");
    std::string long_key(3000, 'L');
    cache.set(long_key, "v");
    std::vector<std::string> all;
    for (const auto& k : cache.keys()) all.push_back(k);
    CHECK(all == std::vector<std::string>{long_key, "a/1", "a/2", "b/1"});  // 'L' < 'a'; > 256 bytes
    std::vector<std::string> a;
    auto cur = cache.keys("a/");
    while (auto k = cur.next()) a.push_back(*k);
    CHECK(a == std::vector<std::string>{"a/1", "a/2"});
    CHECK_FALSE(cur.next());
    // Many keys over several pages.
    for (int i = 0; i < 600; ++i) cache.set("many/" + std::to_string(10000 + i), "");
    std::size_t n = 0;
    for (const auto& k : cache.keys("many/")) n += k.size() == 10;
    CHECK(n == 600);

    CHECK_FALSE(cache.metadata("serializer"));
    cache.set_metadata("serializer", "raw");
    CHECK(cache.metadata("serializer") == "raw");
    cache.set_metadata("empty", "");
    CHECK(cache.metadata("empty") == "");
    cache.remove_metadata("serializer");
    CHECK_FALSE(cache.metadata("serializer"));

    Cache again = cache.reopen();
    CHECK(again.get("a/1"));
    cache.close();
    CHECK(again.count() == 604);
}

TEST_CASE("namespaces") {
    TempDir d;
    Cache cache(d.sub("c"));
    Cache sessions = cache.ns("sessions");
    sessions.set("k", "in sessions", "t");
    sessions.set("k2", "in sessions");
    cache.set("k", "in the default namespace", "t");
    CHECK(sessions.count() == 2);
    CHECK(cache.count() == 1);
    CHECK(sessions.get("k")->to_string() == "in sessions");
    CHECK(cache.ns("").get("k")->to_string() == "in the default namespace");
    CHECK(sessions.evict_tag("t") == 1);  // tags are per namespace
    CHECK(cache.exists("k"));
    CHECK(sessions.clear() == 1);
    CHECK(cache.count() == 1);
    // A handle of its own: closing the store's first handle leaves it usable.
    cache.close();
    CHECK(sessions.incr("n", 2) == 2);
    FanoutCache f(d.sub("f"), 3);
    FanoutCache fa = f.ns("a");
    fa.set("x", "1");
    CHECK(fa.count() == 1);
    CHECK(f.count() == 0);
}

TEST_CASE("bad input gives errors, never a crash") {
    TempDir d;
    // A directory whose database is not a cache.
    fs::create_directories(d.path / "notacache");
    std::ofstream(d.path / "notacache" / "sciqlop-cache.db") << "this is not an SQLite database, just text";
    CHECK(code_of([&] { Cache c(d.sub("notacache")); }) == SQC_STATUS_NOT_A_CACHE);
    // A file where a directory is expected.
    std::ofstream(d.path / "file") << "x";
    CHECK(code_of([&] { Cache c(d.sub("file")); }) == SQC_STATUS_NOT_A_DIRECTORY);
    // A store of another kind.
    { Index i(d.sub("idx")); }
    try {
        Cache c(d.sub("idx"));
        FAIL("opened an Index as a Cache");
    } catch (const std::runtime_error& e) {  // Error derives from std::runtime_error
        CHECK(std::string(e.what()).find("idx") != std::string::npos);
    }
    CHECK(code_of([&] { FanoutCache f(d.sub("idx")); }) == SQC_STATUS_WRONG_KIND);
    CHECK(code_of([&] { Cache c(""); }) == SQC_STATUS_INVALID_ARGUMENT);

    Cache cache(d.sub("c"));
    // Invalid UTF-8 keys.
    std::string bad("\xff\xfe", 2);
    CHECK(code_of([&] { cache.set(bad, "v"); }) == SQC_STATUS_INVALID_UTF8);
    CHECK(code_of([&] { (void)cache.get(bad); }) == SQC_STATUS_INVALID_UTF8);
    CHECK(code_of([&] { cache.set("k", "v", bad); }) == SQC_STATUS_INVALID_UTF8);
    // Too long a key names the sizes.
    try {
        cache.set(std::string(5000, 'k'), "v");
        FAIL("accepted");
    } catch (const sc::Error& e) {
        CHECK(e.code() == SQC_STATUS_KEY_TOO_LONG);
        CHECK(std::string(e.what()).find("5000") != std::string::npos);
        CHECK(std::string(e.code_name()) == "key too long");
    }
    // Closed and moved-from stores.
    Cache moved = std::move(cache);
    CHECK(code_of([&] { (void)cache.get("k"); }) == SQC_STATUS_INVALID_HANDLE);
    sqc_store h = moved.handle();
    moved.close();
    CHECK(code_of([&] { moved.set("k", "v"); }) == SQC_STATUS_INVALID_HANDLE);
    CHECK(code_of([&] { moved.close(); }) == SQC_STATUS_INVALID_HANDLE);
    bool found = false;
    std::size_t len = 0;
    CHECK(sqc_get(h, "k", 1, nullptr, 0, &len, &found) == SQC_STATUS_INVALID_HANDLE);
    CHECK(sqc_close(h) == SQC_STATUS_INVALID_HANDLE);
    CHECK(sqc_close(sqc_store{0}) == SQC_STATUS_INVALID_HANDLE);
    CHECK(sqc_close(sqc_store{~0ull}) == SQC_STATUS_INVALID_HANDLE);
}

TEST_CASE("8 threads share one Cache") {
    TempDir d;
    Cache cache(d.sub("c"));
    constexpr int threads = 8, per = 300;
    std::atomic<int> mismatches{0};
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
        pool.emplace_back([&, t] {
            for (int i = 0; i < per; ++i) {
                std::string key = "t" + std::to_string(t) + "/" + std::to_string(i);
                std::string value(50 + i % 200, static_cast<char>('a' + t));
                cache.set(key, value, "thread" + std::to_string(t));
                auto got = cache.get(key);
                if (!got || got->to_string() != value) ++mismatches;
                cache.incr("shared");
                if (i % 50 == 0) (void)cache.count();
            }
        });
    for (auto& th : pool) th.join();
    CHECK(mismatches == 0);
    CHECK(cache.get_counter("shared") == threads * per);
    CHECK(cache.count() == threads * per + 1);
    CHECK(cache.evict_tag("thread3") == per);
    CHECK(cache.check().ok);
}

TEST_CASE("4 processes increment one counter exactly") {
    TempDir d;
    std::string dir = d.sub("c");
    { Cache init(dir); }
    constexpr int procs = 4, per = 200;
    std::vector<pid_t> pids;
    for (int p = 0; p < procs; ++p) {
        pid_t pid = fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            std::string n = std::to_string(per);
            execl(self_exe.c_str(), self_exe.c_str(), "--child-incr", dir.c_str(), n.c_str(), (char*)nullptr);
            _exit(127);
        }
        pids.push_back(pid);
    }
    for (pid_t pid : pids) {
        int status = 0;
        REQUIRE(waitpid(pid, &status, 0) == pid);
        CHECK(WIFEXITED(status));
        CHECK(WEXITSTATUS(status) == 0);
    }
    Cache cache(dir);
    CHECK(cache.get_counter("shared") == procs * per);
}

namespace {

int child_incr(const char* dir, int n) {
    try {
        Cache cache(dir);
        for (int i = 0; i < n; ++i) cache.incr("shared");
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "child: %s\n", e.what());
        return 1;
    }
}

// Entries read back by scripts/test-cpp.sh through the Rust CLI (sqcache).
int write_interop(const char* dir) {
    Cache cache(dir);
    cache.set("interop/value", std::string("written by C++"));
    cache.set("interop/binary", std::vector<std::uint8_t>{0, 1, 2, 255});
    cache.incr("interop/counter", 41, 1);
    cache.set("interop/tagged", std::string("t"), 1h, "cpp");
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    self_exe = fs::canonical("/proc/self/exe").string();
    if (argc == 4 && std::string(argv[1]) == "--child-incr") return child_incr(argv[2], std::atoi(argv[3]));
    if (argc == 3 && std::string(argv[1]) == "--write-interop") return write_interop(argv[2]);
    if ((argc == 5 || argc == 6) && std::string(argv[1]) == "--incr") {
        Cache cache(argv[2]);
        Cache store = cache.ns(argc == 6 ? argv[5] : "");
        std::printf("%lld\n", static_cast<long long>(store.incr(argv[3], std::atoll(argv[4]))));
        return 0;
    }
    doctest::Context ctx(argc, argv);
    return ctx.run();
}
