/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* org.vmsup.VM1: lifecycle, status and properties of the VM, and its signals. */

#include <jansson.h>

#include "policy.h"
#include "vm.h"

#define VM_INTERFACE "org.vmsup.VM1"

/* For bus-object.c's list (bus-util.h). */
extern const struct BusInterface vm_bus_interface;

/* Whether caller holds VM.Audit under the ACLs in force (userdata: the VmBus), for
 * vm-events.h: a subscriber receives signals while it does. */
bool vm_bus_may_audit(const Caller *caller, void *userdata);

/* The signals of VM1, for vm.c: StateChanged and PropertiesChanged(State, StateReason);
 * PropertiesChanged of one property; an Event (QMP event forwarded). Nothing happens
 * while the VM is not on a bus. */
void vm_emit_state_changed(Vm *vm);
void vm_emit_properties_changed(Vm *vm, const char *property);
void vm_emit_event(Vm *vm, const char *name, json_t *data, uint64_t timestamp_usec);
