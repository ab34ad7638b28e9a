/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Who is calling, from the bus, without blocking the loop.
 *
 * dbus-daemon does not attach credentials to messages; asking for them is a
 * GetConnectionCredentials round trip. sd_bus_query_sender_creds() makes that
 * call synchronously. Instead: the object's message callback (which sd-bus runs
 * before the vtable) looks the sender up in a cache; on a miss it holds the
 * message, asks the bus asynchronously, and when the answer arrives puts the
 * message back in sd-bus's read queue (sd_bus_enqueue_for_read(), as systemd's
 * bus-polkit.c does once an authorization is known): it then goes through
 * sd-bus's own dispatch (signature check, vtables, properties) like any other
 * call, passing the gate this time. Messages held for one sender go back in the
 * order they came. Unique names are never reused on a bus and a connection's
 * credentials never change, so the cache is exact; entries leave when the name
 * does (NameOwnerChanged). */

#include <systemd/sd-bus.h>

#include "macro.h"
#include "policy.h"

#define CREDS_CACHE_MAX 4096U
#define CREDS_GROUPS_MAX 256U
/* Messages held while their sender's credentials are fetched. */
#define CREDS_PENDING_MAX 1024U

typedef struct CredsCache CredsCache;

int creds_cache_new(sd_bus *bus, CredsCache **ret);
CredsCache *creds_cache_free(CredsCache *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(CredsCache *, creds_cache_free);

/* For the object callback: returns 0 when m's sender is cached (continue normal
 * dispatch), 1 when m was taken (it will come back through sd-bus's dispatch, or
 * be answered with an error, later), negative on error. */
int creds_cache_gate(CredsCache *c, sd_bus_message *m);

/* The cached caller of m. The returned Caller's group array stays valid until the
 * next return to the event loop. Returns 0, or -ENOENT when not cached. */
int creds_cache_lookup(CredsCache *c, sd_bus_message *m, Caller *ret);

size_t creds_cache_size(CredsCache *c);
