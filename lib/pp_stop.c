/*
 * pp_stop.c - the process pool's cancels and stops, parent side: cancel of
 * a queued, sent-ahead or running task, and the stop of a worker for the
 * task it runs.
 *
 * DESIGN
 *
 * Start gates (pp.h) decide every race between the pool and a worker over
 * a task: the pool cancels a task sent ahead by a compare-exchange
 * GATE_OPEN -> GATE_CANCELLED and stops a worker for a task only by a
 * compare-exchange GATE_TAKEN -> GATE_STOP; the worker takes a gate OPEN ->
 * TAKEN before it runs the task and moves it TAKEN -> DONE when the task
 * returns.  Whoever comes first wins.
 *
 * Cancel.  A queued task is taken out of the queue.  A task sent ahead
 * whose gate the pool closes never runs: its future ends CANCELLED at once
 * and the worker skips it (PT_SENT_CANCELLED).  A task that runs, or that
 * the worker took already, is stopped with its worker (CF_EBUSY; the future
 * ends CANCELLED when the worker is gone, or when its RESULT arrives if it
 * had ended: see Stop).
 *
 * Stop.  When the pool decides to stop a worker for its task T (a timeout,
 * a cancel of a task the worker took), what the pool knows of the worker
 * may be stale: frames are read lazily (pp_channel.c), so T may have ended
 * and the worker moved on to the next task sent ahead.  The gate says
 * what the frames do not yet: cf__pp_stop_task() signals the worker only
 * if it moved T's gate TAKEN -> STOP, that is, while the worker runs T;
 * from then on the worker takes no other gate (if T returns before the
 * signal lands, the worker finds STOP, sends nothing and waits for the
 * signal), so the tasks sent ahead behind T stay untouched and go back to
 * the front of the queue when the worker is gone (pp_server.c).  If the
 * gate is DONE, T has ended: nothing is signalled, and T's RESULT, on its
 * way, completes T's future with the timeout or cancel that was decided.
 * If it is still OPEN (the worker publishes T's ACK just before it takes
 * T's gate, and the pool read it), the pool closes it: T never runs, the
 * worker skips it, and its RESULT completes it the same way.  The RESULT
 * of every task before T was published before T's gate was taken
 * (pp_child.c), so a stop loses no other task's result.
 *
 * Loop thread only.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#include "pp_pool.h"

#include <signal.h>

/* The start gate of `t`, sent to t->w. */
static _Atomic uint8_t *task_gate(const struct pp_task *t)
{
    return &t->w->gate[t->seq % CF__PP_GATES];
}

/* Close the start gate of `t`: 0, or -1 if the worker took it first. */
static int gate_close(struct pp_task *t)
{
    uint8_t open = CF__GATE_OPEN;

    return atomic_compare_exchange_strong(task_gate(t), &open, CF__GATE_CANCELLED) ? 0 : -1;
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

/* Has the worker taken the start gate of `t` (sent to t->w), that is, has `t` started? */
int cf__pp_task_started(const struct pp_task *t)
{
    return atomic_load(task_gate(t)) != CF__GATE_OPEN;
}

/*
 * The pool decided to stop the task `t` (PT_TIMING_OUT or PT_CANCELLING)
 * by stopping its worker: done only if `t` runs right now, which its gate
 * decides (see DESIGN).  Otherwise `t` has ended, or it has not started
 * (its ACK, read already, goes out just before the worker takes the gate):
 * then its gate is closed and the worker skips it.  Either way its RESULT,
 * on its way, completes it as decided.
 */
void cf__pp_stop_task(struct pp_task *t)
{
    _Atomic uint8_t *g = task_gate(t);
    uint8_t v = CF__GATE_TAKEN;

    for (;;) {
        if (atomic_compare_exchange_strong(g, &v, CF__GATE_STOP) || v == CF__GATE_STOP) {
            cf__pp_worker_stop(t->w);
            return;
        }
        if (v != CF__GATE_OPEN)
            return; /* DONE: it has ended */
        if (atomic_compare_exchange_strong(g, &v, CF__GATE_CANCELLED)) {
            t->never_started = 1; /* closed before it started */
            return;
        }
        /* The worker took it in between: v is TAKEN now. */
    }
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
        /* The worker took it: it runs, or has ended and its RESULT is on
         * its way (its ACK is read lazily); the gate tells which. */
        atomic_store(&f->cancel_req, 1);
        pool->nrunning++;
        cf__pp_task_set(t, PT_CANCELLING);
        cf__pp_stop_task(t);
        return CF_EBUSY;
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
