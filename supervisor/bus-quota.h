/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Fair shares: what one caller may hold of the VM's capacity at once.
 *
 * The VM's own limits are global (QMP_PENDING_MAX requests to QEMU, QGA_QUEUE_MAX agent
 * commands, four file transfers): without more, one caller could fill any of them and
 * every other caller would get Busy. So every call whose reply comes later (a QMP
 * request, an agent command, a file transfer) holds a ticket until it is answered, and
 * a caller is held to:
 *
 *   BUS_CALLS_PER_CONNECTION_MAX  calls in flight per connection (libvirt's
 *                                 max_client_requests is 5 too)
 *   BUS_CALLS_PER_UID_MAX         calls in flight per uid, over all its connections
 *   BUS_AGENT_PER_UID_MAX         agent commands per uid (of QGA_QUEUE_MAX)
 *   BUS_TRANSFERS_PER_UID_MAX     file transfers per uid (of the VM's four)
 *
 * beyond which a call is answered org.vmsup.Error.Busy at once. Root is not bounded
 * (it may stop the supervisor anyway). Calls answered at once (properties, refusals,
 * validation errors) hold nothing: they cost the loop one dispatch. */

#include <systemd/sd-bus.h>

#include "macro.h"
#include "policy.h"

#define BUS_CALLS_PER_CONNECTION_MAX 5U
#define BUS_CALLS_PER_UID_MAX 16U
#define BUS_AGENT_PER_UID_MAX 4U
#define BUS_TRANSFERS_PER_UID_MAX 2U

typedef enum BusQuotaKind {
        BUS_QUOTA_CALL,     /* a QMP request (or anything else that waits) */
        BUS_QUOTA_AGENT,    /* an agent command */
        BUS_QUOTA_TRANSFER, /* ReadFile or WriteFile */
        _BUS_QUOTA_KIND_MAX,
        _BUS_QUOTA_KIND_INVALID = -EINVAL,
} BusQuotaKind;

typedef struct BusQuota BusQuota;
typedef struct BusTicket BusTicket;

int bus_quota_new(BusQuota **ret);
/* Tickets still held must be released first (the VM's calls end before it). */
BusQuota *bus_quota_free(BusQuota *q);
DEFINE_TRIVIAL_CLEANUP_FUNC(BusQuota *, bus_quota_free);

/* Takes a share for m, from caller, of kind. Returns 0 with *ret a ticket to release when
 * m is answered (NULL for root: nothing to release), or -EBUSY with error set (Busy,
 * saying which bound), or -ENOMEM. */
int bus_quota_acquire(BusQuota *q, sd_bus_message *m, const Caller *caller, BusQuotaKind kind, BusTicket **ret,
                      sd_bus_error *error);
/* Accepts NULL. */
void bus_ticket_release(BusTicket *t);

/* Tickets held now, for tests and the status. */
size_t bus_quota_held(const BusQuota *q);
