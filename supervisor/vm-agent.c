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

typedef struct AgentCall {
        Vm *vm;
        sd_bus_message *message;
} AgentCall;

void vm_bus_reply_agent_error(sd_bus_message *m, int error, const char *err_class, const char *err_desc);

void vm_bus_reply_agent_error(sd_bus_message *m, int error, const char *err_class, const char *err_desc) {
        char cls[64], desc[256];

        switch (error) {
        case -EREMOTEIO:
                sanitize_text(err_class, cls, sizeof cls);
                sanitize_text(err_desc, desc, sizeof desc);
                vm_reply_error(m, "org.vmsup.Error.AgentError", "%s: %s", cls, desc);
                break;
        case -ETIMEDOUT:
                vm_reply_error(m, "org.vmsup.Error.AgentTimeout", "The guest agent did not answer in time.");
                break;
        case -EPROTO:
                vm_reply_error(m, "org.vmsup.Error.AgentProtocol",
                               "The guest agent sent a reply that violates the protocol.");
                break;
        case -EFBIG:
                vm_reply_error(m, "org.vmsup.Error.ResponseTooLarge",
                               "The agent's reply is larger than 16 MiB; use ReadFile for large data.");
                break;
        case -EBUSY:
                vm_reply_error(m, "org.vmsup.Error.Busy", "Too many agent commands are waiting.");
                break;
        case -ENOTCONN:
        case -ECANCELED:
                vm_reply_error(m, "org.vmsup.Error.AgentNotConnected", "The guest agent is not connected.");
                break;
        default:
                vm_reply_error(m, SD_BUS_ERROR_FAILED, "The agent request failed: %s.", strerror(-error));
        }
}

static void on_agent_reply(QgaClient *c, int error, json_t *result, const char *err_class, const char *err_desc,
                           void *userdata) {
        AgentCall *ac = userdata;

        if (error < 0)
                vm_bus_reply_agent_error(ac->message, error, err_class, err_desc);
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
        json_error_t jerr;
        char msg[256];
        Caller caller;
        PrivSet privs;
        AgentCall *ac;
        json_t *cmd;
        int r;

        r = sd_bus_message_read(m, "s", &text);
        if (r < 0)
                return r;
        if (strlen(text) > AGENT_COMMAND_JSON_MAX)
                return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS, "The command is larger than 1 MiB.");
        cmd = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
        if (!cmd)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "The command is not valid JSON: %s.",
                                         jerr.text);
        r = vm_bus_caller(vm, m, &caller, &privs, error);
        if (r < 0)
                goto finish;
        r = policy_check_qga(cmd, &caller, privs, msg, sizeof msg);
        if (r < 0) {
                r = vm_bus_policy_error(error, r, msg);
                goto finish;
        }
        r = vm_agent_available(vm, error);
        if (r < 0)
                goto finish;
        execute = json_string_value(json_object_get(cmd, "execute"));
        ac = calloc(1, sizeof *ac);
        if (!ac) {
                r = -ENOMEM;
                goto finish;
        }
        *ac = (AgentCall) { .vm = vm, .message = sd_bus_message_ref(m) };
        r = qga_send(vm->qga, execute, json_object_get(cmd, "arguments"),
                     policy_qga_no_reply(execute) ? QGA_REPLY_NONE : QGA_REPLY_NORMAL,
                     policy_qga_timeout_usec(execute), BUS_REPLY_MAX, on_agent_reply, ac, NULL);
        if (r < 0) {
                sd_bus_message_unref(ac->message);
                free(ac);
                if (r == -EBUSY)
                        r = sd_bus_error_set(error, "org.vmsup.Error.Busy", "Too many agent commands are waiting.");
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
                                method_command, 0),
        SD_BUS_METHOD_WITH_ARGS("ReadFile", SD_BUS_ARGS("s", path, "t", offset, "t", length, "h", fd),
                                SD_BUS_RESULT("t", bytes), vm_method_read_file, 0),
        SD_BUS_METHOD_WITH_ARGS("WriteFile", SD_BUS_ARGS("s", path, "h", fd, "b", append), SD_BUS_RESULT("t", bytes),
                                vm_method_write_file, 0),
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
