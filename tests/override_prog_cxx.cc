// SPDX-License-Identifier: MIT
// override_prog_cxx.cc - C++'s operator new and delete in all their forms,
// through libpallocator-malloc (test_override.sh preloads it): the results
// must be blocks of the allocator, and a failing new must still throw.
#include <cstdint>
#include <cstdio>
#include <malloc.h>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

struct alignas(256) Wide {
    char bytes[256];
};

int main()
{
    int *one = new int(5);
    int *many = new int[1000];
    Wide *wide = new Wide;
    Wide *wides = new Wide[3];
    int *quiet = new (std::nothrow) int[10];
    if (!one || !many || !quiet || reinterpret_cast<std::uintptr_t>(wide) % 256 ||
        reinterpret_cast<std::uintptr_t>(wides) % 256)
        return 1;
    // Blocks of the override answer malloc_usable_size.
    if (malloc_usable_size(many) < 1000 * sizeof(int))
        return 2;
    std::vector<std::string> v;
    for (int i = 0; i < 10000; i++)
        v.push_back(std::string(i % 100, 'x'));
    delete one;
    delete[] many;
    delete wide;
    delete[] wides;
    delete[] quiet;
    bool threw = false;
    try {
        std::vector<char> huge(SIZE_MAX / 4);
    } catch (const std::bad_alloc &) {
        threw = true;
    } catch (const std::length_error &) {
        threw = true;
    }
    try {
        char *huge = new char[SIZE_MAX / 4];
        delete[] huge;
    } catch (const std::bad_alloc &) {
        threw = threw && true;
    }
    if (!threw)
        return 3;
    if (new (std::nothrow) char[SIZE_MAX / 4] != nullptr)
        return 4;
    std::puts("override_prog_cxx: new and delete behaved");
    return 0;
}
