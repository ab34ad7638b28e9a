/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* org.vmsup.Agent1: the guest agent offered to callers. The guest writes every
 * byte that comes back: replies are checked, sized and sanitized before they
 * reach the bus. */

#include "log.h"
#include "policy.h"
#include "vm-dbus.h"
#include "vm-file.h"
#include "vm.h"

#define AGENT_COMMAND_JSON_MAX (1024U * 1024U)

typedef enum HandleOp {
        HANDLE_NONE,
        HANDLE_OPEN,  /* record the returned handle for the caller */
        HANDLE_USE,   /* read, write, seek, flush: the caller's own handle only */
        HANDLE_CLOSE, /* the caller's own; forget it once closed */
} HandleOp;

typedef struct AgentCall {
        Vm *vm;
        sd_bus_message *message;
        HandleOp op;
        uid_t uid;
        int64_t handle;
} AgentCall;

/* ---- file handles belong to whoever opened them ----
 *
 * qemu-ga's handles are small sequential numbers: without this, any caller
 * holding FileRead could read from a handle another caller (or ReadFile) opened.
 * Handles opened through Command are recorded with the opener's uid; the other
 * guest-file-* commands are refused for handles the caller did not open. Root
 * may use any handle. The table is forgotten when the guest's agent or the VM
 * goes away (the guest numbers handles afresh). */

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

static ssize_t handle_find(Vm *vm, int64_t handle) {
        for (size_t i = 0; i < vm->n_agent_handles; i++)
                if (vm->agent_handles[i].handle == handle)
                        return (ssize_t) i;
        return -1;
}

static void handle_forget(Vm *vm, int64_t handle) {
        ssize_t i = handle_find(vm, handle);
        if (i >= 0)
                vm->agent_handles[i] = vm->agent_handles[--vm->n_agent_handles];
}

void vm_agent_handles_reset(Vm *vm) {
        vm->n_agent_handles = 0;
}

const char *vm_agent_error(int error, const char *err_class, const char *err_desc, char *msg, size_t msgsz) {
        char cls[QGA_ERROR_CLASS_MAX + 1], desc[QGA_ERROR_DESC_MAX + 1];

        switch (error) {
        case -EREMOTEIO:
                sanitize_text(err_class, cls, sizeof cls);
                sanitize_text(err_desc, desc, sizeof desc);
                snprintf(msg, msgsz, "%s: %s", cls, desc);
                return "org.vmsup.Error.AgentError";
        case -ETIMEDOUT:
                snprintf(msg, msgsz, "The guest agent did not answer in time.");
                return "org.vmsup.Error.AgentTimeout";
        case -EPROTO:
                snprintf(msg, msgsz, "The guest agent sent a reply that violates the protocol.");
                return "org.vmsup.Error.AgentProtocol";
        case -EFBIG:
                snprintf(msg, msgsz, "The agent's reply is larger than 16 MiB; use ReadFile for large data.");
                return "org.vmsup.Error.ResponseTooLarge";
        case -EBUSY:
                snprintf(msg, msgsz, "Too many agent commands are waiting.");
                return "org.vmsup.Error.Busy";
        case -EINVAL:
                snprintf(msg, msgsz, "The guest agent would not read the request as sent "
                                     "(nested too deep, or a Unicode noncharacter).");
                return SD_BUS_ERROR_INVALID_ARGS;
        case -ENOTCONN:
        case -ECANCELED:
                snprintf(msg, msgsz, "The guest agent is not connected.");
                return "org.vmsup.Error.AgentNotConnected";
        default:
                snprintf(msg, msgsz, "The agent request failed: %s.", strerror(-error));
                return SD_BUS_ERROR_FAILED;
        }
}

static void on_agent_reply(QgaClient *c, int error, json_t *result, const char *err_class, const char *err_desc,
                           void *userdata) {
        AgentCall *ac = userdata;
        Vm *vm = ac->vm;

        if (error >= 0 && ac->op == HANDLE_OPEN && json_is_integer(result)) {
                handle_forget(vm, json_integer_value(result)); /* a reused number: the new opener owns it */
                if (vm->n_agent_handles < AGENT_HANDLES_MAX)
                        vm->agent_handles[vm->n_agent_handles++] =
                                (AgentHandle) { .handle = json_integer_value(result), .owner = ac->uid };
                else
                        log_warning("VM %s: more than %u agent file handles open, not tracking more",
                                    vm->config->name, AGENT_HANDLES_MAX);
        } else if (error >= 0 && ac->op == HANDLE_CLOSE)
                handle_forget(vm, ac->handle);

        if (error < 0) {
                char msg[512];
                const char *name = vm_agent_error(error, err_class, err_desc, msg, sizeof msg);
                vm_reply_error(ac->message, name, "%s", msg);
        }
        else {
                /* ENSURE_ASCII: the guest's strings may hold anything; D-Bus wants valid UTF-8. */
                _cleanup_free_ char *s = json_dumps(result ?: json_object(), JSON_COMPACT | JSON_ENCODE_ANY |
                                                                                   JSON_ENSURE_ASCII);
                if (!s)
                        vm_reply_error(ac->message, SD_BUS_ERROR_NO_MEMORY, "Out of memory.");
                else if (strlen(s) > BUS_REPLY_MAX)
                        vm_reply_error(ac->message, "org.vmsup.Error.ResponseTooLarge",
                                       "The agent's reply is larger than 16 MiB; use ReadFile for large data.");
                else if (sd_bus_reply_method_return(ac->message, "s", s) < 0)
                        vm_reply_error(ac->message, SD_BUS_ERROR_NO_MEMORY, "Out of memory.");
        }
        sd_bus_message_unref(ac->message);
        free(ac);
}

int vm_agent_available(Vm *vm, sd_bus_error *error) {
        if (!vm->config->agent || !vm->qga)
                return sd_bus_error_set(error, "org.vmsup.Error.AgentNotConnected",
                                        "The guest agent is disabled for this VM.");
        if (!vm_is_running(vm))
                return sd_bus_error_set(error, "org.vmsup.Error.NotRunning", "The VM is not running.");
        /* The guest has not opened its end of the agent port: nobody would answer. */
        if (!vm->agent_port_open)
                return sd_bus_error_set(error, "org.vmsup.Error.AgentNotConnected", "The guest agent is not connected.");
        return 0;
}

static int method_command(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Vm *vm = userdata;
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
        r = vm_bus_parse_json_command(text, AGENT_COMMAND_JSON_MAX, &cmd, error);
        if (r < 0)
                return r;
        r = vm_bus_caller(vm, m, &caller, &privs, error);
        if (r < 0)
                goto finish;
        r = policy_check_qga_confined(cmd, &caller, privs, vm->config->agent_file_paths, msg, sizeof msg);
        if (r < 0) {
                r = vm_bus_policy_error(error, r, msg);
                goto finish;
        }
        r = vm_agent_available(vm, error);
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
                ssize_t i = handle_find(vm, handle);
                if (!caller_is_root(&caller) && (i < 0 || vm->agent_handles[i].owner != caller.uid)) {
                        r = sd_bus_error_set(error, SD_BUS_ERROR_ACCESS_DENIED,
                                             "The file handle was not opened by this caller.");
                        goto finish;
                }
        } else if (op == HANDLE_OPEN && !caller_is_root(&caller) && vm->n_agent_handles >= AGENT_HANDLES_MAX) {
                r = sd_bus_error_set(error, "org.vmsup.Error.Busy", "Too many guest files are open; close some first.");
                goto finish;
        }
        ac = calloc(1, sizeof *ac);
        if (!ac) {
                r = -ENOMEM;
                goto finish;
        }
        *ac = (AgentCall) { .vm = vm, .message = sd_bus_message_ref(m), .op = op, .uid = caller.uid, .handle = handle };
        r = qga_send(vm->qga, execute, json_object_get(cmd, "arguments"),
                     policy_qga_no_reply(execute) ? QGA_REPLY_NONE : QGA_REPLY_NORMAL,
                     policy_qga_timeout_usec(execute), BUS_REPLY_MAX, on_agent_reply, ac, NULL);
        if (r < 0) {
                sd_bus_message_unref(ac->message);
                free(ac);
                if (r == -EBUSY)
                        r = sd_bus_error_set(error, "org.vmsup.Error.Busy", "Too many agent commands are waiting.");
                else if (r == -EINVAL)
                        r = sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS,
                                             "The guest agent would not read the command as sent.");
                else
                        r = sd_bus_error_set(error, "org.vmsup.Error.AgentNotConnected",
                                             "The guest agent is not connected.");
                goto finish;
        }
        r = 1;
finish:
        json_decref(cmd);
        return r;
}

static const sd_bus_vtable agent_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD_WITH_ARGS("Command", SD_BUS_ARGS("s", qga_json), SD_BUS_RESULT("s", return_json),
                                method_command, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ReadFile", SD_BUS_ARGS("s", path, "t", offset, "t", length, "h", fd),
                                SD_BUS_RESULT("t", bytes), vm_method_read_file, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("WriteFile", SD_BUS_ARGS("s", path, "h", fd, "b", append), SD_BUS_RESULT("t", bytes),
                                vm_method_write_file, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

sd_bus_message_handler_t vm_agent_method(const char *iface, const char *member) {
        if (!streq(iface, AGENT_INTERFACE))
                return NULL;
        if (streq(member, "Command"))
                return method_command;
        if (streq(member, "ReadFile"))
                return vm_method_read_file;
        if (streq(member, "WriteFile"))
                return vm_method_write_file;
        return NULL;
}

int vm_agent_bus_attach(Vm *vm, sd_bus *bus) {
        return sd_bus_add_object_vtable(bus, &vm->agent_slot, VM_OBJECT_PATH, AGENT_INTERFACE, agent_vtable, vm);
}
