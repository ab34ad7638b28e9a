/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The callers every policy harness asks about, and the checks common to them. */

#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "macro.h"
#include "policy.h"

#define N_CALLERS 7
/* Caller 0 is root; the others are not, with growing privilege sets (each a subset of the
 * next but one: 1 ⊂ 2 ⊂ 3 ⊂ 6, 4 ⊂ 6, 5 ⊂ 6). */
static const gid_t caller_groups[] = { 100, 1500 };
static const Caller callers[N_CALLERS] = {
        { .uid = 0, .gid = 0 },
        { .uid = 1000, .gid = 1000 },
        { .uid = 1000, .gid = 1000, .groups = caller_groups, .n_groups = 2 },
        { .uid = 1001, .gid = (gid_t) -1 },
        { .uid = 1002, .gid = 1002 },
        { .uid = 1003, .gid = 1003 },
        { .uid = 65534, .gid = 65534 },
};
static const PrivSet caller_privs[N_CALLERS] = {
        0,
        0,
        PRIV_BIT(PRIV_VM_MONITOR),
        PRIV_BIT(PRIV_VM_MONITOR) | PRIV_BIT(PRIV_SYS_MODIFY),
        PRIV_BIT(PRIV_GA_AUDIT) | PRIV_BIT(PRIV_GA_FILEREAD),
        PRIV_BIT(PRIV_GA_FILEWRITE) | PRIV_BIT(PRIV_GA_FSMGMT) | PRIV_BIT(PRIV_VM_AUDIT),
        PRIV_ALL,
};

/* A refusal's message: one sentence of printable ASCII (a sanitized name at most). */
static inline void check_message(const char *msg, size_t size, int r) {
        size_t n = strnlen(msg, size);

        FUZZ_ASSERT(n < size);
        FUZZ_ASSERT(r == 0 ? n == 0 : n > 0);
        for (size_t i = 0; i < n; i++)
                FUZZ_ASSERT((unsigned char) msg[i] >= 0x20 && (unsigned char) msg[i] < 0x7f);
}

/* What holds between the answers for the callers above, whatever the request. */
static inline void check_answers(const int r[N_CALLERS]) {
        for (size_t i = 0; i < N_CALLERS; i++)
                FUZZ_ASSERT(IN_SET(r[i], 0, -EINVAL, -EACCES, -EPERM));
        /* Root is never refused for want of a privilege. */
        FUZZ_ASSERT(r[0] != -EACCES);
        /* Validation precedes authorization: malformed for one non-root caller, malformed for all;
         * reserved for one, reserved for all (root included, unless malformed only for others). */
        for (size_t i = 2; i < N_CALLERS; i++) {
                FUZZ_ASSERT((r[i] == -EINVAL) == (r[1] == -EINVAL));
                FUZZ_ASSERT((r[i] == -EPERM) == (r[1] == -EPERM));
        }
        if (r[1] == -EPERM)
                FUZZ_ASSERT(r[0] == -EPERM);
        /* Nothing is allowed without a privilege; more privileges never take anything away. */
        FUZZ_ASSERT(r[1] != 0);
        if (r[2] == 0)
                FUZZ_ASSERT(r[3] == 0);
        for (size_t i = 1; i < N_CALLERS; i++)
                if (r[i] == 0)
                        FUZZ_ASSERT(r[N_CALLERS - 1] == 0 && r[0] == 0);
}
