/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <systemd/sd-bus.h>

#include "policy.h"
#include "vm.h"

/* The caller of m and the privileges both ACLs grant it. Sets AccessDenied when the
 * credentials are unknown. */
int vm_bus_caller(Vm *vm, sd_bus_message *m, Caller *ret_caller, PrivSet *ret_privs, sd_bus_error *error);
/* Checks one privilege; sets AccessDenied naming it. */
int vm_bus_require(Vm *vm, sd_bus_message *m, Privilege needed, sd_bus_error *error);
/* Maps a policy_check_* result to InvalidArgs / AccessDenied with its message. */
int vm_bus_policy_error(sd_bus_error *error, int r, const char *msg);
/* Replies to m for a failed QMP request (QemuError, NotRunning, Timeout). */
void vm_bus_reply_qemu_error(sd_bus_message *m, int error, const char *err_class, const char *err_desc);
/* The D-Bus signature of a method's arguments. */
const char *vm_method_signature(const char *iface, const char *member);

/* org.vmsup.Agent1 (vm-agent.c). */
sd_bus_message_handler_t vm_agent_method(const char *iface, const char *member);
int vm_agent_bus_attach(Vm *vm, sd_bus *bus);
/* Forgets the agent file handles (the guest's agent or the VM went away). */
void vm_agent_handles_reset(Vm *vm);

/* Replies larger than this are not put on the bus. */
#define BUS_REPLY_MAX (16U * 1024U * 1024U)
