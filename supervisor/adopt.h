/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Whether a starting supervisor adopts the QEMU a previous one left: a pure function of the
 * run record, what the launcher said over its socket, and what /proc says. It reads only its
 * arguments. A pid alone is no proof: the process must also have the recorded start time and
 * executable, be the child of the launcher (which, not having reaped it, keeps its pid from
 * being reused), and the launcher (reached over a socket of the supervisor's user, its peer
 * credentials naming the recorded launcher) must report it as its child. Anything else is
 * refused: nothing is adopted and nothing is killed. */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "state-file.h"

typedef enum AdoptVerdict {
        ADOPT_NOTHING, /* no record: start afresh */
        ADOPT_ATTACH,  /* adopt the running QEMU */
        ADOPT_CRASHED, /* QEMU ended while no supervisor ran: report its exit (when the launcher
                        * is gone too, exit_code is 0: nobody saw how) */
        ADOPT_REFUSE,  /* the record or what it points at cannot be trusted */
} AdoptVerdict;

typedef struct AdoptInput {
        int record_error;            /* run_record_read(): 0, -ENOENT (none), or why it was refused */
        const RunRecord *record;     /* when record_error is 0 */

        bool launcher_reached;       /* its socket answered */
        uid_t launcher_uid;          /* its peer credentials */
        pid_t launcher_pid;
        uid_t our_uid;
        int launcher_start_error;    /* /proc/LAUNCHER/stat read: 0 or -errno */
        uint64_t launcher_start;
        bool qemu_alive;             /* the launcher's answer: its child runs */
        pid_t qemu_pid;              /* the launcher's child */
        int exit_code, exit_status;  /* when !qemu_alive: CLD_EXITED/KILLED/DUMPED and status */

        int qemu_proc_error;         /* /proc/QEMU read: 0 or -errno (-ESRCH: no such process); without
                                      * a launcher, of the recorded pid */
        uint64_t qemu_start;
        pid_t qemu_ppid;             /* its parent: the launcher, which has not reaped it */
        const char *qemu_exe;        /* argv[0] of /proc/PID/cmdline, or NULL when unreadable */
} AdoptInput;

typedef struct AdoptDecision {
        AdoptVerdict verdict;
        const char *why; /* static text for the log */
} AdoptDecision;

void adopt_decide(const AdoptInput *in, AdoptDecision *ret);
const char *adopt_verdict_to_string(AdoptVerdict v);
