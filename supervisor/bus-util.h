/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What every D-Bus interface of the VM object shares: who is calling and what
 * they may do, the policy's verdicts and failed requests as D-Bus errors, the
 * caller's JSON commands, QMP calls whose answer is the method's reply, and the
 * largest reply put on the bus.
 *
 * A handler has one shape: read arguments → validate (InvalidArgs) → authorize
 * (bus_require() or bus_caller() + a policy check) → act → reply, now or when
 * QEMU or the guest answers. */

#include <jansson.h>
#include <systemd/sd-bus.h>

#include "bus-creds.h"
#include "bus-quota.h"
#include "policy.h"
#include "vm.h"

#define VM_OBJECT_PATH "/org/vmsup/VM"

/* Replies larger than this are not put on the bus: a 32 MiB message ends the
 * connection on dbus-daemon's system bus. */
#define BUS_REPLY_MAX (16U * 1024U * 1024U)

/* The VM as its interfaces see it: the method handlers' userdata (or reachable from
 * an interface's own state). */
typedef struct VmBus {
        Vm *vm;
        sd_bus *bus;
        CredsCache *creds;
        BusQuota *quota; /* each caller's share of the calls in flight */
} VmBus;

/* One interface of the VM object: bus-object.c registers every one it lists. */
typedef struct BusInterface BusInterface;
struct BusInterface {
        const char *name;
        const sd_bus_vtable *vtable;
        /* Optional: state the interface owns, handed to its handlers as userdata instead
         * of the VmBus. state_new returns 0 or -errno; state_free accepts NULL. */
        int (*state_new)(VmBus *b, void **ret_state);
        void (*state_free)(void *state);
};

/* The caller of m and the privileges both ACLs grant it. The Caller's group array stays
 * valid until the next return to the event loop. Returns 0, or sets AccessDenied when the
 * credentials are unknown and returns its negative errno. */
int bus_caller(VmBus *b, sd_bus_message *m, Caller *ret_caller, PrivSet *ret_privs, sd_bus_error *error);
/* Checks one privilege; sets AccessDenied naming it. Returns 0 or a negative errno with
 * error set. */
int bus_require(VmBus *b, sd_bus_message *m, Privilege needed, sd_bus_error *error);
/* The same, and the caller that passed (its group array valid until the next return to the
 * loop), for handlers that keep who asked. */
int bus_require_caller(VmBus *b, sd_bus_message *m, Privilege needed, Caller *ret_caller, sd_bus_error *error);
/* A policy_check_*() result: -EINVAL → InvalidArgs, -EACCES/-EPERM → AccessDenied, both
 * with the policy's message; others by errno. Returns r's error as sd_bus_error_set does. */
int bus_policy_error(sd_bus_error *error, int r, const char *msg);

/* Where a failed request went; each has its own rows in the errno table. */
typedef enum BusErrorSource {
        BUS_ERROR_POLICY,      /* a policy_check_*() verdict; err_desc is the policy's message */
        BUS_ERROR_QMP_SEND,    /* qmp_send() refused the command */
        BUS_ERROR_QMP_REPLY,   /* the error a QMP reply callback received */
        BUS_ERROR_AGENT_SEND,  /* qga_send() refused the command */
        BUS_ERROR_AGENT_REPLY, /* the error an agent reply callback received (qga.h) */
        _BUS_ERROR_SOURCE_MAX,
        _BUS_ERROR_SOURCE_INVALID = -EINVAL,
} BusErrorSource;

/* The D-Bus error for a failed request: its name, and its message in msg (err_class and
 * err_desc, QEMU's or the guest's words for -EREMOTEIO, are sanitized). Returns the name,
 * or NULL when sd-bus's own error for the errno applies (sd_bus_error_set_errno()). */
const char *bus_error_from_errno(BusErrorSource source, int r, const char *err_class, const char *err_desc,
                                 char *msg, size_t msgsz);
/* The same into error. Returns a negative errno, as sd_bus_error_set() does; -ENOMEM as
 * is, for sd-bus to answer. */
int bus_error_set_errno(sd_bus_error *error, BusErrorSource source, int r, const char *err_class,
                        const char *err_desc);
/* The same as the reply to m (NULL: nothing to do). */
void bus_reply_errno(sd_bus_message *m, BusErrorSource source, int r, const char *err_class, const char *err_desc);

/* Replies to a waiting call (m may be NULL: nothing to do) with an error name and message. */
void bus_reply_error(sd_bus_message *m, const char *name, const char *fmt, ...) _printf_(3, 4);
/* Replies to m with the string s if it fits in BUS_REPLY_MAX, else ResponseTooLarge
 * saying "<what> is larger than N MiB<hint>." (hint may be ""). */
void bus_reply_string(sd_bus_message *m, const char *s, size_t len, const char *what, const char *hint);

/* Parses a caller's JSON command (Monitor1.Execute, Agent1.Command): at most max bytes, one
 * JSON value, no duplicate keys. InvalidArgs otherwise, naming the position only (the parser's
 * own text quotes the input). Returns 0 and a new reference, or a negative errno with error set. */
int bus_parse_json_command(const char *text, size_t max, json_t **ret, sd_bus_error *error);

/* The answer to a QMP command sent by bus_qmp_call(): reply to m from it (error as the
 * QMP reply callback got it, with err_class/err_desc for -EREMOTEIO). */
typedef void (*bus_qmp_reply_t)(VmBus *b, sd_bus_message *m, int error, json_t *result, const char *err_class,
                                const char *err_desc);
/* Sends a QMP command whose answer becomes the reply to m, through reply; the call holds one
 * of its caller's shares (bus-quota.h) until then. Returns 1 (the reply is pending), or a
 * negative errno with error set (NotRunning, Busy, InvalidArgs). */
int bus_qmp_call(VmBus *b, sd_bus_message *m, const char *execute, json_t *arguments, bus_qmp_reply_t reply,
                 sd_bus_error *error);
/* bus_qmp_reply_t for commands without output: an empty reply, or the error. */
void bus_qmp_reply_empty(VmBus *b, sd_bus_message *m, int error, json_t *result, const char *err_class,
                         const char *err_desc);
/* bus_qmp_reply_t returning the compact JSON of "return" as a string. */
void bus_qmp_reply_json(VmBus *b, sd_bus_message *m, int error, json_t *result, const char *err_class,
                        const char *err_desc);
