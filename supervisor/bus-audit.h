/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Audit records: one per state-changing call and one per refusal, written by the object's
 * method trampoline (bus-object.c) for every interface, so no handler can forget one. A
 * record names the VM, the caller's uid and pid (from the bus), the method, for monitor and
 * agent calls the command's name, and the result. Never an argument's value: of a monitor or
 * agent command only its name is taken (HMP: the first word, and the subcommand of "info";
 * QMP and the agent: "execute"), reduced to [A-Za-z0-9_.-] and 64 bytes.
 *
 * With journald (JOURNAL_STREAM set: stderr is a journal stream) a record is a structured
 * entry sent with sd_journal_send(): MESSAGE_ID (below), VMSUP_VM=, VMSUP_CALLER_UID=,
 * VMSUP_CALLER_PID=, VMSUP_METHOD=, VMSUP_COMMAND= (monitor and agent calls), VMSUP_RESULT=,
 * and MESSAGE= the same line as without journald; should sending fail, and without
 * journald, it is one line on stderr:
 *
 *   audit: call vm=NAME uid=U pid=P method=IFACE.MEMBER [command=CMD] result=RESULT
 *   audit: refused vm=NAME uid=U pid=P method=IFACE.MEMBER [command=CMD] result=ERROR_NAME
 *
 * RESULT is "accepted" when the call was authorized and carried out or is under way (the
 * outcome of a method that waits, such as Start, follows in the state log), else the D-Bus
 * error name it was answered with. */

#include <stdbool.h>

#include "policy.h"

/* MESSAGE_ID of a state-changing call's record, and of a refusal's. */
#define VMSUP_AUDIT_CALL_ID "589a189353544c62a65c46a7637a3ea0"
#define VMSUP_AUDIT_REFUSAL_ID "fcfc696647aa41e7851cc823de8d258f"

#define VMSUP_AUDIT_COMMAND_MAX 64U

/* Whether iface.member changes the VM's state (its calls get a record when they pass). */
bool bus_audit_is_state_changing(const char *iface, const char *member);

/* The command's name from a monitor or agent call's argument text: HMP (hmp true) or a JSON
 * request's "execute". ret is "" when there is none. */
void bus_audit_command_name(const char *text, bool hmp, char ret[static VMSUP_AUDIT_COMMAND_MAX + 1]);

/* Writes one record. command may be NULL or "". */
void bus_audit_record(bool refusal, const char *vm, const Caller *caller, const char *iface, const char *member,
                      const char *command, const char *result);
