/*
 * remote_host.c - a remote worker's task processes and their supervisor
 * (remote_worker.h).
 *
 * DESIGN
 *
 * A task on the broker's stream should go to the process that runs it
 * without another process in between: every hop costs two context switches
 * on the way in and out.  So each process of a worker is itself a consumer
 * of the queue's group (consumer name "NAME.K"): it has its own two broker
 * connections and its own loop, reads tasks, runs them in turn in its own
 * address space, and posts their results - the whole of remote_worker.c and
 * remote_wtask.c, with the tasks run in place instead of in a process pool
 * (w->slot set).  The worker that cf_remote_worker_new() returns is the
 * supervisor of these processes, on the application's loop: it reads no
 * tasks, and does what a process cannot do for itself while a task of its
 * runs, through the slot the two share (struct cf__rw_slot, memory mapped
 * before the processes are forked):
 *
 *   - heartbeats: every third of the shortest claim idle it resets the idle
 *     time of the entries each process holds (XCLAIM ... JUSTID, in that
 *     process's consumer name) and reads their cancel keys;
 *   - cancel: a cancelled running task stops its process (the pool kills
 *     it); a cancelled held one is put in the slot's ring and not run;
 *   - timeouts: a task running past its deadline stops its process;
 *   - a process that died (crash, kill, out of memory) fails its running
 *     task with CF_EWORKER and the pool's account of the death.
 * In each of these cases the supervisor posts the task's result itself (on
 * its own connection, like any result: XADD, XACK, XDEL, DEL), then starts
 * a new process in the same slot; its first read takes the entries the old
 * one held and never ran (XREADGROUP ... 0), as deliveries again.
 *
 * The processes run in a cfutures process pool: each runs one long task,
 * rw_host_main(), which returns when the process has drained.  Its
 * argument is the supervisor's address, valid in the process because the
 * process is a fork of the application's image (made when the pool started
 * its fork server, after the supervisor was built): the process reads the
 * options and names from there.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#include "remote_worker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mman.h>

/* How often the supervisor looks at deadlines and drains (and a process at its drain flag). */
#define RW_WATCH_PERIOD 0.02

struct cf__rw_host {
    cf_remote_worker_t *w;
    int index;
    cf_future_t *f;    /* the process's rw_host_main(), while it runs */
    int stop_err;      /* f was cancelled to stop the task below: CF_ETIMEDOUT or CF_ECANCELED */
    double stop_after; /* the timeout that ran out */
    char entry[48], id[64], fname[128], client[256];
    int finished; /* returned after a drain: not started again */
    ev_timer restart;
    double backoff;
};

struct host_arg {
    cf_remote_worker_t *sup;
    int index;
};

/* ------------------------------------------------------------------ the process */

static void host_watch_cb(struct ev_loop *ev, ev_timer *tm, int revents)
{
    cf_remote_worker_t *w = tm->data;

    (void)revents;
    if (!w->draining && atomic_load_explicit(&w->slot->drain, memory_order_acquire))
        cf_remote_worker_drain(w);
    if (cf_remote_worker_done(w))
        ev_break(ev, EVBREAK_ALL);
}

/* A task process's life: a consumer of its own, until the supervisor asks it to drain. */
static int rw_host_main(cf_task_t *task, void *arg)
{
    struct host_arg a;
    const cf_remote_worker_t *sup;
    cf_remote_worker_opts o;
    struct ev_loop *ev;
    cf_loop_t *loop = NULL;
    cf_remote_worker_t *w = NULL;
    ev_timer watch;
    char name[160];
    size_t unposted;
    int rc;

    memcpy(&a, arg, sizeof(a));
    sup = a.sup; /* this process's copy of it */
    o = sup->opts;
    snprintf(name, sizeof(name), "%s.%d", sup->name, a.index);
    o.url = sup->url_str;
    o.queue = sup->queue;
    o.name = name;
    o.tasks_id = sup->tasks_id;
    o.procs = 1;
    if (!(ev = ev_loop_new(EVFLAG_AUTO)))
        return cf_task_fail(task, CF_ENOMEM, "task process %d: cannot make a loop", a.index);
    if ((rc = cf_loop_new(ev, &loop)) != 0 || (rc = cf__rw_new(loop, &o, &sup->slots[a.index], &w)) != 0) {
        rc = cf_task_fail(task, rc, "task process %d: %s", a.index, cf_last_error());
        if (loop)
            cf_loop_close(loop);
        ev_loop_destroy(ev);
        return rc;
    }
    ev_timer_init(&watch, host_watch_cb, RW_WATCH_PERIOD, RW_WATCH_PERIOD);
    watch.data = w;
    ev_timer_start(ev, &watch);
    ev_run(ev, 0);
    ev_timer_stop(ev, &watch);
    unposted = cf_remote_worker_unposted(w);
    cf_remote_worker_free(w);
    ev_run(ev, EVRUN_NOWAIT);
    if (cf_loop_close(loop) == 0)
        ev_loop_destroy(ev);
    cf_task_set_i64(task, (int64_t)unposted);
    return 0;
}

/* ------------------------------------------------------------------ the supervisor */

/*
 * A consistent copy of slot k (the process writes it between two increments
 * of seq): 0, or -1 when the process kept writing (then the copy may be
 * torn).  A process that died in the middle of a write leaves seq odd for
 * good: its copy is never trusted (host_done_cb()).
 */
static int slot_read(const cf_remote_worker_t *w, int k, struct cf__rw_slot *out)
{
    struct cf__rw_slot *s = &w->slots[k];

    for (int tries = 0;; tries++) {
        uint32_t a = atomic_load_explicit(&s->seq, memory_order_acquire), b;
        out->running = s->running;
        out->deadline_ns = s->deadline_ns;
        out->timeout = s->timeout;
        out->claim_idle = s->claim_idle;
        out->nheld = s->nheld < RW_HELD_MAX ? s->nheld : RW_HELD_MAX;
        memcpy(out->entry, s->entry, sizeof(out->entry));
        memcpy(out->id, s->id, sizeof(out->id));
        memcpy(out->fname, s->fname, sizeof(out->fname));
        memcpy(out->client, s->client, sizeof(out->client));
        memcpy(out->held, s->held, sizeof(out->held));
        memcpy(out->hkey, s->hkey, sizeof(out->hkey));
        out->entry[sizeof(out->entry) - 1] = out->id[sizeof(out->id) - 1] = 0;
        out->fname[sizeof(out->fname) - 1] = out->client[sizeof(out->client) - 1] = 0;
        for (unsigned i = 0; i < RW_HELD_MAX; i++) {
            out->held[i][sizeof(out->held[i]) - 1] = 0;
            out->hkey[i][sizeof(out->hkey[i]) - 1] = 0;
        }
        atomic_thread_fence(memory_order_acquire);
        b = atomic_load_explicit(&s->seq, memory_order_relaxed);
        if (a == b && !(a & 1))
            return 0;
        if (tries >= 64)
            return -1;
        if (tries >= 8)
            sched_yield();
    }
}

static void host_done_cb(cf_future_t *f, int status, void *data);

/* Start process h again after its backoff (50 ms doubling to 2 s). */
static void host_retry_later(struct cf__rw_host *h)
{
    ev_timer_set(&h->restart, h->backoff, 0);
    ev_timer_start(h->w->loop->ev, &h->restart);
    h->backoff = h->backoff * 2 > 2.0 ? 2.0 : h->backoff * 2;
}

static void host_start(struct cf__rw_host *h)
{
    cf_remote_worker_t *w = h->w;
    struct host_arg a = {.sup = w, .index = h->index};
    int rc;

    if (w->draining)
        return;
    rc = cf_process_pool_submit(w->pp, rw_host_main, &a, sizeof(a), 0, &h->f);
    if (rc == 0 && (rc = cf_future_on_done(h->f, host_done_cb, h, NULL)) != 0) {
        cf_future_cancel(h->f);
        cf_future_unref(h->f);
    }
    if (rc != 0) {
        h->f = NULL;
        fprintf(stderr, "cfutures: remote worker %s: cannot start task process %d: %s (again in %.2f s)\n", w->name,
                h->index, cf_last_error(), h->backoff);
        host_retry_later(h);
    }
}

static void host_restart_cb(struct ev_loop *ev, ev_timer *tm, int revents)
{
    (void)ev;
    (void)revents;
    host_start(tm->data);
}

/* Post the failure of a task a process took, as a result of this worker's. */
static void host_fail(cf_remote_worker_t *w, const char *entry, const char *client, const char *id,
                      const char *fname, int err, const char *msg)
{
    struct wtask *t = calloc(1, sizeof(*t));

    if (!t)
        return; /* left pending: claimed again later */
    t->w = w;
    snprintf(t->entry, sizeof(t->entry), "%s", entry);
    t->client = strdup(client);
    t->id = strdup(id);
    t->fname = strdup(fname);
    if (!t->client || !t->id || !t->fname) {
        cf__rw_task_free(t);
        return;
    }
    cf__list_push(&w->running, &t->link);
    w->nrunning++;
    cf__rw_fail(t, err, "%s", msg);
}

/* Stop process h (the pool kills it) for the task it runs; its result is posted once it is gone. */
static void host_stop(struct cf__rw_host *h, const struct cf__rw_slot *s, int err)
{
    if (!h->f || h->stop_err)
        return;
    h->stop_err = err;
    h->stop_after = s->timeout;
    memcpy(h->entry, s->entry, sizeof(h->entry));
    memcpy(h->id, s->id, sizeof(h->id));
    memcpy(h->fname, s->fname, sizeof(h->fname));
    memcpy(h->client, s->client, sizeof(h->client));
    cf_future_cancel(h->f);
}

static void host_done_cb(cf_future_t *f, int status, void *data)
{
    struct cf__rw_host *h = data;
    cf_remote_worker_t *w = h->w;
    struct cf__rw_slot s;
    char msg[1024];
    int setup_failed = 0;

    if (slot_read(w, h->index, &s) != 0) {
        /* It died in the middle of a write: what it ran and held is not
         * known (the copy may mix two tasks).  Nothing is posted or resumed
         * on a guess: the entries stay pending in its consumer's name, and
         * the claims take them over once their heartbeats stop. */
        memset(&s, 0, sizeof(s));
    }
    if (h->stop_err == CF_ETIMEDOUT) {
        snprintf(msg, sizeof(msg), "task %s timed out after %.3f s on worker %s process %d (stopped)", h->fname,
                 h->stop_after, w->ident, h->index);
        host_fail(w, h->entry, h->client, h->id, h->fname, CF_ETIMEDOUT, msg);
    } else if (h->stop_err) {
        snprintf(msg, sizeof(msg), "task %s cancelled on worker %s process %d", h->fname, w->ident, h->index);
        host_fail(w, h->entry, h->client, h->id, h->fname, CF_ECANCELED, msg);
    } else if (status == 0) {
        int64_t unposted = 0;
        cf_future_result_i64(f, &unposted);
        w->host_unposted += (uint64_t)unposted;
        h->finished = 1;
    } else if (s.running) {
        snprintf(msg, sizeof(msg), "task %s: %s (on worker %s process %d)", s.fname,
                 cf_future_error(f) ? cf_future_error(f) : cf_strerror(status), w->ident, h->index);
        host_fail(w, s.entry, s.client, s.id, s.fname, status == CF_ECANCELED ? CF_EWORKER : status, msg);
    } else if (status != CF_EWORKER && status != CF_ECANCELED) {
        /* It could not start (its loop, its worker): again after a while. */
        fprintf(stderr, "cfutures: remote worker %s: task process %d: %s (starting it again in %.2f s)\n", w->name,
                h->index, cf_future_error(f) ? cf_future_error(f) : cf_strerror(status), h->backoff);
        setup_failed = 1;
    }
    /* The process is gone: nothing of its slot holds any more, but the
     * entries it held and never ran are the next one's to take. */
    {
        struct cf__rw_slot *live = &w->slots[h->index];
        unsigned n = 0;
        uint32_t q = atomic_load_explicit(&live->seq, memory_order_acquire);
        if (q & 1) /* a write it left half done: even again, or the next process's would read as odd */
            atomic_store_explicit(&live->seq, q + 1, memory_order_release);
        atomic_fetch_add_explicit(&live->seq, 1, memory_order_acq_rel);
        for (unsigned i = 0; i < s.nheld; i++)
            if (!(s.running && strcmp(s.held[i], s.entry) == 0) && strcmp(s.held[i], h->entry) != 0)
                memcpy(live->resume[n++], s.held[i], sizeof(live->resume[0]));
        live->nresume = n;
        live->running = 0;
        live->nheld = 0; /* (the cancel ring stays: it may name a resumed entry) */
        atomic_fetch_add_explicit(&live->seq, 1, memory_order_acq_rel);
    }
    cf_future_unref(f);
    h->f = NULL;
    h->stop_err = 0;
    if (h->finished) {
        /* drained */
    } else if (setup_failed) {
        host_retry_later(h);
    } else {
        /* The failure's XACK goes out first: the next process reads what its consumer still holds. */
        cf__rconn_flush(&w->cmd);
        h->backoff = 0.05;
        host_start(h);
    }
    cf__rw_check_done(w);
}

/* Timeouts, and the heartbeat period for the entries the processes hold. */
static void watch_cb(struct ev_loop *ev, ev_timer *tm, int revents)
{
    cf_remote_worker_t *w = tm->data;
    uint64_t now = cf_now_ns();

    (void)ev;
    (void)revents;
    for (int k = 0; k < w->opts.procs; k++) {
        struct cf__rw_host *h = &w->hosts[k];
        struct cf__rw_slot s;
        if (!h->f || h->stop_err || slot_read(w, k, &s) != 0)
            continue;
        if (s.running && s.deadline_ns && now > s.deadline_ns)
            host_stop(h, &s, CF_ETIMEDOUT);
        if (s.nheld && s.claim_idle > 0)
            cf__rw_beat_period(w, s.claim_idle); /* heartbeats soon enough for what the process took */
    }
}

/* The entries whose cancel keys an MGET asked for: slot, held index. */
struct host_cancel {
    cf_remote_worker_t *w;
    size_t n;
    struct {
        int k;
        char entry[48];
        char key[320];
    } e[];
};

static void host_cancel_cb(redisAsyncContext *ac, void *r, void *priv)
{
    struct host_cancel *hc = priv;
    cf_remote_worker_t *w = hc->w;
    redisReply *reply = r;

    (void)ac;
    if (reply && reply->type == REDIS_REPLY_ARRAY)
        for (size_t i = 0; i < reply->elements && i < hc->n; i++) {
            struct cf__rw_slot s, *live;
            struct cf__rw_host *h;
            uint32_t nc;
            if (reply->element[i]->type != REDIS_REPLY_STRING)
                continue;
            h = &w->hosts[hc->e[i].k];
            live = &w->slots[hc->e[i].k];
            if (!h->f || slot_read(w, hc->e[i].k, &s) != 0)
                continue;
            if (s.running && strcmp(s.entry, hc->e[i].entry) == 0) {
                host_stop(h, &s, CF_ECANCELED);
                continue;
            }
            /* Held, not running (yet): the process skips it. */
            nc = atomic_load_explicit(&live->ncancelled, memory_order_relaxed);
            for (uint32_t j = 0; j < nc && j < RW_HELD_MAX; j++)
                if (strcmp(live->cancelled[j], hc->e[i].entry) == 0)
                    goto next;
            snprintf(live->cancelled[nc % RW_HELD_MAX], sizeof(live->cancelled[0]), "%s", hc->e[i].entry);
            atomic_store_explicit(&live->ncancelled, nc + 1, memory_order_release);
        next:;
        }
    free(hc);
}

double cf__rw_hosts_beat(cf_remote_worker_t *w)
{
    size_t cap = (size_t)w->opts.procs * RW_HELD_MAX;
    struct host_cancel *hc = calloc(1, sizeof(*hc) + cap * sizeof(hc->e[0]));
    const char **mget = calloc(cap + 1, sizeof(*mget));
    double p = w->opts.claim_idle / 3;

    if (!hc || !mget) {
        free(hc);
        free(mget);
        return p;
    }
    hc->w = w;
    mget[0] = "MGET";
    for (int k = 0; k < w->opts.procs; k++) {
        struct cf__rw_slot s;
        const char *argv[6 + RW_HELD_MAX];
        char consumer[200];
        int n = 0;
        if (!w->hosts[k].f || slot_read(w, k, &s) != 0 || !s.nheld)
            continue;
        snprintf(consumer, sizeof(consumer), "%s.%d", w->name, k);
        argv[n++] = "XCLAIM";
        argv[n++] = w->queue;
        argv[n++] = RW_GROUP;
        argv[n++] = consumer;
        argv[n++] = "0";
        for (unsigned i = 0; i < s.nheld; i++) {
            argv[n++] = s.held[i];
            hc->e[hc->n].k = k;
            memcpy(hc->e[hc->n].entry, s.held[i], sizeof(hc->e[0].entry));
            hc->e[hc->n].entry[sizeof(hc->e[0].entry) - 1] = 0;
            memcpy(hc->e[hc->n].key, s.hkey[i], sizeof(hc->e[0].key));
            hc->e[hc->n].key[sizeof(hc->e[0].key) - 1] = 0;
            mget[1 + hc->n] = hc->e[hc->n].key;
            hc->n++;
        }
        argv[n++] = "JUSTID";
        cf__rconn_cmd(&w->cmd, NULL, NULL, n, argv, NULL);
        if (s.claim_idle > 0 && s.claim_idle / 3 < p)
            p = s.claim_idle / 3;
    }
    if (hc->n && cf__rconn_cmd(&w->cmd, host_cancel_cb, hc, (int)(1 + hc->n), mget, NULL) == 0)
        hc = NULL;
    free(hc);
    free(mget);
    return p;
}

int cf__rw_hosts_start(cf_remote_worker_t *w)
{
    cf_process_pool_opts po;
    size_t len = (size_t)w->opts.procs * sizeof(*w->slots);
    int rc;

    w->slots = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (w->slots == MAP_FAILED) {
        w->slots = NULL;
        return cf__set_error(CF_ENOMEM, "cf_remote_worker_new: cannot map %zu bytes of shared memory", len);
    }
    w->hosts = calloc((size_t)w->opts.procs, sizeof(*w->hosts));
    if (!w->hosts)
        return CF_ENOMEM;
    cf_process_pool_opts_init(&po);
    po.max_workers = w->opts.procs;
    po.pipeline = 1;
    rc = cf_process_pool_new(w->loop, &po, &w->pp);
    if (rc)
        return rc;
    for (int k = 0; k < w->opts.procs; k++) {
        struct cf__rw_host *h = &w->hosts[k];
        h->w = w;
        h->index = k;
        h->backoff = 0.05;
        ev_timer_init(&h->restart, host_restart_cb, 0, 0);
        h->restart.data = h;
        host_start(h);
    }
    ev_timer_init(&w->watch, watch_cb, RW_WATCH_PERIOD, RW_WATCH_PERIOD);
    w->watch.data = w;
    ev_timer_start(w->loop->ev, &w->watch);
    ev_unref(w->loop->ev);
    return 0;
}

void cf__rw_hosts_drain(cf_remote_worker_t *w)
{
    for (int k = 0; k < w->opts.procs; k++) {
        atomic_store_explicit(&w->slots[k].drain, 1, memory_order_release);
        if (ev_is_active(&w->hosts[k].restart))
            ev_timer_stop(w->loop->ev, &w->hosts[k].restart);
    }
}

int cf__rw_hosts_done(const cf_remote_worker_t *w)
{
    for (int k = 0; k < w->opts.procs; k++)
        if (w->hosts[k].f)
            return 0;
    return 1;
}

void cf__rw_hosts_stats(const cf_remote_worker_t *w, uint64_t *done, int *running)
{
    for (int k = 0; k < w->opts.procs; k++) {
        *done += atomic_load_explicit(&w->slots[k].tasks_done, memory_order_relaxed);
        *running += w->slots[k].running && w->hosts[k].f;
    }
}

void cf__rw_hosts_free(cf_remote_worker_t *w)
{
    if (w->hosts) {
        for (int k = 0; k < w->opts.procs; k++) {
            struct cf__rw_host *h = &w->hosts[k];
            if (h->f) {
                cf__future_remove_cb(h->f, host_done_cb, h);
                cf_future_unref(h->f);
                h->f = NULL;
            }
            if (ev_is_active(&h->restart))
                ev_timer_stop(w->loop->ev, &h->restart);
        }
        if (ev_is_active(&w->watch)) {
            ev_ref(w->loop->ev);
            ev_timer_stop(w->loop->ev, &w->watch);
        }
    }
    cf_process_pool_free(w->pp); /* kills the processes; their entries stay pending for others to claim */
    w->pp = NULL;
    free(w->hosts);
    w->hosts = NULL;
    if (w->slots)
        munmap(w->slots, (size_t)w->opts.procs * sizeof(*w->slots));
    w->slots = NULL;
}
