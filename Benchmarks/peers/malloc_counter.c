// LD_PRELOAD interposer counting heap allocations (calls and requested bytes) for the benchmarks.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

static _Atomic uint64_t bytes, calls;
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);

void *malloc(size_t size) { atomic_fetch_add(&bytes, size); atomic_fetch_add(&calls, 1); return __libc_malloc(size); }
void *calloc(size_t n, size_t size) { atomic_fetch_add(&bytes, n * size); atomic_fetch_add(&calls, 1); return __libc_calloc(n, size); }
void *realloc(void *p, size_t size) { atomic_fetch_add(&bytes, size); atomic_fetch_add(&calls, 1); return __libc_realloc(p, size); }
uint64_t azi_bench_malloc_bytes(void) { return atomic_load(&bytes); }
uint64_t azi_bench_malloc_calls(void) { return atomic_load(&calls); }

// With AZI_MALLOC_REPORT set, the totals go to standard error at exit: for programs that cannot read them (mosquitto_pub).
#include <stdio.h>
#include <stdlib.h>
__attribute__((destructor)) static void azi_bench_malloc_report(void) {
    if (getenv("AZI_MALLOC_REPORT")) {
        fprintf(stderr, "malloc_counter: %llu calls, %llu bytes\n", (unsigned long long)atomic_load(&calls), (unsigned long long)atomic_load(&bytes));
    }
}
