/*
 * queue.h - intrusive lists used by the runtime.  Enqueueing allocates
 * nothing: the link lives inside the queued object and container_of() gets
 * the object back.
 *
 *   cf__list   circular doubly linked list with a sentinel head: O(1) removal
 *              of any element (an executor's queue, where cancel removes).
 *   cf__fifo   singly linked FIFO with a tail pointer: O(1) append and O(1)
 *              splice of a whole queue (the loop's inbox and ready queue).
 *
 * Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
 */
#ifndef CF_QUEUE_H
#define CF_QUEUE_H

#include <stddef.h>

#define cf__container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

struct cf__list {
    struct cf__list *next;
    struct cf__list *prev;
};

static inline void cf__list_init(struct cf__list *h)
{
    h->next = h;
    h->prev = h;
}

static inline int cf__list_empty(const struct cf__list *h)
{
    return h->next == h;
}

static inline void cf__list_push(struct cf__list *h, struct cf__list *n)
{
    n->prev = h->prev;
    n->next = h;
    h->prev->next = n;
    h->prev = n;
}

static inline void cf__list_remove(struct cf__list *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->next = n->prev = NULL;
}

static inline struct cf__list *cf__list_pop(struct cf__list *h)
{
    struct cf__list *n = h->next;
    if (n == h)
        return NULL;
    cf__list_remove(n);
    return n;
}

struct cf__snode {
    struct cf__snode *next;
};

struct cf__fifo {
    struct cf__snode *head;
    struct cf__snode **tail;
};

static inline void cf__fifo_init(struct cf__fifo *q)
{
    q->head = NULL;
    q->tail = &q->head;
}

static inline int cf__fifo_empty(const struct cf__fifo *q)
{
    return q->head == NULL;
}

static inline void cf__fifo_push(struct cf__fifo *q, struct cf__snode *n)
{
    n->next = NULL;
    *q->tail = n;
    q->tail = &n->next;
}

static inline struct cf__snode *cf__fifo_pop(struct cf__fifo *q)
{
    struct cf__snode *n = q->head;
    if (n) {
        q->head = n->next;
        if (!q->head)
            q->tail = &q->head;
    }
    return n;
}

/* Move every element of `from` to the tail of `to`; `from` ends empty. */
static inline void cf__fifo_splice(struct cf__fifo *to, struct cf__fifo *from)
{
    if (!from->head)
        return;
    *to->tail = from->head;
    to->tail = from->tail;
    cf__fifo_init(from);
}

#endif /* CF_QUEUE_H */
