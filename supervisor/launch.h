/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <sys/types.h>

#include "config.h"

/* Where the descriptors land in QEMU's process. */
#define LAUNCH_QMP_FD 3
#define LAUNCH_QGA_FD 4

typedef struct LaunchResult {
        pid_t pid;
        int pidfd;      /* owned by the caller */
        int stderr_fd;  /* read end of QEMU's stdout+stderr, non-blocking, owned by the caller */
} LaunchResult;

/* Resolves c->binary (absolute, or through PATH). Returns 0 and a malloc'd path, or -ENOENT. */
int launch_resolve_binary(const VmConfig *c, char **ret);

/* Starts QEMU for c: a child with a default signal state, its own session, the parent-death
 * signal SIGKILL (QEMU never outlives the supervisor), stdin from /dev/null, stdout and stderr
 * into a pipe, exactly the descriptors qmp_listen_fd and qga_listen_fd (at LAUNCH_QMP_FD and
 * LAUNCH_QGA_FD; qga_listen_fd may be -1) and nothing else; with run_as, the uid/gid and only
 * the configured supplementary groups, no capabilities, an empty bounding set; always
 * NO_NEW_PRIVS. Returns 0 or -errno; exec failures show up as exit status 127 with the reason
 * on the pipe. */
int launch_qemu(const VmConfig *c, int qmp_listen_fd, int qga_listen_fd, LaunchResult *ret);
