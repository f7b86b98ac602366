// LD_PRELOAD interposer counting heap allocations (calls and requested bytes) for the benchmarks. Calls are also
// counted by the library that made them (OpenSSL, libdispatch), from the caller's return address, so that a figure
// can say which part of it is the SDK's own.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

static _Atomic uint64_t bytes, calls, openssl_calls, dispatch_calls;
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);

// Address ranges of the libraries counted apart, found once by azi_bench_malloc_calls (never inside malloc).
#define MAX_RANGES 16
static struct { uintptr_t start, end; int kind; } ranges[MAX_RANGES];
static _Atomic int range_count;

static int classify(uintptr_t address) {
    int count = atomic_load(&range_count);
    for (int i = 0; i < count; i++) {
        if (address >= ranges[i].start && address < ranges[i].end) return ranges[i].kind;
    }
    return 0;
}

static void count(size_t size, void *caller) {
    atomic_fetch_add(&bytes, size);
    atomic_fetch_add(&calls, 1);
    switch (classify((uintptr_t)caller)) {
    case 1: atomic_fetch_add(&openssl_calls, 1); break;
    case 2: atomic_fetch_add(&dispatch_calls, 1); break;
    default: break;
    }
}

void *malloc(size_t size) { count(size, __builtin_return_address(0)); return __libc_malloc(size); }
void *calloc(size_t n, size_t size) { count(n * size, __builtin_return_address(0)); return __libc_calloc(n, size); }
void *realloc(void *p, size_t size) { count(size, __builtin_return_address(0)); return __libc_realloc(p, size); }

static int add_library(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size; (void)data;
    int kind = 0;
    if (strstr(info->dlpi_name, "libssl.so") || strstr(info->dlpi_name, "libcrypto.so")) kind = 1;
    if (strstr(info->dlpi_name, "libdispatch.so")) kind = 2;
    if (!kind) return 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *header = &info->dlpi_phdr[i];
        int index = atomic_load(&range_count);
        if (header->p_type != PT_LOAD || !(header->p_flags & PF_X) || index >= MAX_RANGES) continue;
        ranges[index].start = info->dlpi_addr + header->p_vaddr;
        ranges[index].end = ranges[index].start + header->p_memsz;
        ranges[index].kind = kind;
        atomic_store(&range_count, index + 1);
    }
    return 0;
}

static _Atomic int libraries_found;
static void find_libraries(void) {
    if (atomic_exchange(&libraries_found, 1)) return;
    dl_iterate_phdr(add_library, NULL);
}

uint64_t azi_bench_malloc_bytes(void) { return atomic_load(&bytes); }
uint64_t azi_bench_malloc_calls(void) { find_libraries(); return atomic_load(&calls); }
uint64_t azi_bench_malloc_calls_openssl(void) { find_libraries(); return atomic_load(&openssl_calls); }
uint64_t azi_bench_malloc_calls_dispatch(void) { find_libraries(); return atomic_load(&dispatch_calls); }

// With AZI_MALLOC_REPORT set, the totals go to standard error at exit: for programs that cannot read them (mosquitto_pub).
#include <stdio.h>
#include <stdlib.h>
__attribute__((destructor)) static void azi_bench_malloc_report(void) {
    if (getenv("AZI_MALLOC_REPORT")) {
        fprintf(stderr, "malloc_counter: %llu calls, %llu bytes\n", (unsigned long long)atomic_load(&calls), (unsigned long long)atomic_load(&bytes));
    }
}
