/*
 * remote_seed.c - the seed map's function as a task library for cfworker:
 * the same name ("f") and code as examples/remote_map.c's, so that
 *
 *   cfworker --redis redis://HOST:6379 --queue seedmap --tasks remote_seed.so
 *
 * serves `remote_map client redis://HOST:6379` (tools/tour runs both).
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
