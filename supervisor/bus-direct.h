/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Direct connections: D-Bus without the bus daemon.
 *
 * Besides its bus name, the supervisor listens on a socket of its own,
 * RUNTIME/NAME.bus, for peer-to-peer D-Bus connections (as systemd offers
 * /run/systemd/private to root's systemctl). A direct connection sees the same
 * object with the same interfaces, passes the same gate (bus-object.h) and is
 * judged by the same ACLs: its caller is the socket's peer, from the kernel
 * (SO_PEERCRED and SO_PEERGROUPS, taken when the connection is accepted), where a
 * call over the bus asks the bus daemon (bus-creds.h). The EXTERNAL authentication
 * must name that same uid; there is no anonymous access.
 *
 * The socket is mode 0666 in the world-readable runtime directory: anyone may
 * connect, as anyone may reach the supervisor over the system bus, and the ACLs
 * decide every call (a caller with no right is refused exactly as over the bus).
 * What the bus daemon bounded for the bus path the supervisor bounds here:
 *
 *   BUS_DIRECT_MAX              connections at once (beyond, a new one is closed at once)
 *   BUS_DIRECT_ROOT_RESERVED    of those, kept for root: other users hold the rest
 *   BUS_DIRECT_PER_UID_MAX      connections per uid other than root
 *   BUS_DIRECT_AUTH_TIMEOUT_USEC  to complete the handshake (a silent peer is closed;
 *                               the handshake never blocks the loop: the socket is
 *                               non-blocking and sd-bus reads it as it comes)
 *   BUS_DIRECT_WQUEUE_MAX       replies and signals queued for a peer that does not read
 *                               them: beyond, the connection is closed
 *
 * and the fair shares (bus-quota.h) count a direct connection as a connection of
 * its own and its uid with the same uid's calls over the bus. Descriptors are
 * negotiated (ReadFile, WriteFile, console) and go through the same filter
 * (bus-fds.h). Signals go to a direct subscriber over its own connection. A
 * message's size is bounded by sd-bus (128 MiB, where the system bus allows
 * 32 MiB), its descriptors by the kernel (253). A connection that ends frees
 * everything it held: its registration, its caller, its subscription; calls in
 * flight are answered into nothing. */

#include <systemd/sd-event.h>

#include "bus-object.h"
#include "macro.h"

#define BUS_DIRECT_MAX 64U
#define BUS_DIRECT_ROOT_RESERVED 8U
#define BUS_DIRECT_PER_UID_MAX 16U
#define BUS_DIRECT_AUTH_TIMEOUT_USEC (5U * USEC_PER_SEC)
#define BUS_DIRECT_WQUEUE_MAX 1024U

typedef struct BusDirect BusDirect;

/* Listens on path (a stale socket there is replaced), mode 0666, serving object's
 * interfaces to each connection. Call before the system call filter. Returns 0 or -errno. */
int bus_direct_new(sd_event *event, BusObject *object, const char *path, BusDirect **ret);
/* Closes the listener and every connection, and removes the socket. Accepts NULL. */
BusDirect *bus_direct_free(BusDirect *d);
DEFINE_TRIVIAL_CLEANUP_FUNC(BusDirect *, bus_direct_free);

size_t bus_direct_connections(const BusDirect *d);
