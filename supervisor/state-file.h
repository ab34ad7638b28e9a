/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The run record: written by the launcher when it starts QEMU, removed once a supervisor
 * has learned how QEMU ended. It holds what the next supervisor needs to find and verify a QEMU that outlived
 * its supervisor. It lives in RUNTIME/NAME/run-state, 0600, written atomically (a temporary
 * file, then rename()), and is read back like any untrusted input: a regular file owned by
 * us, not reachable by anyone else, small, in exactly this form (one key a line, in this
 * order, nothing else):
 *
 *   vmsup-run 1
 *   qemu_pid 1234
 *   qemu_start 5678             (field 22 of /proc/PID/stat: clock ticks since boot)
 *   qemu_exe /usr/bin/qemu-system-x86_64   (argv[0], as /proc/PID/cmdline shows it)
 *   launcher_pid 1233
 *   launcher_start 5600
 *
 * Numbers are decimal without sign or leading zeros; pids are within 1..2^22; the exe is an
 * absolute path of printable ASCII without spaces. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define RUN_RECORD_FILE "run-state"
#define RUN_RECORD_MAX 4096U
#define RUN_RECORD_EXE_MAX 1024U

typedef struct RunRecord {
        pid_t qemu_pid;
        uint64_t qemu_start;
        char qemu_exe[RUN_RECORD_EXE_MAX];
        pid_t launcher_pid;
        uint64_t launcher_start;
} RunRecord;

/* Pure. Formats r into buf; returns the length, or -EINVAL for a record that would not
 * parse back (an exe outside the form above), -ENOBUFS. */
int run_record_format(const RunRecord *r, char *buf, size_t size);

/* Pure. Parses len bytes. Returns 0, or -EBADMSG with *ret_error (static text) saying what
 * is wrong. Nothing is stored in ret on failure. */
int run_record_parse(const char *buf, size_t len, RunRecord *ret, const char **ret_error);

/* Pure. Field want (≥ 4, numeric) of the text of /proc/PID/stat: 4 is the parent's pid. */
int proc_stat_field(const char *buf, size_t len, unsigned want, uint64_t *ret);
/* Pure. argv[0] from the text of /proc/PID/cmdline. 0 or -EBADMSG. */
int proc_cmdline_argv0(const char *buf, size_t len, char *out, size_t size);

/* Pure. The start time (field 22) from the text of /proc/PID/stat; the command name in
 * parentheses may hold anything, so fields are counted after its last ')'. 0 or -EBADMSG. */
int proc_stat_start_time(const char *buf, size_t len, uint64_t *ret);

/* dir/run-state: written atomically, 0600. 0 or -errno. */
int run_record_write(const char *dir, const RunRecord *r);
/* Reads and validates dir/run-state. -ENOENT when there is none; -EBADMSG (or -EPERM for
 * a file that is not a private regular file of ours) with *ret_error set for the log. */
int run_record_read(const char *dir, RunRecord *ret, const char **ret_error);
/* Removes it (nothing is left to adopt). */
void run_record_remove(const char *dir);

/* /proc/PID/stat's start time: 0, -ESRCH when there is no such process, -errno. */
int proc_start_time(pid_t pid, uint64_t *ret);
/* The parent's pid (/proc/PID/stat). 0, -ESRCH, -errno. */
int proc_parent(pid_t pid, pid_t *ret);
/* The executable as argv[0] of /proc/PID/cmdline: readable without CAP_SYS_PTRACE, which
 * /proc/PID/exe of another user's process needs and the supervisor does not have. */
int proc_exe_argv0(pid_t pid, char *buf, size_t size);
