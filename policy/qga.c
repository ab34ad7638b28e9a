/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Deciding an agent command. The guest is not trusted, and neither is the
 * caller: limits the contract sets are enforced here whatever the guest's
 * agent version would do. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy-internal.h"

static int qga_command_compare(const void *key, const void *member) {
        return strcmp(key, ((const QgaCommand *) member)->name);
}

const QgaCommand *policy_qga_lookup(const char *execute) {
        if (!execute)
                return NULL;
        return bsearch(execute, policy_qga_commands, policy_qga_commands_count, sizeof(QgaCommand),
                       qga_command_compare);
}

bool policy_qga_no_reply(const char *execute) {
        const QgaCommand *c = policy_qga_lookup(execute);

        return c && c->no_reply;
}

uint64_t policy_qga_timeout_usec(const char *execute) {
        const QgaCommand *c = policy_qga_lookup(execute);

        return c && c->timeout_usec > 0 ? c->timeout_usec : POLICY_QGA_TIMEOUT_DEFAULT_USEC;
}

/* The agent's fopen() modes (qga/commands-posix.c and commands-win32.c accept
 * exactly these strings and nothing else). Only the first two cannot write. */
static const char *const qga_read_modes[] = { "r", "rb" };
static const char *const qga_write_modes[] = {
        "w", "wb", "a", "ab", "r+", "rb+", "r+b", "w+", "wb+", "w+b", "a+", "ab+", "a+b",
};

static bool mode_in(const char *mode, const char *const *modes, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (streq(mode, modes[i]))
                        return true;
        return false;
}

/* Sets *ret_writes to whether guest-file-open's mode can write. A mode that is
 * not one of the agent's is refused rather than guessed at. */
static int qga_file_open_writes(json_t *arguments, bool *ret_writes, char *msg, size_t msgsz) {
        json_t *mode;
        const char *m;

        if (arguments && !policy_json_keys_are_whole(arguments))
                return policy_msg(-EINVAL, msg, msgsz, "guest-file-open has a malformed argument name.");

        mode = arguments ? json_object_get(arguments, "mode") : NULL;
        if (!mode) {
                /* The agent's default. */
                *ret_writes = false;
                return 0;
        }

        if (!json_is_string(mode) || !policy_json_string_is_whole(mode))
                goto invalid;
        m = json_string_value(mode);
        if (mode_in(m, qga_read_modes, ELEMENTSOF(qga_read_modes))) {
                *ret_writes = false;
                return 0;
        }
        if (mode_in(m, qga_write_modes, ELEMENTSOF(qga_write_modes))) {
                *ret_writes = true;
                return 0;
        }

invalid:
        return policy_msg(-EINVAL, msg, msgsz,
                          "guest-file-open \"mode\" must be one of r, rb, w, wb, a, ab, r+, rb+, r+b, w+, wb+, w+b, a+, ab+, a+b.");
}

/* CVE-2018-12617: older agents allocate whatever count asks for. */
static int qga_file_read_validate(json_t *arguments, char *msg, size_t msgsz) {
        json_t *count;

        if (!arguments)
                return 0; /* the agent's default count is small */
        if (!policy_json_keys_are_whole(arguments))
                return policy_msg(-EINVAL, msg, msgsz, "guest-file-read has a malformed argument name.");

        count = json_object_get(arguments, "count");
        if (!count)
                return 0;
        if (!json_is_integer(count) || json_integer_value(count) < 0 ||
            (uint64_t) json_integer_value(count) > QGA_FILE_READ_MAX)
                return policy_msg(-EINVAL, msg, msgsz,
                                  "guest-file-read \"count\" must be an integer from 0 to %u.", QGA_FILE_READ_MAX);
        return 0;
}

/* "Command 'x' requires the A or B privilege.": names the specific privileges
 * and mentions Unrestricted only when nothing narrower grants the command. */
static int qga_refuse(const char *shown, PrivSet needed, char *msg, size_t msgsz) {
        char names[256] = "";
        size_t n = 0;
        PrivSet specific = needed & ~PRIV_BIT(PRIV_GA_UNRESTRICTED);

        if (specific == 0)
                specific = needed;
        if (specific == 0)
                return policy_msg(-EACCES, msg, msgsz, "Command '%s' is root-only.", shown);

        for (Privilege p = 0; p < _PRIV_MAX; p++) {
                if (!(specific & PRIV_BIT(p)))
                        continue;
                int k = snprintf(names + n, sizeof(names) - n, "%s%s", n > 0 ? " or " : "",
                                 privilege_to_string(p));
                if (k < 0 || (size_t) k >= sizeof(names) - n)
                        break;
                n += (size_t) k;
        }

        return policy_msg(-EACCES, msg, msgsz, "Command '%s' requires the %s privilege.", shown, names);
}

int policy_check_qga(json_t *cmd, const Caller *caller, PrivSet privs, char *msg, size_t msgsz) {
        char shown[POLICY_NAME_BUFSZ];
        const QgaCommand *c;
        const char *execute;
        json_t *arguments;
        PrivSet needed;
        bool writes = false;
        int r;

        if (!caller)
                return policy_msg(-EINVAL, msg, msgsz, "No caller given.");

        r = policy_json_request(cmd, &execute, &arguments, msg, msgsz);
        if (r < 0)
                return r;

        /* Validation, for everyone, before any privilege is looked at. */
        if (streq(execute, "guest-file-read")) {
                r = qga_file_read_validate(arguments, msg, msgsz);
                if (r < 0)
                        return r;
        } else if (streq(execute, "guest-file-open")) {
                r = qga_file_open_writes(arguments, &writes, msg, msgsz);
                if (r < 0)
                        return r;
        }

        policy_name_sanitize(execute, strlen(execute), shown);
        c = policy_qga_lookup(execute);

        /* Even root: a caller's sync would answer the supervisor's and leave the
         * channel out of step. */
        if (c && c->reserved)
                return policy_msg(-EPERM, msg, msgsz, "Command '%s' is reserved for the supervisor.", shown);

        if (caller_is_root(caller))
                return policy_allow(msg, msgsz);

        /* Deny by default: unknown commands need privileges nobody is granted. */
        needed = c ? c->any_of : 0;
        if (streq(execute, "guest-file-open"))
                needed = writes ? PRIV_BIT(PRIV_GA_FILEWRITE) | PRIV_BIT(PRIV_GA_UNRESTRICTED)
                                : PRIV_BIT(PRIV_GA_FILEREAD) | PRIV_BIT(PRIV_GA_UNRESTRICTED);

        if (needed & privs)
                return policy_allow(msg, msgsz);

        if (streq(execute, "guest-file-open") && writes)
                return policy_msg(-EACCES, msg, msgsz,
                                  "Opening a guest file for writing requires the %s privilege.",
                                  privilege_to_string(PRIV_GA_FILEWRITE));
        return qga_refuse(shown, needed, msg, msgsz);
}

int policy_check_file_transfer(bool write, const Caller *caller, PrivSet privs, char *msg, size_t msgsz) {
        if (!caller_is_root(caller) && (privs & PRIV_BIT(PRIV_GA_UNRESTRICTED)))
                return 0;
        return policy_check_privilege(write ? PRIV_GA_FILEWRITE : PRIV_GA_FILEREAD, caller, privs, msg, msgsz);
}

/* ---- guest path confinement ---- */

bool policy_guest_path_is_normal(const char *path) {
        size_t n;

        if (!path || path[0] != '/')
                return false;
        n = strnlen(path, POLICY_GUEST_PATH_MAX + 1);
        if (n > POLICY_GUEST_PATH_MAX)
                return false;
        if (n == 1)
                return true; /* "/" */
        if (strchr(path, '\\'))
                return false;

        /* Each component: from after a '/' to the next '/' or the end. */
        for (const char *c = path + 1;;) {
                const char *end = strchrnul(c, '/');
                bool only_dots_spaces = true;

                if (end == c)
                        return false; /* "//" or a trailing '/' */
                for (const char *p = c; p < end; p++)
                        if (*p != '.' && *p != ' ') {
                                only_dots_spaces = false;
                                break;
                        }
                if (only_dots_spaces)
                        return false;
                if (*end == '\0')
                        return true;
                c = end + 1;
        }
}

bool policy_guest_path_within(const char *path, const char *prefix) {
        size_t n;

        if (!path || !prefix)
                return false;
        if (streq(prefix, "/"))
                return path[0] == '/';
        n = strlen(prefix);
        return strncmp(path, prefix, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

int policy_check_guest_path(const char *path, char *const *prefixes, const Caller *caller, char *msg,
                            size_t msgsz) {
        if (!caller)
                return policy_msg(-EINVAL, msg, msgsz, "No caller given.");
        if (caller_is_root(caller) || !prefixes)
                return policy_allow(msg, msgsz);

        if (!policy_guest_path_is_normal(path))
                return policy_msg(-EINVAL, msg, msgsz,
                                  "The guest path must be absolute and normalised: no empty, '.' or '..' component, "
                                  "no trailing '/', no backslash, at most %u bytes.",
                                  POLICY_GUEST_PATH_MAX);
        for (char *const *p = prefixes; *p; p++)
                if (policy_guest_path_within(path, *p))
                        return policy_allow(msg, msgsz);
        return policy_msg(-EACCES, msg, msgsz, "The guest path is outside the paths this VM allows for file access.");
}

int policy_check_qga_confined(json_t *cmd, const Caller *caller, PrivSet privs, char *const *prefixes, char *msg,
                              size_t msgsz) {
        json_t *path;
        int r;

        r = policy_check_qga(cmd, caller, privs, msg, msgsz);
        if (r < 0)
                return r;
        if (caller_is_root(caller) || !prefixes)
                return r;
        if (!streq(json_string_value(json_object_get(cmd, "execute")), "guest-file-open"))
                return r;

        path = json_object_get(json_object_get(cmd, "arguments"), "path");
        if (!json_is_string(path) || !policy_json_string_is_whole(path))
                return policy_msg(-EINVAL, msg, msgsz, "guest-file-open needs a string \"path\".");
        return policy_check_guest_path(json_string_value(path), prefixes, caller, msg, msgsz);
}
