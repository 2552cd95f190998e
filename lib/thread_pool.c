/*
 * thread_pool.c - the thread-pool executor.
 *
 * DESIGN
 *
 * Threads.  The loop thread submits, cancels, shuts down and completes
 * futures.  N worker threads (named "<prefix>-<i>", every signal blocked)
 * take tasks from the queue and run them.
 *
 * Queues.
 *   queue     (cf__list, pool.mu)       tasks waiting for a worker; FIFO
 *   overflow  (cf__list, loop thread)   tasks accepted under CF_QUEUE_FULL_WAIT
 *                                       while `queue` held max_queued tasks
 *   loop inbox (see loop.c)             finished tasks on their way back
 * A task is its future: the queue link and the task fields live inside
 * struct cf_future, so submitting allocates nothing but a slot of the
 * loop's future slab.
 *
 * Life of a task.
 *   submit (loop):  future gets the pool's reference; pushed on `queue` under
 *                   pool.mu; a sleeping worker is signalled only when the
 *                   queued tasks outnumber the spinning and already-signalled
 *                   workers.
 *   take (worker):  under pool.mu: pop, state PENDING -> RUNNING, worker.current.
 *   run (worker):   fn(task, arg) without locks; outcome written into the future.
 *   hand back:      under pool.mu: worker.current = NULL and the future is
 *                   appended to the loop inbox; the ev_async wake-up is sent
 *                   after pool.mu is released, only on inbox empty -> non-empty.
 *   complete (loop): tp_complete(): final state, counters, arg_free, refill from
 *                   overflow, done callbacks, drop the pool's reference.
 * Cancel of a queued task removes it under pool.mu and defers tp_complete() to
 * the next iteration; the state is CANCELLED at once.  Cancel of a running
 * task only sets its cancel_req flag (CF_EBUSY).
 *
 * Wake-ups.  Workers sleep on pool.cv; after finishing a task a worker first
 * polls the queue length for spin_us (lock-free read of an atomic) so that a
 * steady stream of submits does not pay a futex wake per task - only while a
 * CPU is left over (running and spinning workers and the loop thread each
 * take one); an idle worker never spins.
 *
 * Lock order.  pool.mu -> loop.inbox_mu.  Nothing else nests; the loop thread
 * never holds pool.mu while running user code.
 *
 * Invariants.
 *   - worker.current is only read or written under pool.mu, and is cleared
 *     before the finished task is handed back, so the loop never sees a
 *     worker pointing at a future that may already be freed.
 *   - pool.outstanding counts accepted tasks whose tp_complete() has not run;
 *     each holds one reference on the loop (cf__loop_task_begin/end) and one
 *     reference on its future.
 *   - the pool struct is destroyed when the user released it and
 *     outstanding == 0.
 */
#include "internal.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum cf__tp_where {
    TP_NONE = 0,     /* not in any pool queue (running, done, or being cancelled) */
    TP_QUEUED = 1,   /* in pool->queue (pool.mu) */
    TP_OVERFLOW = 2, /* in pool->overflow (loop thread) */
};

struct cf__tp_worker {
    cf_thread_pool_t *pool;
    pthread_t tid;
    int index;
    int started;
    void *data;           /* from the initializer */
    cf_future_t *current; /* pool.mu */
};

struct cf_thread_pool {
    struct cf_executor ex; /* first: the executor view */
    cf_loop_t *loop;
    cf_thread_pool_opts opts;
    char prefix[16];
    struct cf__tp_worker *workers;
    int nworkers;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* Guarded by mu (atomics are also read without it by spinning workers). */
    struct cf__list queue;
    atomic_size_t nqueued;
    atomic_int stopping; /* workers exit once the queue is empty */
    size_t nrunning;
    int nsleeping;
    int nsignaled; /* signals sent that no sleeping worker has consumed yet */
    int nspinning; /* workers polling the queue before sleeping: they need no signal */
    int ncpus;     /* CPUs of the machine, read at creation */
    int nalive;
    int broken;
    char *broken_msg;
    uint64_t queue_ns_total;
    uint64_t queue_ns_max;

    /* Loop thread only. */
    struct cf__list overflow;
    size_t noverflow;
    size_t outstanding;
    uint64_t submitted, completed, failed, cancelled;
    int shut;
    int joined;
    int released;
};

static int tp_cancel(cf_future_t *f);
static const struct cf__future_ops tp_ops = {.cancel = tp_cancel};
static const struct cf__executor_ops tp_executor_ops;

static inline void tp_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* ------------------------------------------------------------------ worker side */

static void tp_set_thread_name(cf_thread_pool_t *pool, int index)
{
#ifdef HAVE_PTHREAD_SETNAME_NP
    char name[16];
    char num[12];
    size_t nlen, plen;

    nlen = (size_t)snprintf(num, sizeof(num), "-%d", index);
    plen = strlen(pool->prefix);
    if (plen + nlen > sizeof(name) - 1)
        plen = sizeof(name) - 1 - nlen;
    memcpy(name, pool->prefix, plen);
    memcpy(name + plen, num, nlen + 1);
    pthread_setname_np(pthread_self(), name);
#else
    (void)pool;
    (void)index;
#endif
}

static void tp_complete(cf_loop_t *loop, struct cf__work *w);

/* Hand a finished (or failed-without-running) task back to the loop.  Called
 * with pool.mu held; returns 1 when the caller must wake the loop after
 * releasing it. */
static int tp_hand_back_locked(cf_thread_pool_t *pool, cf_future_t *f)
{
    f->u.work.run = tp_complete;
    return cf__loop_post_nowake(pool->loop, &f->u.work);
}

/* An initializer failed: the pool is broken; fail every queued task. */
static void tp_break(struct cf__tp_worker *w, int err)
{
    cf_thread_pool_t *pool = w->pool;
    struct cf__list *n;
    int wake = 0;

    pthread_mutex_lock(&pool->mu);
    if (!pool->broken) {
        pool->broken = 1;
        if (asprintf(&pool->broken_msg, "thread pool broken: initializer of worker %s-%d failed: %s (%s)",
                     pool->prefix, w->index, cf_strerror(err), cf_err_name(err)) < 0)
            pool->broken_msg = NULL;
    }
    while ((n = cf__list_pop(&pool->queue))) {
        cf_future_t *f = cf__container_of(n, struct cf_future, u.qlink);
        atomic_fetch_sub_explicit(&pool->nqueued, 1, memory_order_relaxed);
        f->where = TP_NONE;
        f->out.value.ptr = NULL; /* it held the submit time */
        f->out.err = CF_EBROKEN;
        f->out.errmsg = pool->broken_msg ? strdup(pool->broken_msg) : NULL;
        wake |= tp_hand_back_locked(pool, f);
    }
    pool->nalive--;
    pthread_mutex_unlock(&pool->mu);
    if (wake)
        cf__loop_wake(pool->loop);
}

static void tp_run_task(struct cf__tp_worker *w, cf_future_t *f)
{
    struct cf_task task = {
        .out = &f->out,
        .cancel_req = &f->cancel_req,
        .worker_data = w->data,
        .worker_index = w->index,
        .arg = f->arg,
        .arg_len = f->arg_len,
    };

    cf__task_run(&task, f->fn);
}

static void *tp_worker_main(void *arg)
{
    struct cf__tp_worker *w = arg;
    cf_thread_pool_t *pool = w->pool;
    int rc = 0, may_spin = 0;

    tp_set_thread_name(pool, w->index);
    if (pool->opts.initializer) {
        rc = pool->opts.initializer(pool->opts.init_data, w->index, &w->data);
        if (rc) {
            tp_break(w, rc < 0 ? rc : CF_EFAIL);
            return NULL;
        }
    }

    pthread_mutex_lock(&pool->mu);
    for (;;) {
        struct cf__list *n = cf__list_pop(&pool->queue);

        if (n) {
            cf_future_t *f = cf__container_of(n, struct cf_future, u.qlink);
            uint64_t now = cf_now_ns(), waited = now - (uint64_t)f->out.value.i64;
            int wake;

            atomic_fetch_sub_explicit(&pool->nqueued, 1, memory_order_relaxed);
            pool->nrunning++;
            pool->queue_ns_total += waited;
            if (waited > pool->queue_ns_max)
                pool->queue_ns_max = waited;
            f->out.value.ptr = NULL; /* it held the submit time */
            f->where = TP_NONE;
            w->current = f;
            cf__future_set_state(f, CF_FUTURE_RUNNING);
            pthread_mutex_unlock(&pool->mu);

            tp_run_task(w, f);

            pthread_mutex_lock(&pool->mu);
            w->current = NULL;
            pool->nrunning--;
            wake = tp_hand_back_locked(pool, f);
            if (wake) {
                pthread_mutex_unlock(&pool->mu);
                cf__loop_wake(pool->loop);
                pthread_mutex_lock(&pool->mu);
            }
            may_spin = 1;
            continue;
        }
        if (atomic_load_explicit(&pool->stopping, memory_order_relaxed))
            break;
        /*
         * Spin only while a CPU is left over: the loop thread needs one, and
         * so does every running worker.  A spinner that would take a CPU from
         * them costs more than the wake-up it saves.
         */
        if (may_spin && pool->opts.spin_us && (int)pool->nrunning + pool->nspinning + 1 < pool->ncpus) {
            uint64_t until = cf_now_ns() + (uint64_t)pool->opts.spin_us * 1000u;
            unsigned spins = 0;

            may_spin = 0;
            pool->nspinning++;
            pthread_mutex_unlock(&pool->mu);
            while (!atomic_load_explicit(&pool->nqueued, memory_order_relaxed) &&
                   !atomic_load_explicit(&pool->stopping, memory_order_relaxed) &&
                   ((++spins & 31u) || cf_now_ns() < until))
                tp_cpu_relax();
            pthread_mutex_lock(&pool->mu);
            pool->nspinning--; /* under mu: a submitter that saw us spinning knows we re-check the queue */
            continue;
        }
        pool->nsleeping++;
        pthread_cond_wait(&pool->cv, &pool->mu);
        pool->nsleeping--;
        if (pool->nsignaled > 0)
            pool->nsignaled--;
    }
    pool->nalive--;
    pthread_mutex_unlock(&pool->mu);

    if (pool->opts.finalizer)
        pool->opts.finalizer(pool->opts.init_data, w->index, w->data);
    return NULL;
}

/* ------------------------------------------------------------------ loop side */

static void tp_destroy(cf_thread_pool_t *pool)
{
    pool->loop->live_executors--;
    pthread_cond_destroy(&pool->cv);
    pthread_mutex_destroy(&pool->mu);
    free(pool->broken_msg);
    free(pool->workers);
    free(pool);
}

/* Tell the workers to exit once the queue is empty, when no more tasks can come. */
static void tp_maybe_stop(cf_thread_pool_t *pool)
{
    if (!pool->shut || pool->noverflow || atomic_load(&pool->stopping))
        return;
    pthread_mutex_lock(&pool->mu);
    atomic_store(&pool->stopping, 1);
    pthread_cond_broadcast(&pool->cv);
    pthread_mutex_unlock(&pool->mu);
}

/* Complete `f` on a later iteration with `err` (CF_ECANCELED, CF_EBROKEN...). */
static void tp_complete_later(cf_future_t *f, int err)
{
    f->out.value.ptr = NULL; /* it held the submit time */
    f->out.err = err;
    if (err == CF_ECANCELED)
        cf__future_set_state(f, CF_FUTURE_CANCELLED);
    f->scheduled = 1;
    f->u.work.run = tp_complete;
    cf__loop_defer(cf__future_loop(f), &f->u.work);
}

/* Move tasks waiting for queue room into the queue (CF_QUEUE_FULL_WAIT). */
static void tp_refill(cf_thread_pool_t *pool)
{
    struct cf__list failed;
    struct cf__list *n;
    size_t moved = 0;
    const char *msg;

    if (!pool->noverflow)
        return;
    cf__list_init(&failed);
    pthread_mutex_lock(&pool->mu);
    if (pool->broken) {
        while ((n = cf__list_pop(&pool->overflow)))
            cf__list_push(&failed, n);
        pool->noverflow = 0;
    } else {
        uint64_t room = pool->opts.max_queued - atomic_load_explicit(&pool->nqueued, memory_order_relaxed);
        while (moved < room && (n = cf__list_pop(&pool->overflow))) {
            cf_future_t *f = cf__container_of(n, struct cf_future, u.qlink);
            f->where = TP_QUEUED;
            cf__list_push(&pool->queue, n);
            moved++;
        }
        pool->noverflow -= moved;
        atomic_fetch_add_explicit(&pool->nqueued, moved, memory_order_relaxed);
        if (moved && pool->nsleeping)
            pthread_cond_broadcast(&pool->cv);
    }
    msg = pool->broken_msg;
    while ((n = cf__list_pop(&failed))) {
        cf_future_t *f = cf__container_of(n, struct cf_future, u.qlink);
        f->where = TP_NONE;
        f->out.errmsg = msg ? strdup(msg) : NULL;
        tp_complete_later(f, CF_EBROKEN);
    }
    pthread_mutex_unlock(&pool->mu);
    tp_maybe_stop(pool);
}

/* The one place a pool task ends: runs on the loop thread from the ready queue. */
static void tp_complete(cf_loop_t *loop, struct cf__work *w)
{
    cf_future_t *f = cf__container_of(w, struct cf_future, u.work);
    cf_thread_pool_t *pool = f->owner;
    int st = atomic_load_explicit(&f->state, memory_order_acquire);

    if (st < CF_FUTURE_FINISHED) {
        st = f->out.err == 0 ? CF_FUTURE_FINISHED
             : f->out.err == CF_ECANCELED ? CF_FUTURE_CANCELLED
                                          : CF_FUTURE_FAILED;
        cf__future_set_state(f, (cf_future_state)st);
    }
    if (st == CF_FUTURE_FINISHED)
        pool->completed++;
    else if (st == CF_FUTURE_CANCELLED)
        pool->cancelled++;
    else
        pool->failed++;
    if (f->arg_free)
        f->arg_free(f->arg);
    f->arg_free = NULL;
    f->arg = NULL;

    pool->outstanding--;
    cf__loop_task_end(loop);
    tp_refill(pool);
    cf__future_dispatch(f);
    cf_future_unref(f); /* the pool's reference */
    if (pool->released && pool->outstanding == 0)
        tp_destroy(pool);
}

static int tp_cancel(cf_future_t *f)
{
    cf_thread_pool_t *pool = f->owner;
    int where;

    /* `where` is written by workers under pool.mu, so read it under pool.mu too. */
    pthread_mutex_lock(&pool->mu);
    where = f->where;
    if (where == TP_QUEUED) {
        cf__list_remove(&f->u.qlink);
        atomic_fetch_sub_explicit(&pool->nqueued, 1, memory_order_relaxed);
    } else if (where == TP_OVERFLOW) {
        cf__list_remove(&f->u.qlink);
        pool->noverflow--;
    } else {
        atomic_store_explicit(&f->cancel_req, 1, memory_order_relaxed);
    }
    f->where = TP_NONE;
    pthread_mutex_unlock(&pool->mu);
    if (where == TP_NONE)
        return CF_EBUSY;
    tp_complete_later(f, CF_ECANCELED);
    tp_maybe_stop(pool);
    return 0;
}

void cf_thread_pool_opts_init(cf_thread_pool_opts *o)
{
    CF_REQUIRE(o, "opts is NULL");
    memset(o, 0, sizeof(*o));
    o->max_workers = cf_cpu_count();
    o->name_prefix = "cf-worker";
    o->on_full = CF_QUEUE_FULL_FAIL;
    o->spin_us = 50;
}

static void tp_join(cf_thread_pool_t *pool)
{
    if (pool->joined)
        return;
    for (int i = 0; i < pool->nworkers; i++)
        if (pool->workers[i].started)
            pthread_join(pool->workers[i].tid, NULL);
    pool->joined = 1;
}

int cf_thread_pool_new(cf_loop_t *loop, const cf_thread_pool_opts *opts, cf_thread_pool_t **out)
{
    cf_thread_pool_opts defaults;
    cf_thread_pool_t *pool;
    sigset_t all, old;
    int rc = 0;

    if (!loop || !out)
        return CF_EINVAL;
    if (!opts) {
        cf_thread_pool_opts_init(&defaults);
        opts = &defaults;
    }
    if (opts->max_workers < 1 || (opts->on_full != CF_QUEUE_FULL_FAIL && opts->on_full != CF_QUEUE_FULL_WAIT) ||
        opts->spin_us > 1000000u)
        return CF_EINVAL;

    pool = calloc(1, sizeof(*pool));
    if (!pool)
        return CF_ENOMEM;
    pool->workers = calloc((size_t)opts->max_workers, sizeof(*pool->workers));
    if (!pool->workers) {
        free(pool);
        return CF_ENOMEM;
    }
    pool->ex.ops = &tp_executor_ops;
    pool->ex.loop = loop;
    pool->loop = loop;
    pool->opts = *opts;
    snprintf(pool->prefix, sizeof(pool->prefix), "%s",
             opts->name_prefix && *opts->name_prefix ? opts->name_prefix : "cf-worker");
    pool->opts.name_prefix = NULL; /* not kept: the caller owns the string */
    pool->nworkers = opts->max_workers;
    pool->ncpus = cf_cpu_count();
    cf__list_init(&pool->queue);
    cf__list_init(&pool->overflow);
    atomic_init(&pool->nqueued, 0);
    atomic_init(&pool->stopping, 0);
    cf__mutex_init(&pool->mu);
    pthread_cond_init(&pool->cv, NULL);
    loop->live_executors++;

    /* Workers inherit a mask with every signal blocked: signals go to the application's threads. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (int i = 0; i < pool->nworkers; i++) {
        struct cf__tp_worker *w = &pool->workers[i];
        w->pool = pool;
        w->index = i;
        pthread_mutex_lock(&pool->mu);
        pool->nalive++;
        pthread_mutex_unlock(&pool->mu);
        rc = pthread_create(&w->tid, NULL, tp_worker_main, w);
        if (rc) {
            pthread_mutex_lock(&pool->mu);
            pool->nalive--;
            pthread_mutex_unlock(&pool->mu);
            break;
        }
        w->started = 1;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);

    if (rc) {
        pool->shut = 1;
        tp_maybe_stop(pool);
        tp_join(pool);
        tp_destroy(pool);
        return -rc;
    }
    *out = pool;
    return 0;
}

static int tp_submit(cf_thread_pool_t *pool, cf_task_fn fn, void *arg, size_t len, cf_free_fn arg_free,
                     cf_future_t **out)
{
    cf_future_t *f;

    if (pool->shut)
        return CF_ESHUTDOWN;
    if (len > CF__ARG_MAX)
        return CF_EINVAL;
    f = cf__future_alloc(pool->loop);
    if (!f)
        return CF_ENOMEM;
    f->ops = &tp_ops;
    f->owner = pool;
    f->fn = fn;
    f->arg = arg;
    f->arg_free = arg_free;
    f->arg_len = (uint32_t)len;
    f->out.value.i64 = (int64_t)cf_now_ns(); /* the submit time, until a worker takes it */

    pthread_mutex_lock(&pool->mu);
    if (pool->broken) {
        pthread_mutex_unlock(&pool->mu);
        f->arg_free = NULL;
        cf_future_unref(f);
        return CF_EBROKEN;
    }
    if (pool->opts.max_queued &&
        (pool->noverflow || atomic_load_explicit(&pool->nqueued, memory_order_relaxed) >= pool->opts.max_queued)) {
        if (pool->opts.on_full == CF_QUEUE_FULL_FAIL) {
            pthread_mutex_unlock(&pool->mu);
            f->arg_free = NULL;
            cf_future_unref(f);
            return CF_EAGAIN;
        }
        f->where = TP_OVERFLOW;
        cf__list_push(&pool->overflow, &f->u.qlink);
        pool->noverflow++;
    } else {
        f->where = TP_QUEUED;
        cf__list_push(&pool->queue, &f->u.qlink);
        size_t queued = atomic_fetch_add_explicit(&pool->nqueued, 1, memory_order_relaxed) + 1;
        /*
         * Wake a sleeper unless the queued tasks are already spoken for: each
         * spinning worker takes one, and so does each worker signalled but
         * not yet awake.
         */
        if (pool->nsleeping > pool->nsignaled && queued > (size_t)(pool->nspinning + pool->nsignaled)) {
            pool->nsignaled++;
            pthread_cond_signal(&pool->cv);
        }
    }
    pthread_mutex_unlock(&pool->mu);

    f->refs++; /* the pool's reference, dropped in tp_complete() */
    pool->outstanding++;
    pool->submitted++;
    cf__loop_task_begin(pool->loop);
    *out = f;
    return 0;
}

int cf_thread_pool_submit(cf_thread_pool_t *pool, cf_task_fn fn, void *arg, cf_free_fn arg_free, cf_future_t **out)
{
    if (!pool || !fn || !out)
        return CF_EINVAL;
    return tp_submit(pool, fn, arg, 0, arg_free, out);
}

static int tp_ex_submit(cf_executor_t *ex, cf_task_fn fn, void *arg, size_t len, cf_free_fn arg_free,
                        cf_future_t **out)
{
    return tp_submit((cf_thread_pool_t *)ex, fn, arg, len, arg_free, out);
}

static int tp_ex_shutdown(cf_executor_t *ex, int flags)
{
    return cf_thread_pool_shutdown((cf_thread_pool_t *)ex, flags);
}

static int tp_ex_workers(const cf_executor_t *ex)
{
    return ((const cf_thread_pool_t *)ex)->nworkers;
}

static const struct cf__executor_ops tp_executor_ops = {
    .kind = "thread pool",
    .submit = tp_ex_submit,
    .shutdown = tp_ex_shutdown,
    .workers = tp_ex_workers,
    .shares_memory = 1,
};

cf_executor_t *cf_thread_pool_executor(cf_thread_pool_t *pool)
{
    CF_REQUIRE(pool, "pool is NULL");
    return &pool->ex;
}

static int tp_drained(void *pool)
{
    return ((cf_thread_pool_t *)pool)->outstanding == 0;
}

int cf_thread_pool_shutdown(cf_thread_pool_t *pool, int flags)
{
    if (!pool || (flags & ~(CF_SHUTDOWN_WAIT | CF_SHUTDOWN_CANCEL)))
        return CF_EINVAL;
    pool->shut = 1;
    if (flags & CF_SHUTDOWN_CANCEL) {
        struct cf__list taken;
        struct cf__list *n;

        cf__list_init(&taken);
        pthread_mutex_lock(&pool->mu);
        while ((n = cf__list_pop(&pool->queue)))
            cf__list_push(&taken, n);
        atomic_store_explicit(&pool->nqueued, 0, memory_order_relaxed);
        for (int i = 0; i < pool->nworkers; i++)
            if (pool->workers[i].current)
                atomic_store_explicit(&pool->workers[i].current->cancel_req, 1, memory_order_relaxed);
        pthread_mutex_unlock(&pool->mu);
        while ((n = cf__list_pop(&pool->overflow)))
            cf__list_push(&taken, n);
        pool->noverflow = 0;
        while ((n = cf__list_pop(&taken))) {
            cf_future_t *f = cf__container_of(n, struct cf_future, u.qlink);
            f->where = TP_NONE;
            tp_complete_later(f, CF_ECANCELED);
        }
    }
    tp_maybe_stop(pool);
    if (flags & CF_SHUTDOWN_WAIT) {
        int rc = cf__loop_run_until(pool->loop, tp_drained, pool, -1);
        if (rc)
            return rc;
        tp_join(pool);
    }
    return 0;
}

void cf_thread_pool_free(cf_thread_pool_t *pool)
{
    if (!pool)
        return;
    CF_REQUIRE(!pool->released, "thread pool freed twice");
    cf_thread_pool_shutdown(pool, CF_SHUTDOWN_CANCEL);
    tp_join(pool);
    pool->released = 1;
    if (pool->outstanding == 0)
        tp_destroy(pool);
}

int cf_thread_pool_stats(cf_thread_pool_t *pool, cf_pool_stats *out)
{
    if (!pool || !out)
        return CF_EINVAL;
    pthread_mutex_lock(&pool->mu);
    out->queued = atomic_load_explicit(&pool->nqueued, memory_order_relaxed) + pool->noverflow;
    out->running = pool->nrunning;
    out->queue_ns_total = pool->queue_ns_total;
    out->queue_ns_max = pool->queue_ns_max;
    out->workers = pool->nalive;
    pthread_mutex_unlock(&pool->mu);
    out->submitted = pool->submitted;
    out->completed = pool->completed;
    out->failed = pool->failed;
    out->cancelled = pool->cancelled;
    return 0;
}
