/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Privileges, ACL evaluation and the helpers every door shares. */

#include <stdio.h>
#include <string.h>

#include "json-wire.h"
#include "policy-internal.h"

/* The contract's names, verbatim: they appear in ACL files and in refusals. */
static const char *const privilege_names[_PRIV_MAX] = {
        [PRIV_VM_AUDIT]        = "VM.Audit",
        [PRIV_VM_POWERMGMT]    = "VM.PowerMgmt",
        [PRIV_VM_CONSOLE]      = "VM.Console",
        [PRIV_VM_MONITOR]      = "VM.Monitor",
        [PRIV_SYS_MODIFY]      = "Sys.Modify",
        [PRIV_VM_MIGRATE]      = "VM.Migrate",
        [PRIV_GA_AUDIT]        = "VM.GuestAgent.Audit",
        [PRIV_GA_FILEREAD]     = "VM.GuestAgent.FileRead",
        [PRIV_GA_FILEWRITE]    = "VM.GuestAgent.FileWrite",
        [PRIV_GA_FSMGMT]       = "VM.GuestAgent.FileSystemMgmt",
        [PRIV_GA_UNRESTRICTED] = "VM.GuestAgent.Unrestricted",
};

const char *privilege_to_string(Privilege p) {
        if (p < 0 || p >= _PRIV_MAX)
                return NULL;
        return privilege_names[p];
}

Privilege privilege_from_string(const char *s) {
        if (!s)
                return _PRIV_INVALID;
        for (Privilege p = 0; p < _PRIV_MAX; p++)
                if (streq(privilege_names[p], s))
                        return p;
        return _PRIV_INVALID;
}

static bool caller_in_group(const Caller *caller, uint32_t gid) {
        if (caller->gid != (gid_t) -1 && caller->gid == (gid_t) gid)
                return true;
        for (size_t i = 0; i < caller->n_groups; i++)
                if (caller->groups && caller->groups[i] == (gid_t) gid)
                        return true;
        return false;
}

PrivSet policy_acl_privileges(const AclEntry *acl, size_t n_acl, const Caller *caller) {
        PrivSet privs = 0;

        if (!caller)
                return 0;
        if (caller_is_root(caller))
                return PRIV_ALL;
        if (!acl)
                return 0;

        for (size_t i = 0; i < n_acl; i++) {
                const AclEntry *e = &acl[i];

                /* (uid_t) -1 and (gid_t) -1 mean "unknown" to the kernel and to
                 * the bus: an entry naming that id must not match a caller whose
                 * id could not be determined. */
                if (e->id == UINT32_MAX)
                        continue;

                switch (e->subject) {
                case ACL_SUBJECT_USER:
                        if (caller->uid == (uid_t) e->id)
                                privs |= e->privileges;
                        break;
                case ACL_SUBJECT_GROUP:
                        if (caller_in_group(caller, e->id))
                                privs |= e->privileges;
                        break;
                default:
                        /* Deny by default: an entry of a kind we do not know grants nothing. */
                        break;
                }
        }

        return privs & PRIV_ALL;
}

int policy_check_privilege(Privilege needed, const Caller *caller, PrivSet privs, char *msg, size_t msgsz) {
        if (needed < 0 || needed >= _PRIV_MAX || !caller)
                return policy_msg(-EINVAL, msg, msgsz, "Invalid privilege check.");
        if (caller_is_root(caller) || (privs & PRIV_BIT(needed)))
                return policy_allow(msg, msgsz);
        return policy_msg(-EACCES, msg, msgsz, "%s privilege required.", privilege_names[needed]);
}

/* ---- helpers shared by the doors ---- */

int policy_msg(int r, char *msg, size_t msgsz, const char *fmt, ...) {
        va_list ap;

        if (!msg || msgsz == 0)
                return r;

        va_start(ap, fmt);
        (void) vsnprintf(msg, msgsz, fmt, ap);
        va_end(ap);
        return r;
}

const char *policy_name_sanitize(const char *name, size_t len, char buf[static POLICY_NAME_BUFSZ]) {
        text_sanitize(buf, POLICY_NAME_SHOWN_MAX + 1, name, len, TEXT_NO_SPACE);
        if (len > POLICY_NAME_SHOWN_MAX) /* shown in full up to the cut, then marked */
                strcpy(buf + POLICY_NAME_SHOWN_MAX, "...");
        return buf;
}

bool policy_json_string_is_whole(const json_t *s) {
        const char *v = json_string_value(s);

        return v && strlen(v) == json_string_length(s);
}

bool policy_json_keys_are_whole(json_t *object) {
        const char *key;
        size_t key_len;
        json_t *value;

        json_object_keylen_foreach(object, key, key_len, value)
                if (strlen(key) != key_len)
                        return false;
        return true;
}

int policy_json_request(json_t *cmd, const char **ret_execute, json_t **ret_arguments, char *msg,
                        size_t msgsz) {
        json_t *execute, *arguments;
        const char *name;
        int r;

        if (!json_is_object(cmd))
                return policy_msg(-EINVAL, msg, msgsz, "The command must be a JSON object.");

        /* Only the two keys of the contract: "id" is the supervisor's to assign,
         * "control" and "exec-oob" would change how QEMU runs the command. A key
         * with an embedded NUL could pose as "execute" to C string functions. */
        if (!policy_json_keys_are_whole(cmd))
                return policy_msg(-EINVAL, msg, msgsz,
                                  "The command may only have the keys \"execute\" and \"arguments\".");
        execute = json_object_get(cmd, "execute");
        arguments = json_object_get(cmd, "arguments");
        if (json_object_size(cmd) != (size_t) (execute != NULL) + (size_t) (arguments != NULL))
                return policy_msg(-EINVAL, msg, msgsz,
                                  "The command may only have the keys \"execute\" and \"arguments\".");

        if (!json_is_string(execute) || !policy_json_string_is_whole(execute))
                return policy_msg(-EINVAL, msg, msgsz, "\"execute\" must be a string naming the command.");
        name = json_string_value(execute);
        if (name[0] == '\0')
                return policy_msg(-EINVAL, msg, msgsz, "\"execute\" must be a string naming the command.");
        for (const char *p = name; *p; p++)
                if (!policy_char_is_graphic((unsigned char) *p))
                        return policy_msg(-EINVAL, msg, msgsz,
                                          "\"execute\" may only contain printable ASCII without spaces.");

        if (arguments && !json_is_object(arguments))
                return policy_msg(-EINVAL, msg, msgsz, "\"arguments\" must be a JSON object.");

        /* What QEMU's and qemu-ga's parser would read differently from the object judged
         * here: deeper nesting makes them drop what they read and run the rest as new
         * commands; a noncharacter makes them refuse the request without saying which. */
        r = json_wire_check_value(cmd, JSON_WIRE_DEPTH_MAX);
        if (r == -E2BIG)
                return policy_msg(-EINVAL, msg, msgsz, "The command is nested deeper than %u levels.",
                                  JSON_WIRE_DEPTH_MAX);
        if (r < 0)
                return policy_msg(-EINVAL, msg, msgsz,
                                  "The command holds a character QEMU and the guest agent refuse "
                                  "(a Unicode noncharacter such as U+FFFF, or NUL).");

        *ret_execute = name;
        *ret_arguments = arguments;
        return 0;
}
