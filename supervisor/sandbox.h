/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <seccomp.h>

#include "config.h"

/* What happens to a system call outside the supervisor's allowlist. */
typedef enum SeccompMode {
        SECCOMP_MODE_OFF,  /* no filter: the launcher (QEMU would inherit it) and QEMU (it has -sandbox) */
        SECCOMP_MODE_KILL, /* the default: the whole supervisor dies with SIGSYS */
        SECCOMP_MODE_LOG,  /* debugging (--seccomp=log): the call runs and the kernel's audit log names it */
        _SECCOMP_MODE_MAX,
        _SECCOMP_MODE_INVALID = -EINVAL,
} SeccompMode;

const char *seccomp_mode_to_string(SeccompMode m);
/* "kill" or "log" (the modes a user may choose); -EINVAL otherwise. */
SeccompMode seccomp_mode_from_string(const char *s);

/* The mode the supervisor uses when not told otherwise: kill, except in sanitizer builds, whose
 * runtime needs calls no daemon should make (LeakSanitizer's ptrace at exit): there it is log. */
SeccompMode seccomp_mode_default(void);

#define SANDBOX_CAP(c) (UINT64_C(1) << (c))

/* One process's confinement, applied by sandbox_apply(). */
typedef struct SandboxPolicy {
        const char *who;  /* for messages: "vmsupd", "launcher", "QEMU" */
        uint64_t caps;    /* SANDBOX_CAP() bits kept in the effective, permitted and bounding sets */
        bool change_ids;  /* become uid/gid with exactly groups as supplementary groups */
        uid_t uid;
        gid_t gid;
        const gid_t *groups;
        size_t n_groups;
        SeccompMode seccomp; /* the supervisor's allowlist, or SECCOMP_MODE_OFF */
} SandboxPolicy;

/* The capabilities each vmsup process keeps, and why: the one place that decides it. */
uint64_t sandbox_supervisor_caps(const VmConfig *c);
uint64_t sandbox_launcher_caps(const VmConfig *c);
/* QEMU keeps none, whoever it runs as. */
#define SANDBOX_QEMU_CAPS UINT64_C(0)

/* Applies p to the calling (single-threaded) process in a fixed order: capabilities (bounding
 * set first, while CAP_SETPCAP is still held; inheritable and ambient sets emptied) → ids →
 * rlimits → NO_NEW_PRIVS → seccomp. Then verifies the result against p. Capabilities the
 * process does not hold are not kept, whatever p asks. Returns 0, or -errno (-EPERM when the
 * result is not what p asks for). Async-signal-unsafe; safe in a fork()ed child of a
 * single-threaded process. */
int sandbox_apply(const SandboxPolicy *p);

/* Builds the supervisor's filter: SECCOMP_MODE_KILL or SECCOMP_MODE_LOG for everything outside
 * the allowlist, KILL for a foreign architecture. Returns 0 and a context to seccomp_load() and
 * seccomp_release(), or -errno. */
int sandbox_seccomp_new(SeccompMode mode, scmp_filter_ctx *ret);

/* The number of entries in the supervisor's allowlist (system calls, some with argument rules). */
size_t sandbox_seccomp_allowlist_size(void);
