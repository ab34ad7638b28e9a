/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* org.vmsup.VM1: lifecycle, status and properties of the VM, and its signals. */

#include <jansson.h>

#include "vm.h"

#define VM_INTERFACE "org.vmsup.VM1"

/* For bus-object.c's list (bus-util.h). */
extern const struct BusInterface vm_bus_interface;

/* The signals of VM1, for vm.c: StateChanged and PropertiesChanged(State, StateReason);
 * PropertiesChanged of one property; an Event (QMP event forwarded). Nothing happens
 * while the VM is not on a bus. */
void vm_emit_state_changed(Vm *vm);
void vm_emit_properties_changed(Vm *vm, const char *property);
void vm_emit_event(Vm *vm, const char *name, json_t *data, uint64_t timestamp_usec);
