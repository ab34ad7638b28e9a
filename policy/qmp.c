/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Deciding an Execute request. */

#include <stdlib.h>
#include <string.h>

#include "policy-internal.h"

#define QMP_HMP_COMMAND "human-monitor-command"

static int qmp_command_compare(const void *key, const void *member) {
        return strcmp(key, ((const QmpCommand *) member)->name);
}

static const QmpCommand *qmp_lookup(const char *execute) {
        if (!execute)
                return NULL;
        return bsearch(execute, policy_qmp_commands, policy_qmp_commands_count, sizeof(QmpCommand),
                       qmp_command_compare);
}

QmpTier policy_qmp_tier(const char *execute) {
        const QmpCommand *c = qmp_lookup(execute);

        return c ? c->tier : QMP_TIER_ROOT;
}

const char *qmp_tier_to_string(QmpTier t) {
        static const char *const names[_QMP_TIER_MAX] = {
                [QMP_TIER_MONITOR] = "VM.Monitor",
                [QMP_TIER_SYS_MODIFY] = "Sys.Modify",
                [QMP_TIER_ROOT] = "root",
                [QMP_TIER_RESERVED] = "reserved",
        };

        if (t < 0 || t >= _QMP_TIER_MAX)
                return NULL;
        return names[t];
}

/* human-monitor-command takes "command-line" (required) and "cpu-index"
 * (optional) in QEMU 7.2; anything else would be refused by QEMU anyway, and
 * refusing it here means the line we judge is the line QEMU runs. */
static int qmp_hmp_command_line(json_t *arguments, const char **ret_line, char *msg, size_t msgsz) {
        json_t *line, *cpu;

        if (!arguments || !policy_json_keys_are_whole(arguments))
                goto invalid;
        line = json_object_get(arguments, "command-line");
        cpu = json_object_get(arguments, "cpu-index");
        if (json_object_size(arguments) != 1U + (cpu != NULL))
                goto invalid;
        if (!json_is_string(line) || !policy_json_string_is_whole(line))
                goto invalid;
        if (cpu && !json_is_integer(cpu))
                goto invalid;

        *ret_line = json_string_value(line);
        return 0;

invalid:
        return policy_msg(-EINVAL, msg, msgsz,
                          "human-monitor-command takes a string \"command-line\" and an optional integer \"cpu-index\".");
}

int policy_check_qmp(json_t *cmd, const Caller *caller, PrivSet privs, char *msg, size_t msgsz) {
        char shown[POLICY_NAME_BUFSZ];
        const char *execute, *line = NULL;
        json_t *arguments;
        QmpTier tier;
        int r;

        if (!caller)
                return policy_msg(-EINVAL, msg, msgsz, "No caller given.");

        r = policy_json_request(cmd, &execute, &arguments, msg, msgsz);
        if (r < 0)
                return r;
        /* QEMU's command names are QAPI names, and the QMP client sends nothing else (the
         * same check). Judging any other name by tier first would answer AccessDenied to one
         * caller and InvalidArgs (from the client) to root for the same malformed request. */
        if (!qapi_name_is_valid(execute, POLICY_QMP_NAME_MAX))
                return policy_msg(-EINVAL, msg, msgsz,
                                  "\"execute\" must be a QMP command name: letters, digits, '-', '_' and '.', "
                                  "at most %u.", POLICY_QMP_NAME_MAX);

        /* The HMP table decides HMP lines, whichever door they come through;
         * policy_check_hmp() validates before it authorizes. */
        if (streq(execute, QMP_HMP_COMMAND)) {
                r = qmp_hmp_command_line(arguments, &line, msg, msgsz);
                if (r < 0)
                        return r;
                return policy_check_hmp(line, caller, privs, msg, msgsz);
        }

        policy_name_sanitize(execute, strlen(execute), shown);
        tier = policy_qmp_tier(execute);

        /* Even root: these would pull the session out from under the supervisor. */
        if (tier == QMP_TIER_RESERVED)
                return policy_msg(-EPERM, msg, msgsz, "Command '%s' is reserved for the supervisor.", shown);

        if (caller_is_root(caller))
                return policy_allow(msg, msgsz);

        if (!(privs & PRIV_BIT(PRIV_VM_MONITOR)))
                return policy_msg(-EACCES, msg, msgsz, "%s privilege required.",
                                  privilege_to_string(PRIV_VM_MONITOR));

        switch (tier) {
        case QMP_TIER_MONITOR:
                return policy_allow(msg, msgsz);
        case QMP_TIER_SYS_MODIFY:
                if (privs & PRIV_BIT(PRIV_SYS_MODIFY))
                        return policy_allow(msg, msgsz);
                return policy_msg(-EACCES, msg, msgsz, "Command '%s' requires the %s privilege.", shown,
                                  privilege_to_string(PRIV_SYS_MODIFY));
        default:
                return policy_msg(-EACCES, msg, msgsz, "Command '%s' is root-only.", shown);
        }
}
