/* The process's clocks, one place: monotonic time for intervals, deadlines and rates; wall time for timestamps that
 * leave the process (sampled_at_ms, log lines, latency across threads that compare send and load times). */
#ifndef TELEPACK_CLOCK_H
#define TELEPACK_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t tp_clock_ns_(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Monotonic clock: milliseconds, microseconds, seconds (for rates and progress lines). */
static inline int64_t tp_mono_ms(void) { return tp_clock_ns_(CLOCK_MONOTONIC) / 1000000; }
static inline int64_t tp_mono_us(void) { return tp_clock_ns_(CLOCK_MONOTONIC) / 1000; }
static inline double tp_mono_s(void) { return (double)tp_clock_ns_(CLOCK_MONOTONIC) / 1e9; }

/* The same clock at the kernel tick's resolution (1-10 ms) for a few ns a call instead of tens: for per-record
 * checks whose thresholds are a few ms. */
static inline int64_t tp_mono_coarse_ms(void) { return tp_clock_ns_(CLOCK_MONOTONIC_COARSE) / 1000000; }

/* Wall clock (Unix epoch): milliseconds, microseconds. */
static inline int64_t tp_wall_ms(void) { return tp_clock_ns_(CLOCK_REALTIME) / 1000000; }
static inline int64_t tp_wall_us(void) { return tp_clock_ns_(CLOCK_REALTIME) / 1000; }

/* CPU time of the calling thread in seconds (benchmarks: the machine is shared, wall time is noise). */
static inline double tp_thread_cpu_s(void) { return (double)tp_clock_ns_(CLOCK_THREAD_CPUTIME_ID) / 1e9; }

/* CPU time of the whole process in seconds, all threads. */
static inline double tp_process_cpu_s(void) { return (double)tp_clock_ns_(CLOCK_PROCESS_CPUTIME_ID) / 1e9; }

#endif
