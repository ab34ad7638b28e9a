/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The VM's object on the bus, /org/vmsup/VM, with every interface bus-object.c
 * lists. Every call except introspection passes one gate first (the object
 * callback, which sd-bus runs before the vtables): a call whose sender's
 * credentials are not known yet waits, and goes through sd-bus's dispatch again
 * once they are (bus-creds.h); Properties calls are authorized there (VM.Audit)
 * and then answered by sd-bus from the vtables. */

#include <systemd/sd-bus.h>

#include "macro.h"
#include "vm.h"

typedef struct BusObject BusObject;

/* Registers the object and its interfaces on bus. Returns 0 or -errno. */
int bus_object_new(Vm *vm, sd_bus *bus, BusObject **ret);
/* Unregisters. Calls still in flight reply through state this frees: free the VM
 * (which ends them) first. Accepts NULL; returns NULL. */
BusObject *bus_object_free(BusObject *o);
DEFINE_TRIVIAL_CLEANUP_FUNC(BusObject *, bus_object_free);

/* A direct (peer-to-peer) connection served the same object: the same vtables and state, the
 * same gate and ACLs, its caller the socket's peer (bus-direct.h). */
typedef struct BusPeer BusPeer;
/* bus: started in server mode, attached to the loop. Returns 0 or -errno. */
int bus_object_add_peer(BusObject *o, sd_bus *bus, const Caller *caller, BusPeer **ret);
/* Unregisters the object from the connection, ends its subscription, forgets its caller.
 * Calls still in flight keep the connection (their messages refer to it) and reply into
 * nothing. Accepts NULL; returns NULL. */
BusPeer *bus_peer_free(BusPeer *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(BusPeer *, bus_peer_free);
