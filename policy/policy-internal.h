/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Helpers shared by the policy/ sources; not part of the module's interface. */

#include <stdarg.h>

#include "macro.h"
#include "policy.h"

/* A caller-supplied name is shown with at most this many characters. */
#define POLICY_NAME_SHOWN_MAX 32U
/* Room for a sanitized name: the characters, "..." and the NUL. */
#define POLICY_NAME_BUFSZ (POLICY_NAME_SHOWN_MAX + 4U)

/* Formats one sentence into msg (when msg != NULL and msgsz > 0) and returns r,
 * so that a refusal is a single statement: return policy_msg(-EACCES, ...). */
int policy_msg(int r, char *msg, size_t msgsz, const char *fmt, ...) _printf_(4, 5);

/* Clears msg and returns 0: the "allowed" answer. */
static inline int policy_allow(char *msg, size_t msgsz) {
        if (msg && msgsz > 0)
                msg[0] = '\0';
        return 0;
}

/* Copies name (len bytes) into buf for a message: printable ASCII other than
 * space kept, anything else replaced by '?', cut at POLICY_NAME_SHOWN_MAX
 * characters with "..." appended. Returns buf. */
const char *policy_name_sanitize(const char *name, size_t len, char buf[static POLICY_NAME_BUFSZ]);

/* True for a byte QEMU and the agent accept in a command name and that is
 * safe to show: printable ASCII, no space. */
static inline bool policy_char_is_graphic(unsigned char c) {
        return c > 0x20 && c < 0x7f;
}

/* A string that C code sees whole: no embedded NUL that would make strlen()
 * stop before the end the peer sees. */
bool policy_json_string_is_whole(const json_t *s);

/* Every key of object is free of embedded NULs. */
bool policy_json_keys_are_whole(json_t *object);

/* Validates the shape shared by QMP and the agent: an object with exactly
 * "execute" (a non-empty string of graphic ASCII) and optionally "arguments"
 * (an object). Returns 0 and the borrowed execute name and arguments (NULL when
 * absent), or -EINVAL with a message. */
int policy_json_request(json_t *cmd, const char **ret_execute, json_t **ret_arguments, char *msg,
                        size_t msgsz);
