/*
 * cfutures.h - Python's concurrent.futures in C, on a libev loop.
 *
 * One umbrella header.  A single-threaded reactor (a libev loop the
 * application owns) owns every future and runs every completion callback;
 * blocking or CPU-bound work runs on executors (a thread pool) and comes back
 * to the loop through an ev_async watcher.
 *
 *   cfutures/common.h       error codes, cf_strerror(), clock, cpu count
 *   cfutures/loop.h         cf_loop_t: binding to a struct ev_loop
 *   cfutures/future.h       cf_future_t: states, results, callbacks, waits
 *   cfutures/task.h         cf_task_t: the worker side of a task
 *   cfutures/executor.h     cf_executor_t: the interface every executor implements
 *   cfutures/thread_pool.h  cf_thread_pool_t: the thread-pool executor
 *   cfutures/combinators.h  wait, as-completed, all/any, then, timeouts, timers, fds, groups
 *   cfutures/map.h          cf_map_t: lazy, bounded, chunked map over any executor
 *   cfutures/process_pool.h cf_process_pool_t: forked workers, crash isolation, timeouts
 *   cfutures/script.h       script style: cf_runtime_t, typed tasks, values, as-completed by index, array maps
 *
 * See docs/DESIGN.md for threads, queues, wake-ups and lock order.
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#ifndef CFUTURES_H
#define CFUTURES_H

#include <ev.h>

#include "cfutures/common.h"
#include "cfutures/loop.h"
#include "cfutures/future.h"
#include "cfutures/task.h"
#include "cfutures/executor.h"
#include "cfutures/thread_pool.h"
#include "cfutures/combinators.h"
#include "cfutures/map.h"
#include "cfutures/process_pool.h"
#include "cfutures/script.h"

#endif /* CFUTURES_H */
