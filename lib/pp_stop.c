/*
 * pp_stop.c - the process pool's cancels and stops, parent side: cancel of
 * a queued, sent-ahead or running task, and the recall of the tasks sent
 * ahead to a worker the pool decided to stop.
 *
 * DESIGN
 *
 * Start gates (pp.h) decide every race between the pool and a worker over
 * a task sent ahead: the pool closes a gate with a compare-exchange
 * GATE_OPEN -> GATE_CANCELLED, the worker takes it with an exchange for
 * GATE_TAKEN before it runs the task, and whoever comes first wins.
 *
 * Cancel.  A queued task is taken out of the queue.  A task sent ahead
 * whose gate the pool closes never runs: its future ends CANCELLED at once
 * and the worker skips it (PT_SENT_CANCELLED).  A task that runs, or that
 * the worker took already, is stopped with its worker (CF_EBUSY; the future
 * ends CANCELLED when the worker is gone).
 *
 * Stop.  When the pool decides to stop a worker for its task T (a timeout,
 * a cancel while running), the tasks sent ahead behind T must not be caught
 * by the signal: T may end just before the signal lands, and the worker
 * would start the next one.  So cf__pp_stop_task() first closes the gates
 * of the tasks behind T, oldest first: each becomes PT_RECALLED (its future
 * stays pending), the worker skips it if it gets that far, and it goes back
 * to the front of the queue for another worker when its skipped RESULT
 * arrives or the worker is gone.  If a gate behind T is already taken, T
 * has ended (a worker takes its tasks in order): the worker runs that task
 * and is not stopped; T's RESULT is on its way and completes T's future
 * with the timeout or cancel that was decided.
 *
 * Loop thread only.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#include "pp_pool.h"

#include <signal.h>

/* Put `t` (out of every list) at the front of the queue. */
void cf__pp_requeue_front(cf_process_pool_t *pool, struct pp_task *t)
{
    cf__pp_task_set(t, PT_QUEUED);
    t->w = NULL;
    cf__list_push(pool->queue.next, &t->link); /* before the first: at the front */
    pool->nqueued++;
}

/* Close the start gate of `t`, sent to t->w: 0, or -1 if the worker took it first. */
static int gate_close(struct pp_task *t)
{
    uint8_t open = CF__GATE_OPEN;

    return atomic_compare_exchange_strong(&t->w->gate[t->seq % CF__PP_GATES], &open, CF__GATE_CANCELLED) ? 0 : -1;
}

/*
 * Cancel a task sent ahead (PT_SENT) if its worker has not taken it: close
 * its start gate; the worker skips it.  0, or -1 if the worker took it.
 */
int cf__pp_cancel_sent(struct pp_task *t)
{
    if (gate_close(t) != 0)
        return -1;
    cf__pp_complete(t, NULL, CF_ECANCELED, NULL);
    cf__pp_task_set(t, PT_SENT_CANCELLED);
    return 0;
}

/*
 * Recall the tasks sent ahead behind `t` (see DESIGN).  0 when they are all
 * out of reach, -1 when the worker already took one: `t` has ended.
 */
static int recall_after(struct pp_task *t)
{
    struct pp_worker *w = t->w;

    for (struct cf__list *n = t->link.next; n != &w->inflight; n = n->next) {
        struct pp_task *u = cf__container_of(n, struct pp_task, link);

        if (u->state != PT_SENT)
            continue; /* its gate is closed already (cancelled or recalled) */
        if (gate_close(u) != 0)
            return -1;
        cf__pp_task_set(u, PT_RECALLED);
    }
    return 0;
}

/*
 * The pool decided to stop the task `t` (PT_TIMING_OUT or PT_CANCELLING) by
 * stopping its worker.  The worker took `t` (it acknowledged it, or its
 * gate is taken; an ACK is read lazily, pp.h), so it runs `t` or has just
 * finished it and cannot start another: it is signalled now.  Called again
 * when the ACK of a task cancelled this way is read: the worker is already
 * being stopped then, or it had moved on to the next task.
 */
void cf__pp_stop_task(struct pp_task *t)
{
    if (recall_after(t) != 0)
        return; /* `t` has ended and the worker runs the next task: leave it alone */
    cf__pp_worker_stop(t->w);
}

int cf__pp_cancel(cf_future_t *f)
{
    struct pp_task *t = f->owner;
    cf_process_pool_t *pool = t->pool;

    switch (t->state) {
    case PT_QUEUED:
        cf__list_remove(&t->link);
        pool->nqueued--;
        cf__pp_task_set(t, PT_DONE);
        cf__pp_complete(t, NULL, CF_ECANCELED, NULL);
        cf__pp_task_free(t);
        return 0;
    case PT_SENT:
        if (cf__pp_cancel_sent(t) == 0)
            return 0;
        /* The worker took it: it runs, and is stopped once acknowledged;
         * until then it gets no new task (the signal must not reach one). */
        atomic_store(&f->cancel_req, 1);
        pool->nrunning++;
        cf__pp_task_set(t, PT_CANCELLING);
        cf__pp_stop_task(t);
        return CF_EBUSY;
    case PT_RECALLED: /* its gate is closed: it will not run here */
        cf__pp_complete(t, NULL, CF_ECANCELED, NULL);
        cf__pp_task_set(t, PT_SENT_CANCELLED);
        return 0;
    case PT_SKIPPING: /* recalled and skipped: its RESULT follows */
        cf__pp_complete(t, NULL, CF_ECANCELED, NULL);
        return 0;
    case PT_RUNNING:
        atomic_store(&f->cancel_req, 1);
        cf__pp_task_set(t, PT_CANCELLING);
        cf__pp_stop_task(t);
        return CF_EBUSY;
    case PT_TIMING_OUT:
    case PT_CANCELLING:
        atomic_store(&f->cancel_req, 1);
        return CF_EBUSY;
    default:
        return CF_EALREADY;
    }
}
