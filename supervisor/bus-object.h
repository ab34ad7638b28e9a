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
