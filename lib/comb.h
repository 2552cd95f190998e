/*
 * comb.h - the engine under every combinator.  Not installed.
 *
 * DESIGN
 *
 * A comb watches input futures and settles one output future once, by a
 * rule its kind supplies.  The engine owns what every kind shares: the
 * inputs (slots), the references, the timer and "finish once"; each kind
 * (lib/comb_gather.c, comb_chain.c, comb_each.c, comb_group.c) embeds a
 * struct cf__comb as its first member, keeps its own state beside it and
 * reacts through a struct cf__comb_ops.
 *
 * Everything here runs on the loop thread and takes no lock.
 *
 *   attach:  each slot takes a reference on its input and registers the
 *            engine's done callback with the slot as data; each registration
 *            holds a reference on the comb.
 *   react:   when an input is done the engine calls ops->input_done, unless
 *            the comb already finished.  When the timer fires it calls
 *            ops->timed_out.
 *   finish:  cf__comb_finish() settles `out` (its callbacks run on a later
 *            iteration), unregisters from inputs still pending (a
 *            never-completed input does not keep the comb alive), stops the
 *            timer and drops the comb's own reference.  Only the first call
 *            does anything.
 *   cancel:  cf_future_cancel() on `out` reaches the comb through the
 *            output's ops (`out->owner` is the comb while it may still
 *            settle `out`); kinds with `cancel_inputs` cancel the inputs they
 *            still wait for, then the comb finishes CANCELLED.
 *
 * References: the comb holds one on each input (until it is freed) and one on
 * `out` (until it finished).  It is freed, and ops->fini called, when its own
 * reference and every registration are gone, whichever goes last.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#ifndef CF_COMB_H
#define CF_COMB_H

#include "internal.h"

struct cf__comb;

/* One input. */
struct cf__comb_slot {
    struct cf__comb *c;
    cf_future_t *f;   /* one reference, held until the comb is freed */
    size_t index;     /* the input's position, as the kind numbers them */
    uint8_t attached; /* the engine's done callback is registered on f */
};

struct cf__comb_ops {
    /* Input `s` is done with `status` (never called after the comb finished). */
    void (*input_done)(struct cf__comb *c, struct cf__comb_slot *s, int status);
    /* The timer started by cf__comb_start_timer() fired; NULL if never started. */
    void (*timed_out)(struct cf__comb *c);
    /* Release what the kind owns; called once, when the comb is freed.  May be NULL. */
    void (*fini)(struct cf__comb *c);
    /* Cancelling the output first cancels the inputs still pending. */
    uint8_t cancel_inputs;
};

struct cf__comb {
    const struct cf__comb_ops *ops;
    cf_loop_t *loop;
    cf_future_t *out; /* one reference until finished; NULL when there is none (yet) */
    unsigned refs;
    uint8_t finished;
    uint8_t timer_on;
    size_t n;     /* slots in use */
    size_t ndone; /* inputs seen done */
    /* Slots live in segments of seg_len, so their addresses (the callback
     * data) never move; segs[0] == seg0, and segs == &seg0 while nseg <= 1. */
    struct cf__comb_slot *seg0;
    struct cf__comb_slot **segs;
    size_t nseg;
    size_t seg_len;
    ev_timer timer;
};

static inline struct cf__comb_slot *cf__comb_slot(struct cf__comb *c, size_t i)
{
    return i < c->seg_len ? &c->seg0[i] : &c->segs[i / c->seg_len][i % c->seg_len];
}

/*
 * A comb of `size` bytes (the kind's struct, which starts with a struct
 * cf__comb), zeroed, with one reference (its own), room for `n` slots (0: a
 * growing comb, see cf__comb_add()) and, if `with_out`, a pending output
 * future whose cancel reaches the comb.  NULL when out of memory.
 */
struct cf__comb *cf__comb_new(cf_loop_t *loop, const struct cf__comb_ops *ops, size_t size, size_t n, int with_out);
/* Undo cf__comb_new() (and attaching) before anything was handed out. */
void cf__comb_discard(struct cf__comb *c);
/* cf__comb_new() plus every input fs[0..n) attached at slot i with index i. */
int cf__comb_build(cf_loop_t *loop, const struct cf__comb_ops *ops, size_t size, cf_future_t *const *fs, size_t n,
                   struct cf__comb **out);
/* Fill slot `s` with `f` (one reference) and register for its completion.
 * Returns 0 or CF_ENOMEM (the slot then holds its reference, not attached). */
int cf__comb_attach(struct cf__comb *c, struct cf__comb_slot *s, cf_future_t *f, size_t index);
/* Append a slot to a growing comb (n == 0 at creation) and attach `f`.  On
 * CF_ENOMEM from the registration the slot stays, holding its reference,
 * counted done. */
int cf__comb_add(struct cf__comb *c, cf_future_t *f);
/* Give the comb an output (a fresh pending future): the caller's handle. */
int cf__comb_add_output(struct cf__comb *c);
/* Route cancellation of an existing future `out` to the comb (one reference taken). */
void cf__comb_take_output(struct cf__comb *c, cf_future_t *out);
/* A new reference on the output for the caller. */
cf_future_t *cf__comb_output(struct cf__comb *c);

void cf__comb_ref(struct cf__comb *c);
void cf__comb_unref(struct cf__comb *c);

/* Run ops->timed_out after `seconds` (< 0: never). */
void cf__comb_start_timer(struct cf__comb *c, double seconds);
/* Stop watching: mark finished, stop the timer, unregister from pending
 * inputs.  Does not settle or release anything else. */
void cf__comb_detach(struct cf__comb *c);
/*
 * Settle `out` (if any and still pending) with `st` (err and msg for FAILED;
 * msg is taken over, may be NULL), detach, release `out` and the comb's own
 * reference.  Only the first call counts; later ones free msg.
 */
void cf__comb_finish(struct cf__comb *c, cf_future_state st, int err, char *msg);
/* Request cancellation of every input still pending, except `except`. */
void cf__comb_cancel_pending(struct cf__comb *c, const cf_future_t *except);

/* 1 when f is in a final state. */
static inline int cf__done(const cf_future_t *f)
{
    return cf_future_get_state(f) >= CF_FUTURE_FINISHED;
}

/*
 * Validate an input array for `func` (named in the error message): fs may be
 * NULL only when n is 0, no entry is NULL, all belong to one loop, returned
 * in *loop (left NULL for n == 0).  Returns 0 or CF_EINVAL with
 * cf_last_error() set.
 */
int cf__comb_check_inputs(const char *func, cf_future_t *const *fs, size_t n, cf_loop_t **loop);
/* As cf__comb_check_inputs(), and n must be > 0 (something must name the loop). */
int cf__comb_check_inputs_loop(const char *func, cf_future_t *const *fs, size_t n, cf_loop_t **loop);

#endif /* CF_COMB_H */
