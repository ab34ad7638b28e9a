/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* org.vmsup.Monitor1 on /org/vmsup/VM: HMP and QMP commands from callers, each
 * decided by the permission tables (policy/) before QEMU sees it. */

#include "bus-errors.h"
#include "bus-util.h"
#include "monitor-dbus.h"
#include "policy.h"
#include "vm.h"

/* The longest Execute argument parsed. */
#define EXECUTE_JSON_MAX (1024U * 1024U)

/* HMP's output is QEMU's text: a D-Bus string is UTF-8 without NUL. */
static void on_hmp_reply(VmBus *b, sd_bus_message *m, int error, json_t *result, const char *err_class,
                         const char *err_desc) {
        _cleanup_free_ char *s = NULL;

        if (error < 0) {
                bus_reply_errno(m, BUS_ERROR_QMP_REPLY, error, err_class, err_desc);
                return;
        }
        if (!json_is_string(result)) {
                bus_reply_error(m, VMSUP_ERROR_QEMU_ERROR, "QEMU answered human-monitor-command with a non-string.");
                return;
        }
        if (json_string_length(result) > BUS_REPLY_MAX) {
                bus_reply_string(m, NULL, json_string_length(result), "The output", "");
                return;
        }
        s = strndup(json_string_value(result), json_string_length(result));
        if (!s) {
                bus_reply_error(m, SD_BUS_ERROR_NO_MEMORY, "Out of memory.");
                return;
        }
        for (char *p = s; *p; p++)
                if ((unsigned char) *p >= 0x80)
                        *p = '?';
        bus_reply_string(m, s, strlen(s), "The output", "");
}

static int method_human_command(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        VmBus *b = userdata;
        const char *line;
        char msg[256];
        Caller caller;
        PrivSet privs;
        json_t *args;
        int r;

        r = sd_bus_message_read(m, "s", &line);
        if (r < 0)
                return r;
        if (strlen(line) > POLICY_HMP_LINE_MAX)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "The command line is longer than %u KiB.",
                                         POLICY_HMP_LINE_MAX / 1024U);
        r = bus_caller(b, m, &caller, &privs, error);
        if (r < 0)
                return r;
        r = policy_check_hmp(line, &caller, privs, msg, sizeof msg);
        if (r < 0)
                return bus_policy_error(error, r, msg);
        args = json_pack("{s:s}", "command-line", line);
        if (!args)
                return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS, "The command line is not valid UTF-8.");
        r = bus_qmp_call(b, m, "human-monitor-command", args, on_hmp_reply, error);
        json_decref(args);
        return r;
}

static int method_execute(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        VmBus *b = userdata;
        const char *text;
        char msg[256];
        Caller caller;
        PrivSet privs;
        json_t *cmd;
        int r;

        r = sd_bus_message_read(m, "s", &text);
        if (r < 0)
                return r;
        r = bus_parse_json_command(text, EXECUTE_JSON_MAX, &cmd, error);
        if (r < 0)
                return r;
        r = bus_caller(b, m, &caller, &privs, error);
        if (r >= 0) {
                r = policy_check_qmp(cmd, &caller, privs, msg, sizeof msg);
                if (r < 0)
                        r = bus_policy_error(error, r, msg);
                else
                        r = bus_qmp_call(b, m, json_string_value(json_object_get(cmd, "execute")),
                                         json_object_get(cmd, "arguments"), bus_qmp_reply_json, error);
        }
        json_decref(cmd);
        return r;
}

static const sd_bus_vtable monitor_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD_WITH_ARGS("HumanCommand", SD_BUS_ARGS("s", command_line), SD_BUS_RESULT("s", output),
                                method_human_command, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Execute", SD_BUS_ARGS("s", qmp_json), SD_BUS_RESULT("s", return_json),
                                method_execute, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

const BusInterface monitor_bus_interface = {
        .name = MONITOR_INTERFACE,
        .vtable = monitor_vtable,
};
