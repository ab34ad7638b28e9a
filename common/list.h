/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The one intrusive doubly linked list: a head and a tail, each item carries its
 * own links. Appending, prepending and removing are O(1); items are never copied.
 *
 *   typedef struct Item { LIST_FIELDS(struct Item); ... } Item;
 *   LIST_HEAD(Item) items = {};
 *   LIST_APPEND(&items, item);
 *   LIST_FOREACH(i, &items) ...
 *   LIST_FOREACH_SAFE(i, n, &items) LIST_REMOVE(&items, i);   (i may be freed)
 *   LIST_REMOVE(&items, item);
 *
 * An item belongs to at most one list at a time. */

#define LIST_FIELDS(type) type *next, *prev
#define LIST_HEAD(type)                 \
        struct {                        \
                type *head, *tail;      \
        }

#define LIST_IS_EMPTY(l) ((l)->head == NULL)

#define LIST_APPEND(l, item)                                    \
        do {                                                    \
                typeof(*(l)) *_l_ = (l);                        \
                typeof(_l_->head) _i_ = (item);                 \
                _i_->next = NULL;                               \
                _i_->prev = _l_->tail;                          \
                if (_l_->tail)                                  \
                        _l_->tail->next = _i_;                  \
                else                                            \
                        _l_->head = _i_;                        \
                _l_->tail = _i_;                                \
        } while (0)

#define LIST_PREPEND(l, item)                                   \
        do {                                                    \
                typeof(*(l)) *_l_ = (l);                        \
                typeof(_l_->head) _i_ = (item);                 \
                _i_->prev = NULL;                               \
                _i_->next = _l_->head;                          \
                if (_l_->head)                                  \
                        _l_->head->prev = _i_;                  \
                else                                            \
                        _l_->tail = _i_;                        \
                _l_->head = _i_;                                \
        } while (0)

#define LIST_REMOVE(l, item)                                    \
        do {                                                    \
                typeof(*(l)) *_l_ = (l);                        \
                typeof(_l_->head) _i_ = (item);                 \
                if (_i_->prev)                                  \
                        _i_->prev->next = _i_->next;            \
                else                                            \
                        _l_->head = _i_->next;                  \
                if (_i_->next)                                  \
                        _i_->next->prev = _i_->prev;            \
                else                                            \
                        _l_->tail = _i_->prev;                  \
                _i_->next = _i_->prev = NULL;                   \
        } while (0)

#define LIST_FOREACH(i, l) for ((i) = (l)->head; (i); (i) = (i)->next)
/* n holds the next item, so the body may remove (and free) i. */
#define LIST_FOREACH_SAFE(i, n, l) for ((i) = (l)->head; (i) && ((n) = (i)->next, 1); (i) = (n))
