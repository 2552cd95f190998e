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
 * of its slot: the pool resets it to GATE_OPEN before it writes the task;
 * the worker exchanges it for GATE_TAKEN before it runs the task; the pool
 * cancels a task it sent ahead by a compare-exchange GATE_OPEN ->
 * GATE_CANCELLED.  Whoever comes first wins, so a cancelled task never runs
 * and a worker never loses its life over it (it skips the task and reports
 * it cancelled).  A worker has fewer than CF__PP_GATES tasks in flight.
 */
#define CF__PP_GATES 256u
enum { CF__GATE_OPEN = 0, CF__GATE_TAKEN = 1, CF__GATE_CANCELLED = 2 };

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
    _Atomic uint8_t *gates; /* CF__PP_GATES per slot */
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
