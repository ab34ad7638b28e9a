/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "bus-errors.h"
#include "bus-quota.h"
#include "list.h"

struct BusTicket {
        BusQuota *quota;
        char *sender;
        uid_t uid;
        BusQuotaKind kind;
        LIST_FIELDS(struct BusTicket);
};

struct BusQuota {
        LIST_HEAD(BusTicket) tickets;
        size_t n_tickets;
};

int bus_quota_new(BusQuota **ret) {
        BusQuota *q = calloc(1, sizeof *q);

        if (!q)
                return -ENOMEM;
        *ret = q;
        return 0;
}

BusQuota *bus_quota_free(BusQuota *q) {
        if (!q)
                return NULL;
        /* Tickets outliving their quota would point at freed memory: detach them. */
        while (q->tickets.head) {
                BusTicket *t = q->tickets.head;
                LIST_REMOVE(&q->tickets, t);
                t->quota = NULL;
        }
        free(q);
        return NULL;
}

/* sd_bus_error_setf() returns the errno of the name's mapping, and org.vmsup's names are
 * not registered with sd-bus (it would be -EIO): the contract is -EBUSY. */
#define BUSY(error, fmt, bound)                                                \
        ({                                                                     \
                (void) sd_bus_error_setf(error, VMSUP_ERROR_BUSY, fmt, bound); \
                -EBUSY;                                                        \
        })

int bus_quota_acquire(BusQuota *q, sd_bus_message *m, const Caller *caller, BusQuotaKind kind, BusTicket **ret,
                      sd_bus_error *error) {
        const char *sender = sd_bus_message_get_sender(m);
        char direct[32];
        unsigned per_conn = 0, per_uid = 0, per_kind = 0;
        BusTicket *t;

        if (caller_is_root(caller)) {
                *ret = NULL;
                return 0;
        }
        /* A direct connection has no name: it is its own connection, which lives at least as
         * long as the message (and so the ticket) that refers to it. */
        if (!sender) {
                snprintf(direct, sizeof direct, "direct:%p", (void *) sd_bus_message_get_bus(m));
                sender = direct;
        }
        /* The tickets held are bounded by the VM's own limits (about a thousand at most):
         * counting them is cheaper than keeping indexes in step. */
        LIST_FOREACH(t, &q->tickets) {
                if (streq(t->sender, sender))
                        per_conn++;
                if (t->uid == caller->uid) {
                        per_uid++;
                        if (t->kind == kind)
                                per_kind++;
                }
        }
        if (per_conn >= BUS_CALLS_PER_CONNECTION_MAX)
                return BUSY(error,
                            "This connection has %u calls in flight already; wait for their answers.",
                            BUS_CALLS_PER_CONNECTION_MAX);
        if (per_uid >= BUS_CALLS_PER_UID_MAX)
                return BUSY(error,
                            "This user has %u calls in flight already; wait for their answers.",
                            BUS_CALLS_PER_UID_MAX);
        if (kind == BUS_QUOTA_AGENT && per_kind >= BUS_AGENT_PER_UID_MAX)
                return BUSY(error,
                            "This user has %u agent commands waiting already; wait for their answers.",
                            BUS_AGENT_PER_UID_MAX);
        if (kind == BUS_QUOTA_TRANSFER && per_kind >= BUS_TRANSFERS_PER_UID_MAX)
                return BUSY(error,
                            "This user has %u file transfers under way already; try again later.",
                            BUS_TRANSFERS_PER_UID_MAX);
        t = calloc(1, sizeof *t);
        if (!t)
                return -ENOMEM;
        t->sender = strdup(sender);
        if (!t->sender) {
                free(t);
                return -ENOMEM;
        }
        t->quota = q;
        t->uid = caller->uid;
        t->kind = kind;
        LIST_PREPEND(&q->tickets, t);
        q->n_tickets++;
        *ret = t;
        return 0;
}

void bus_ticket_release(BusTicket *t) {
        if (!t)
                return;
        if (t->quota) {
                LIST_REMOVE(&t->quota->tickets, t);
                t->quota->n_tickets--;
        }
        free(t->sender);
        free(t);
}

size_t bus_quota_held(const BusQuota *q) {
        return q->n_tickets;
}
