/*
 * pp.h - shared between the process pool (parent side, process_pool.c) and
 * its fork server and workers (pp_child.c).
 *
 * Control channel (SOCK_SEQPACKET, one message per datagram):
 *   parent -> server  SPAWN   {index}          fork a worker for slot `index`
 *   server -> parent  SPAWNED {index, pid}     + the parent's ends of the worker's
 *                                               channel (SCM_RIGHTS): the socket that
 *                                               carries tasks down and the read end of
 *                                               the pipe that carries frames up;
 *                                               pid < 0 is -errno
 *   server -> parent  EXITED  {pid, status}    a worker was reaped (waitpid status)
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#ifndef CF_PP_H
#define CF_PP_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cfutures.h"

/*
 * Start gates: a page shared by the pool and every worker (MAP_SHARED,
 * mapped before the fork server is forked), CF__PP_GATES bytes per worker
 * slot.  The n-th task a worker process receives uses byte n % CF__PP_GATES
 * of its slot; the pool resets it to GATE_OPEN before it writes the task.
 * A worker has fewer than CF__PP_GATES tasks in flight, and a gate is not
 * reused before the pool read its task's RESULT.  Every change of a gate is
 * a compare-exchange, so whoever comes first wins:
 *
 *   OPEN --worker takes it--> TAKEN --worker: the task returned--> DONE
 *     |                         |
 *     | pool: cancel, or a      | pool: stop its worker for this task
 *     v stop before it ran      v
 *   CANCELLED                  STOP
 *
 * The worker, before it takes a gate, publishes the task's ACK with every
 * frame it has gathered (the RESULT of the task before), then takes the
 * gate OPEN -> TAKEN, or finds it CANCELLED and skips the task (a
 * cancelled task never runs, and costs no worker).  When the task returns,
 * the worker moves its gate TAKEN -> DONE before it sends the RESULT.  The
 * pool stops a worker for task T (a timeout, a cancel of a task the worker
 * took) only when it moved T's gate TAKEN -> STOP: the worker runs T right
 * now, and never takes another gate: if T returns before the signal lands,
 * the worker finds STOP instead of TAKEN, sends nothing more and waits for
 * the signal.  If the pool finds DONE, T has ended, its RESULT is on its
 * way and no worker is signalled (OPEN: T has not started, and the pool
 * closes its gate instead).  So a stop can only catch the task it was
 * meant for, and no RESULT of an earlier task is lost with it.
 */
#define CF__PP_GATES 256u
enum { CF__GATE_OPEN = 0, CF__GATE_TAKEN = 1, CF__GATE_CANCELLED = 2, CF__GATE_DONE = 3, CF__GATE_STOP = 4 };

/*
 * Frame rings: a worker's frames to the pool go through a ring in shared
 * memory (mapped with the gates, one ring per worker slot), so that a
 * stream of small tasks costs no system call per frame.  The worker copies
 * a frame in at `tail` (8-byte aligned; a frame that would cross the end
 * starts again at the beginning, after a PAD frame when at least a header
 * fits), then publishes the new tail.  The pool reads frames from `head`
 * and publishes how far it got.  Positions only grow (offset = position %
 * CF__PP_RING).  Each frame carries its number (frame.h); a frame larger
 * than CF__PP_RING_FRAME, or one that finds the ring full, goes through the
 * pipe instead, and the pool takes frames strictly by number.
 *
 * Wake-ups: the pool sets want_wake when it has read the ring empty and
 * then looks once more; a worker that publishes frames the pool asked to
 * be woken for clears it and writes a WAKE frame to the pipe.  So the
 * pool, waiting in its loop, is woken for new frames, and a busy pool is
 * not woken again until it has caught up: the frames of a burst share one
 * wake-up.  want_wake is CF__PP_WAKE_RESULT (wake for any frame but an
 * ACK) or CF__PP_WAKE_ACK (for an ACK too); a worker wakes the pool when
 * want_wake >= the level of what it published (CF__PP_WAKE_RESULT when
 * there is a frame other than an ACK among it).  ACKs alone do not wake the
 * pool, which reads them with the RESULT that follows, or when it looks
 * at the ring for another reason (pp_channel.c: a task's timer, which
 * asks for CF__PP_WAKE_ACK when a task's ACK is overdue).
 * The ring survives the worker: what a worker published before it died is
 * read after its pipe's EOF.  Every process of the pool maps every slot's
 * ring (128 KiB each), which counts towards a worker's max_memory
 * (RLIMIT_AS): 8 MiB for 64 workers.  The pool resets a slot's ring before
 * it asks for the slot's process (no process writes to it then).
 */
enum { CF__PP_WAKE_RESULT = 1, CF__PP_WAKE_ACK = 2, CF__PP_WAKE_NEVER = 3 };
#define CF__PP_RING (128u * 1024u)
#define CF__PP_RING_FRAME (CF__PP_RING / 4)
struct cf__pp_ring {
    _Atomic uint64_t tail; /* written by the worker */
    char pad1[56];
    _Atomic uint64_t head; /* written by the pool */
    _Atomic uint32_t want_wake;
    char pad2[52];
    uint8_t data[CF__PP_RING];
};

/*
 * Exit statuses of a worker that cannot go on; the pool names them in its
 * messages.  (A task that calls exit() with one of these is reported the
 * same way; the status is always quoted.)
 */
enum {
    CF__PP_EXIT_SETUP = 116,        /* could not set up its channel */
    CF__PP_EXIT_CHANNEL = 117,      /* malformed input or broken channel */
    CF__PP_EXIT_NOMEM_TASK = 118,   /* out of memory receiving a task */
    CF__PP_EXIT_NOMEM_RESULT = 119, /* out of memory even for the small CF_ENOMEM result */
    CF__PP_EXIT_NOMEM_FRAME = 120,  /* out of memory for a READY or ACK frame */
    CF__PP_EXIT_RLIMIT = 121,       /* max_memory could not be applied (setrlimit failed) */
};

struct cf__pp_config {
    _Atomic uint8_t *gates;    /* CF__PP_GATES per slot */
    struct cf__pp_ring *rings; /* one per slot */
    cf_worker_init_fn initializer;
    cf_worker_fini_fn finalizer;
    void *init_data;
    unsigned max_tasks_per_child;
    size_t max_memory;
    pid_t parent;
};

enum { CF__CTL_SPAWN = 1, CF__CTL_SPAWNED = 2, CF__CTL_EXITED = 3 };

struct cf__pp_ctl {
    uint32_t type;
    int32_t index;
    int32_t pid;
    int32_t status;
};

/* The fork server: never returns.  `ctl` is its end of the control channel. */
void cf__pp_server_main(int ctl, const struct cf__pp_config *cfg) __attribute__((noreturn));

#endif /* CF_PP_H */
