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
 * credentials never change, so the cache is exact.
 *
 * Callers are remembered between calls in two lists, least recently used evicted
 * first: at most CREDS_KEPT_MAX callers with some right here (creds_keep_t), and
 * at most CREDS_REFUSED_KEPT_MAX with none, so that a flood of refused calls costs
 * one credentials query per connection, not one per call, and cannot evict the
 * callers with rights. Each remembered caller has a match rule for its own
 * departure (NameOwnerChanged with arg0 = its name), so the supervisor wakes only
 * when one of its own callers leaves, and forgets it then. The bus allows a
 * connection a limited number of match rules (dbus-daemon: 512), and a failed
 * AddMatch would close the connection: the two bounds together keep the
 * supervisor well below it whoever connects, and a failed AddMatch only drops that
 * entry. An evicted caller is asked about again on its next call. */

#include <systemd/sd-bus.h>

#include "macro.h"
#include "policy.h"

#define CREDS_GROUPS_MAX 256U
/* Messages held while their sender's credentials are fetched, and per sender (one
 * connection cannot take them all; calls beyond are Busy at once). */
#define CREDS_PENDING_MAX 1024U
#define CREDS_PENDING_PER_SENDER_MAX 32U
/* Callers remembered between calls, each with one match rule: with some right here, and
 * with none. */
#define CREDS_KEPT_MAX 256U
#define CREDS_REFUSED_KEPT_MAX 128U
/* Entries at once: the remembered ones and those whose query is in flight. */
#define CREDS_CACHE_MAX (CREDS_KEPT_MAX + CREDS_REFUSED_KEPT_MAX + CREDS_PENDING_MAX)

typedef struct CredsCache CredsCache;

/* Whether a caller is worth remembering between its calls (it holds some right here). */
typedef bool (*creds_keep_t)(const Caller *caller, void *userdata);

int creds_cache_new(sd_bus *bus, creds_keep_t keep, void *userdata, CredsCache **ret);
CredsCache *creds_cache_free(CredsCache *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(CredsCache *, creds_cache_free);

/* For the object callback: returns 0 when m's sender is cached (continue normal
 * dispatch), 1 when m was taken (it comes back through sd-bus's dispatch, or is
 * answered with an error, later),
 * negative on error. */
int creds_cache_gate(CredsCache *c, sd_bus_message *m);

/* The cached caller of m. The returned Caller's group array stays valid until the
 * next return to the event loop. Returns 0, or -ENOENT when not cached. */
int creds_cache_lookup(CredsCache *c, sd_bus_message *m, Caller *ret);

size_t creds_cache_size(CredsCache *c);
/* Callers remembered with some right here; *ret_refused (may be NULL) those with none. */
size_t creds_cache_kept(CredsCache *c, size_t *ret_refused);

/* Direct (peer-to-peer) connections have no sender name and no bus to ask: their caller is
 * the socket's peer, known when the connection was accepted (SO_PEERCRED, SO_PEERGROUPS).
 * The gate and the lookup find a message's caller by its connection. The caller's groups are
 * copied. Returns 0 or -ENOMEM. */
int creds_cache_add_peer(CredsCache *c, sd_bus *bus, const Caller *caller);
void creds_cache_remove_peer(CredsCache *c, sd_bus *bus);
