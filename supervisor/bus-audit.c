/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Audit records (bus-audit.h). */

#include <jansson.h>
#include <systemd/sd-journal.h>

#include "bus-audit.h"
#include "log.h"

static const struct {
        const char *iface, *member;
} state_changing[] = {
        { "org.vmsup.VM1", "Start" },
        { "org.vmsup.VM1", "StartWithOptions" },
        { "org.vmsup.VM1", "Reboot" },
        { "org.vmsup.VM1", "Shutdown" },
        { "org.vmsup.VM1", "Stop" },
        { "org.vmsup.VM1", "Reset" },
        { "org.vmsup.VM1", "Pause" },
        { "org.vmsup.VM1", "Resume" },
        { "org.vmsup.VM1", "SendKey" },
        { "org.vmsup.VM1", "Reload" },
        /* Any monitor or agent command may change the VM or the guest. */
        { "org.vmsup.Monitor1", NULL },
        { "org.vmsup.Agent1", NULL },
        { "org.vmsup.Console1", NULL },
        { "org.vmsup.Migration1", "MigrateOut" },
        { "org.vmsup.Migration1", "MigrateIn" },
        { "org.vmsup.Migration1", "MigrateCancel" },
};

bool bus_audit_is_state_changing(const char *iface, const char *member) {
        for (size_t i = 0; i < ELEMENTSOF(state_changing); i++)
                if (streq(state_changing[i].iface, iface) &&
                    (!state_changing[i].member || streq(state_changing[i].member, member)))
                        return true;
        return false;
}

static bool command_char(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
               c == '.';
}

/* Appends the word at *p (skipping blanks first) to ret; returns its end. */
static const char *take_word(const char *p, char *ret, size_t *len) {
        while (*p == ' ' || *p == '\t')
                p++;
        for (; *p && *p != ' ' && *p != '\t'; p++)
                if (command_char(*p) && *len < VMSUP_AUDIT_COMMAND_MAX)
                        ret[(*len)++] = *p;
        ret[*len] = '\0';
        return p;
}

void bus_audit_command_name(const char *text, bool hmp, char ret[static VMSUP_AUDIT_COMMAND_MAX + 1]) {
        size_t len = 0;

        ret[0] = '\0';
        if (!text)
                return;
        if (hmp) {
                const char *p = take_word(text, ret, &len);
                if (streq(ret, "info") && len < VMSUP_AUDIT_COMMAND_MAX) {
                        ret[len++] = ' ';
                        (void) take_word(p, ret, &len);
                        if (ret[len - 1] == ' ')
                                ret[--len] = '\0';
                }
                return;
        }
        json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
        const char *e = json_string_value(json_object_get(j, "execute"));
        for (; e && *e && len < VMSUP_AUDIT_COMMAND_MAX; e++)
                if (command_char(*e))
                        ret[len++] = *e;
        ret[len] = '\0';
        json_decref(j);
}

void bus_audit_record(bool refusal, const char *vm, const Caller *caller, const char *iface, const char *member,
                      const char *command, const char *result) {
        static int journal = -1; /* unknown yet */
        const char *kind = refusal ? "refused" : "call";
        char line[512];
        int r;

        if (!command)
                command = "";
        (void) snprintf(line, sizeof line, "audit: %s vm=%s uid=%u pid=%d method=%s.%s%s%s result=%s", kind, vm,
                        (unsigned) caller->uid, (int) caller->pid, iface, member, *command ? " command=" : "",
                        command, result);
        if (journal < 0)
                journal = getenv("JOURNAL_STREAM") != NULL;
        if (journal > 0) {
                /* VMSUP_COMMAND= only where there is a command: the last field, or none. */
                r = sd_journal_send("MESSAGE=%s", line, "MESSAGE_ID=%s",
                                    refusal ? VMSUP_AUDIT_REFUSAL_ID : VMSUP_AUDIT_CALL_ID, "PRIORITY=%d",
                                    refusal ? LOG_WARNING : LOG_NOTICE, "VMSUP_VM=%s", vm, "VMSUP_CALLER_UID=%u",
                                    (unsigned) caller->uid, "VMSUP_CALLER_PID=%d", (int) caller->pid,
                                    "VMSUP_METHOD=%s.%s", iface, member, "VMSUP_RESULT=%s", result,
                                    *command ? "VMSUP_COMMAND=%s" : NULL, command, NULL);
                if (r >= 0)
                        return;
        }
        log_full(refusal ? LOG_WARNING : LOG_NOTICE, "%s", line);
}
