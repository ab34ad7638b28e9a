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

/* Parses a caller's JSON command (Monitor1.Execute, Agent1.Command): at most max bytes, one
 * JSON value, no duplicate keys. InvalidArgs otherwise, naming the position only (the parser's
 * own text quotes the input). Returns 0 and a new reference, or a negative error with error set. */
int vm_bus_parse_json_command(const char *text, size_t max, json_t **ret, sd_bus_error *error);

/* org.vmsup.Agent1 (vm-agent.c). */
/* The D-Bus error name for a failed agent request (qga.h's error codes) and its message,
 * with the guest's class and description sanitized. */
const char *vm_agent_error(int error, const char *err_class, const char *err_desc, char *msg, size_t msgsz);
sd_bus_message_handler_t vm_agent_method(const char *iface, const char *member);
int vm_agent_bus_attach(Vm *vm, sd_bus *bus);
/* Forgets the agent file handles (the guest's agent or the VM went away). */
void vm_agent_handles_reset(Vm *vm);

/* Replies larger than this are not put on the bus. */
#define BUS_REPLY_MAX (16U * 1024U * 1024U)
