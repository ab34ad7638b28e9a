/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* org.vmsup.Agent1: the guest agent offered to callers. The guest writes every
 * byte that comes back: replies are checked, sized and sanitized before they
 * reach the bus. */

#include "agent-dbus.h"
#include "agent-file.h"
#include "bus-errors.h"
#include "bus-util.h"
#include "log.h"
#include "policy.h"
#include "vm.h"

/* The longest Command argument parsed. */
#define AGENT_COMMAND_JSON_MAX (1024U * 1024U)
/* Agent file handles tracked per VM (opened through Command), and per uid: one caller
 * cannot take them all. */
#define AGENT_HANDLES_MAX 256U
#define AGENT_HANDLES_PER_UID_MAX 32U

typedef struct AgentHandle {
        int64_t handle;
        uid_t owner;
} AgentHandle;

/* What Agent1 keeps between calls: who opened which guest file handle, and the file
 * transfers under way. */
typedef struct AgentBus {
        VmBus *bus;
        AgentHandle handles[AGENT_HANDLES_MAX];
        size_t n_handles;
        /* vm->agent_generation the handle table belongs to */
        uint64_t generation;
        unsigned n_transfers; /* ReadFile/WriteFile under way */
} AgentBus;

typedef enum HandleOp {
        HANDLE_NONE,
        HANDLE_OPEN,  /* record the returned handle for the caller */
        HANDLE_USE,   /* read, write, seek, flush: the caller's own handle only */
        HANDLE_CLOSE, /* the caller's own; forget it once closed */
} HandleOp;

typedef struct AgentCall {
        AgentBus *agent;
        sd_bus_message *message;
        HandleOp op;
        uid_t uid;
        int64_t handle;
        BusTicket *ticket; /* the caller's share, until the reply */
} AgentCall;

/* ---- file handles belong to whoever opened them ----
 *
 * qemu-ga's handles are small sequential numbers: without this, any caller
 * holding FileRead could read from a handle another caller (or ReadFile) opened.
 * Handles opened through Command are recorded with the opener's uid; the other
 * guest-file-* commands are refused for handles the caller did not open. Root
 * may use any handle. The table is forgotten when the guest's agent or the VM
 * goes away (the guest numbers handles afresh): vm.c counts those moments in
 * vm->agent_generation. */

static HandleOp handle_op(const char *execute) {
        if (streq(execute, "guest-file-open"))
                return HANDLE_OPEN;
        if (streq(execute, "guest-file-close"))
                return HANDLE_CLOSE;
        if (streq(execute, "guest-file-read") || streq(execute, "guest-file-write") ||
            streq(execute, "guest-file-seek") || streq(execute, "guest-file-flush"))
                return HANDLE_USE;
        return HANDLE_NONE;
}

/* The handle table of the agent that runs now: forgotten once the agent changed. */
static void handles_refresh(AgentBus *a) {
        if (a->generation != a->bus->vm->agent_generation) {
                a->n_handles = 0;
                a->generation = a->bus->vm->agent_generation;
        }
}

static ssize_t handle_find(AgentBus *a, int64_t handle) {
        handles_refresh(a);
        for (size_t i = 0; i < a->n_handles; i++)
                if (a->handles[i].handle == handle)
                        return (ssize_t) i;
        return -1;
}

static void handle_forget(AgentBus *a, int64_t handle) {
        ssize_t i = handle_find(a, handle);
        if (i >= 0)
                a->handles[i] = a->handles[--a->n_handles];
}

static void handle_record(AgentBus *a, int64_t handle, uid_t owner) {
        handle_forget(a, handle); /* a reused number: the new opener owns it */
        if (a->n_handles < AGENT_HANDLES_MAX)
                a->handles[a->n_handles++] = (AgentHandle) { .handle = handle, .owner = owner };
        else
                log_warning("VM %s: more than %u agent file handles open, not tracking more",
                            a->bus->vm->config->name, AGENT_HANDLES_MAX);
}

/* ---- Command ---- */

/* The agent's answer to the caller: its result as compact ASCII JSON text, or the error. */
static void agent_call_answer(AgentCall *ac, int error, const char *text, size_t len, const char *err_class,
                              const char *err_desc) {
        /* Before the reply: a caller that waits for it may send the next command at once. */
        bus_ticket_release(ac->ticket);

        if (error < 0)
                bus_reply_errno(ac->message, BUS_ERROR_AGENT_REPLY, error, err_class, err_desc);
        else
                bus_reply_string(ac->message, text, len, "The agent's reply", "; use ReadFile for large data");
        sd_bus_message_unref(ac->message);
        free(ac);
}

/* Most commands: the reply's text, re-written straight from the agent's line. */
static void on_agent_text(QgaClient *c, int error, const char *text, size_t len, const char *err_class,
                          const char *err_desc, void *userdata) {
        AgentCall *ac = userdata;

        if (error >= 0 && ac->op == HANDLE_CLOSE)
                handle_forget(ac->agent, ac->handle);
        agent_call_answer(ac, error, text, len, err_class, err_desc);
}

/* guest-file-open: the handle in the result is recorded as the caller's. */
static void on_agent_open(QgaClient *c, int error, json_t *result, const char *err_class, const char *err_desc,
                          void *userdata) {
        AgentCall *ac = userdata;
        _cleanup_free_ char *s = NULL;

        if (error >= 0 && json_is_integer(result))
                handle_record(ac->agent, json_integer_value(result), ac->uid);
        if (error >= 0) {
                /* ENSURE_ASCII: the guest's strings may hold anything; D-Bus wants valid UTF-8. */
                s = json_dumps(result ?: json_object(), JSON_COMPACT | JSON_ENCODE_ANY | JSON_ENSURE_ASCII);
                if (!s)
                        error = -ENOMEM;
        }
        agent_call_answer(ac, error, s, s ? strlen(s) : 0, err_class, err_desc);
}

/* AgentNotConnected / NotRunning unless the agent can be asked. */
static int agent_available(Vm *vm, sd_bus_error *error) {
        if (!vm->config->agent || !vm->qga)
                return sd_bus_error_set(error, VMSUP_ERROR_AGENT_NOT_CONNECTED,
                                        "The guest agent is disabled for this VM.");
        if (!vm_is_running(vm))
                return sd_bus_error_set(error, VMSUP_ERROR_NOT_RUNNING, "The VM is not running.");
        /* The guest has not opened its end of the agent port: nobody would answer. */
        if (!vm->agent_port_open)
                return sd_bus_error_set(error, VMSUP_ERROR_AGENT_NOT_CONNECTED, "The guest agent is not connected.");
        return 0;
}

static int method_command(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        AgentBus *a = userdata;
        Vm *vm = a->bus->vm;
        const char *text, *execute;
        char msg[256];
        Caller caller;
        PrivSet privs;
        AgentCall *ac;
        json_t *cmd;
        int r;

        r = sd_bus_message_read(m, "s", &text);
        if (r < 0)
                return r;
        r = bus_parse_json_command(text, AGENT_COMMAND_JSON_MAX, &cmd, error);
        if (r < 0)
                return r;
        r = bus_caller(a->bus, m, &caller, &privs, error);
        if (r < 0)
                goto finish;
        r = policy_check_qga_confined(cmd, &caller, privs, a->bus->vm->config->agent_file_paths, msg, sizeof msg);
        if (r < 0) {
                r = bus_policy_error(error, r, msg);
                goto finish;
        }
        r = agent_available(vm, error);
        if (r < 0)
                goto finish;
        execute = json_string_value(json_object_get(cmd, "execute"));
        HandleOp op = handle_op(execute);
        int64_t handle = -1;
        if (op == HANDLE_USE || op == HANDLE_CLOSE) {
                json_t *h = json_object_get(json_object_get(cmd, "arguments"), "handle");
                if (!json_is_integer(h)) {
                        r = sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS, "\"handle\" must be an integer.");
                        goto finish;
                }
                handle = json_integer_value(h);
                ssize_t i = handle_find(a, handle);
                if (!caller_is_root(&caller) && (i < 0 || a->handles[i].owner != caller.uid)) {
                        r = sd_bus_error_set(error, SD_BUS_ERROR_ACCESS_DENIED,
                                             "The file handle was not opened by this caller.");
                        goto finish;
                }
        } else if (op == HANDLE_OPEN && !caller_is_root(&caller)) {
                size_t own = 0;

                handles_refresh(a);
                for (size_t i = 0; i < a->n_handles; i++)
                        if (a->handles[i].owner == caller.uid)
                                own++;
                if (a->n_handles >= AGENT_HANDLES_MAX) {
                        r = sd_bus_error_set(error, VMSUP_ERROR_BUSY,
                                             "Too many guest files are open; close some first.");
                        goto finish;
                }
                if (own >= AGENT_HANDLES_PER_UID_MAX) {
                        r = sd_bus_error_setf(error, VMSUP_ERROR_BUSY,
                                              "This user has %u guest files open already; close some first.",
                                              AGENT_HANDLES_PER_UID_MAX);
                        goto finish;
                }
        }
        BusTicket *ticket = NULL;
        r = bus_quota_acquire(a->bus->quota, m, &caller, BUS_QUOTA_AGENT, &ticket, error);
        if (r < 0)
                goto finish;
        ac = calloc(1, sizeof *ac);
        if (!ac) {
                bus_ticket_release(ticket);
                r = -ENOMEM;
                goto finish;
        }
        *ac = (AgentCall) { .agent = a, .message = sd_bus_message_ref(m), .op = op, .uid = caller.uid,
                            .handle = handle, .ticket = ticket };
        QgaReplyMode mode = policy_qga_no_reply(execute) ? QGA_REPLY_NONE : QGA_REPLY_NORMAL;
        if (op == HANDLE_OPEN)
                r = qga_send(vm->qga, execute, json_object_get(cmd, "arguments"), mode,
                             policy_qga_timeout_usec(execute), BUS_REPLY_MAX, on_agent_open, ac, NULL);
        else
                r = qga_send_text(vm->qga, execute, json_object_get(cmd, "arguments"), mode,
                                  policy_qga_timeout_usec(execute), BUS_REPLY_MAX, on_agent_text, ac, NULL);
        if (r < 0) {
                bus_ticket_release(ac->ticket);
                sd_bus_message_unref(ac->message);
                free(ac);
                r = bus_error_set_errno(error, BUS_ERROR_AGENT_SEND, r, NULL, NULL);
                goto finish;
        }
        r = 1;
finish:
        json_decref(cmd);
        return r;
}

/* ---- ReadFile, WriteFile (agent-file.c moves the data) ---- */

/* Authorizes a transfer of path and takes its caller's share: *ret_ticket (NULL for root) is
 * the transfer's once it started, the caller's to release otherwise. */
static int require_file_privilege(AgentBus *a, sd_bus_message *m, bool write, const char *path,
                                  BusTicket **ret_ticket, sd_bus_error *error) {
        char msg[256];
        Caller caller;
        PrivSet privs;
        int r;

        r = bus_caller(a->bus, m, &caller, &privs, error);
        if (r < 0)
                return r;
        r = policy_check_file_transfer(write, &caller, privs, msg, sizeof msg);
        if (r >= 0)
                r = policy_check_guest_path(path, a->bus->vm->config->agent_file_paths, &caller, msg, sizeof msg);
        if (r < 0)
                return bus_policy_error(error, r, msg);
        r = agent_available(a->bus->vm, error);
        if (r < 0)
                return r;
        return bus_quota_acquire(a->bus->quota, m, &caller, BUS_QUOTA_TRANSFER, ret_ticket, error);
}

static int method_read_file(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        AgentBus *a = userdata;
        BusTicket *ticket = NULL;
        const char *path;
        uint64_t offset, length;
        int fd, r;

        r = sd_bus_message_read(m, "stth", &path, &offset, &length, &fd);
        if (r < 0)
                return r;
        if (offset > INT64_MAX || length > INT64_MAX)
                return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS, "Offset and length must be below 2^63.");
        r = agent_file_check_fd(fd, false, error);
        if (r < 0)
                return r;
        r = require_file_privilege(a, m, false, path, &ticket, error);
        if (r < 0)
                return r;
        r = agent_file_read(a->bus->vm, m, path, fd, offset, length, &a->n_transfers, ticket, error);
        if (r < 0)
                bus_ticket_release(ticket);
        return r;
}

static int method_write_file(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        AgentBus *a = userdata;
        BusTicket *ticket = NULL;
        const char *path;
        int fd, append, r;

        r = sd_bus_message_read(m, "shb", &path, &fd, &append);
        if (r < 0)
                return r;
        r = agent_file_check_fd(fd, true, error);
        if (r < 0)
                return r;
        r = require_file_privilege(a, m, true, path, &ticket, error);
        if (r < 0)
                return r;
        r = agent_file_write(a->bus->vm, m, path, fd, append, &a->n_transfers, ticket, error);
        if (r < 0)
                bus_ticket_release(ticket);
        return r;
}

static const sd_bus_vtable agent_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD_WITH_ARGS("Command", SD_BUS_ARGS("s", qga_json), SD_BUS_RESULT("s", return_json),
                                method_command, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ReadFile", SD_BUS_ARGS("s", path, "t", offset, "t", length, "h", fd),
                                SD_BUS_RESULT("t", bytes), method_read_file, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("WriteFile", SD_BUS_ARGS("s", path, "h", fd, "b", append), SD_BUS_RESULT("t", bytes),
                                method_write_file, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

static int agent_bus_new(VmBus *b, void **ret) {
        AgentBus *a;

        a = calloc(1, sizeof *a);
        if (!a)
                return -ENOMEM;
        a->bus = b;
        a->generation = b->vm->agent_generation;
        *ret = a;
        return 0;
}

static void agent_bus_free(void *state) {
        free(state);
}

const BusInterface agent_bus_interface = {
        .name = AGENT_INTERFACE,
        .vtable = agent_vtable,
        .state_new = agent_bus_new,
        .state_free = agent_bus_free,
};
