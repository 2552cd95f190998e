/*
 * remote_seed.c - the seed map's function, registered by name ("f"): built
 * as a task library for cfworker and linked into examples/remote_map, so that
 *
 *   cfworker --redis redis://HOST:6379 --queue seedmap --tasks remote_seed.so
 *
 * serves `remote_map redis://HOST:6379` (remote_check.sh and tools/tour run both).
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#include <cfutures.h>
#include <cfutures/registry.h>

#include <math.h>

double f(int64_t x);
double f(int64_t x) /* runs in a cfworker's process */
{
    double r = 0;
    for (int k = 1; k <= 51; k++)
        r += pow((double)x, 1 / pow(k, 1.5));
    return r;
}
CF_REGISTER(f);
