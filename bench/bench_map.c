/*
 * bench_map.c - cf_map in numbers.
 *
 *   map_stream  a 10,000,000-item lazy map from a pull callback on the thread
 *               pool: items/s and peak RSS (VmHWM) of the whole process
 *   scaling     the seed's map workload (99,999 items, K = 50,
 *               f(x) = sum over k = 1..K+1 of x^(1/k^1.5)) serial vs the thread
 *               pool and the process pool, chunksize 1 and automatic
 *
 * Usage: bench_map [--items N] [--workers N] [--json]
 * Prints measurements; it is not a pass/fail test.
 */
#include <cfutures.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long vm_hwm_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;

    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmHWM: %ld kB", &v) == 1)
            break;
    fclose(f);
    return v;
}

struct counter {
    int64_t next, end, value;
};

static int pull(void *src, const void **item, size_t *len)
{
    struct counter *c = src;

    if (c->next >= c->end)
        return 0;
    c->value = c->next++;
    *item = &c->value;
    *len = sizeof(c->value);
    return 1;
}

static int square_item(cf_task_t *t, const void *item, size_t len)
{
    int64_t x;
    (void)len;
    memcpy(&x, item, sizeof(x));
    cf_task_set_i64(t, x * x);
    return 0;
}

static long delivered;

static int count_cb(cf_map_t *m, const cf_map_result *r, void *data)
{
    (void)m;
    (void)data;
    delivered += r->status == 0;
    return 0;
}

static double seed_f(int64_t x)
{
    double s = 0;
    for (int k = 1; k <= 51; k++)
        s += pow((double)x, 1.0 / pow((double)k, 1.5));
    return s;
}

static int seed_item(cf_task_t *t, const void *item, size_t len)
{
    int64_t x;
    (void)len;
    memcpy(&x, item, sizeof(x));
    cf_task_set_f64(t, seed_f(x));
    return 0;
}

static double run_seed(cf_executor_t *ex, const int64_t *xs, size_t n, size_t chunksize, const double *want,
                       size_t *used)
{
    cf_map_opts o;
    cf_map_t *m;
    cf_map_result r;
    uint64_t t0 = cf_now_ns();
    size_t wrong = 0, got = 0;

    cf_map_opts_init(&o);
    o.chunksize = chunksize;
    if (cf_map_new_array(ex, seed_item, xs, n, sizeof(xs[0]), &o, &m))
        return -1;
    *used = cf_map_chunksize(m);
    while (cf_map_next(m, &r) == 0) {
        wrong += r.status || r.f64 != want[r.index];
        got++;
    }
    cf_map_free(m);
    if (wrong || got != n) {
        fprintf(stderr, "bench_map: %zu wrong results\n", wrong);
        return -1;
    }
    return (double)(cf_now_ns() - t0) / 1e9;
}

int main(int argc, char **argv)
{
    long items = 10000000;
    int workers = 2, json = 0;
    struct ev_loop *ev;
    cf_loop_t *loop;
    cf_thread_pool_t *tp;
    cf_process_pool_t *pp;
    cf_thread_pool_opts to;
    cf_process_pool_opts po;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--items") && i + 1 < argc)
            items = atol(argv[++i]);
        else if (!strcmp(argv[i], "--workers") && i + 1 < argc)
            workers = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--json"))
            json = 1;
        else {
            fprintf(stderr, "usage: bench_map [--items N] [--workers N] [--json]\n");
            return 2;
        }
    }
    ev = ev_loop_new(EVFLAG_AUTO);
    if (!ev || cf_loop_new(ev, &loop))
        return 1;
    cf_process_pool_opts_init(&po);
    po.max_workers = workers;
    if (cf_process_pool_new(loop, &po, &pp))
        return 1;
    cf_thread_pool_opts_init(&to);
    to.max_workers = workers;
    if (cf_thread_pool_new(loop, &to, &tp))
        return 1;

    /* map_stream */
    struct counter c = {0, items, 0};
    cf_map_opts o;
    cf_map_t *m;
    cf_future_t *done;
    long hwm_before = vm_hwm_kib();
    cf_map_opts_init(&o);
    if (cf_map_new(cf_thread_pool_executor(tp), square_item, pull, &c, &o, &m) || cf_map_each(m, count_cb, NULL, &done))
        return 1;
    uint64_t t0 = cf_now_ns();
    ev_run(ev, 0);
    double stream_s = (double)(cf_now_ns() - t0) / 1e9;
    long hwm_after = vm_hwm_kib();
    size_t stream_chunk = cf_map_chunksize(m);
    cf_future_unref(done);
    cf_map_free(m);

    /* scaling */
    size_t n = 99999;
    int64_t *xs = malloc(n * sizeof(*xs));
    double *want = malloc(n * sizeof(*want));
    for (size_t i = 0; i < n; i++)
        xs[i] = (int64_t)i;
    t0 = cf_now_ns();
    for (size_t i = 0; i < n; i++)
        want[i] = seed_f(xs[i]);
    double serial_s = (double)(cf_now_ns() - t0) / 1e9;
    struct {
        const char *name;
        cf_executor_t *ex;
        size_t chunk;
        double s;
        size_t used;
    } runs[] = {
        {"thread pool, chunksize 1", cf_thread_pool_executor(tp), 1, 0, 0},
        {"thread pool, auto chunksize", cf_thread_pool_executor(tp), 0, 0, 0},
        {"process pool, chunksize 1", cf_process_pool_executor(pp), 1, 0, 0},
        {"process pool, auto chunksize", cf_process_pool_executor(pp), 0, 0, 0},
    };
    for (size_t i = 0; i < 4; i++)
        runs[i].s = run_seed(runs[i].ex, xs, n, runs[i].chunk, want, &runs[i].used);

    if (json) {
        printf("{\"map_stream\": {\"items\": %ld, \"seconds\": %.3f, \"items_per_s\": %.0f, \"peak_rss_kib\": %ld, "
               "\"chunksize\": %zu}, \"scaling\": {\"serial_s\": %.4f",
               items, stream_s, items / stream_s, hwm_after, stream_chunk, serial_s);
        for (size_t i = 0; i < 4; i++)
            printf(", \"%s\": {\"seconds\": %.4f, \"speedup\": %.2f, \"chunksize\": %zu}", runs[i].name, runs[i].s,
                   serial_s / runs[i].s, runs[i].used);
        printf("}}\n");
    } else {
        printf("map_stream: %ld items from a pull callback in %.2f s (%.1f M items/s), chunksize now %zu\n", items,
               stream_s, items / stream_s / 1e6, stream_chunk);
        printf("            peak RSS of the process %.1f MiB (%.1f MiB before the map)\n", hwm_after / 1024.0,
               hwm_before / 1024.0);
        printf("scaling: seed map, %zu items, K = 50, %d workers; serial %.3f s\n", n, workers, serial_s);
        for (size_t i = 0; i < 4; i++)
            printf("  %-30s %8.3f s  speed-up %.2fx  (chunksize %zu)\n", runs[i].name, runs[i].s,
                   serial_s / runs[i].s, runs[i].used);
    }
    free(xs);
    free(want);
    cf_thread_pool_free(tp);
    cf_process_pool_free(pp);
    if (cf_loop_close(loop))
        return 1;
    ev_loop_destroy(ev);
    return 0;
}
