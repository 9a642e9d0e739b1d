/* list: an intrusive, circular, doubly-linked list (as the Linux kernel's list.h
 * and libuv's queue.h). The node is embedded in the element, so linking allocates
 * nothing and cannot fail; list_entry finds the element from its node. A head is
 * a node on its own: empty when it points at itself. */
#ifndef CHATD_LIST_H
#define CHATD_LIST_H

#include <stdbool.h>
#include <stddef.h>

struct list {
    struct list *prev, *next;
};

/* The element of type that holds node ptr in its member. */
#define list_entry(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* Walks every node of head; the body must not unlink pos. */
#define list_foreach(pos, head) for ((pos) = (head)->next; (pos) != (head); (pos) = (pos)->next)

/* Makes head an empty list (or a node linked nowhere). */
static inline void list_init(struct list *head)
{
    head->prev = head->next = head;
}

/* True when head has no node. */
static inline bool list_empty(const struct list *head)
{
    return head->next == head;
}

/* Links node first in head. */
static inline void list_insert_head(struct list *head, struct list *node)
{
    node->next = head->next;
    node->prev = head;
    head->next->prev = node;
    head->next = node;
}

/* Links node last in head. */
static inline void list_insert_tail(struct list *head, struct list *node)
{
    node->prev = head->prev;
    node->next = head;
    head->prev->next = node;
    head->prev = node;
}

/* Unlinks node from its list; it is then linked nowhere (removing it again is harmless). */
static inline void list_remove(struct list *node)
{
    node->prev->next = node->next;
    node->next->prev = node->prev;
    list_init(node);
}

#endif
