/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The adoption decision (see adopt.h). */

#include <errno.h>
#include <signal.h>
#include <string.h>

#include "adopt.h"
#include "macro.h"

const char *adopt_verdict_to_string(AdoptVerdict v) {
        static const char * const names[] = { "nothing", "attach", "crashed", "refuse" };
        return (unsigned) v < ELEMENTSOF(names) ? names[v] : "?";
}

void adopt_decide(const AdoptInput *in, AdoptDecision *ret) {
#define DECIDE(v, w) do { *ret = (AdoptDecision) { .verdict = (v), .why = (w) }; return; } while (0)
        const RunRecord *r = in->record;

        if (in->record_error == -ENOENT)
                DECIDE(ADOPT_NOTHING, "no run record");
        if (in->record_error < 0 || !r)
                DECIDE(ADOPT_REFUSE, "the run record is corrupt or not ours");
        if (!in->launcher_reached) {
                /* QEMU dies with its launcher: when neither is there, it ended unseen. */
                if (in->qemu_proc_error == -ESRCH)
                        DECIDE(ADOPT_CRASHED, "QEMU and its launcher are gone");
                DECIDE(ADOPT_REFUSE, "the recorded QEMU's launcher does not answer");
        }
        if (in->launcher_uid != in->our_uid)
                DECIDE(ADOPT_REFUSE, "the launcher's socket belongs to another user");
        if (in->launcher_pid != r->launcher_pid)
                DECIDE(ADOPT_REFUSE, "the launcher's socket is not the recorded launcher's");
        if (in->launcher_start_error < 0 || in->launcher_start != r->launcher_start)
                DECIDE(ADOPT_REFUSE, "the launcher's start time differs from the record (pid reused)");
        if (!in->qemu_alive) {
                if (!IN_SET(in->exit_code, CLD_EXITED, CLD_KILLED, CLD_DUMPED))
                        DECIDE(ADOPT_REFUSE, "the launcher reports an exit it cannot describe");
                DECIDE(ADOPT_CRASHED, "QEMU ended while no supervisor ran");
        }
        if (in->qemu_pid != r->qemu_pid)
                DECIDE(ADOPT_REFUSE, "the launcher's child is not the recorded QEMU");
        if (in->qemu_proc_error < 0)
                DECIDE(ADOPT_REFUSE, "the recorded QEMU cannot be read in /proc");
        if (in->qemu_ppid != r->launcher_pid)
                DECIDE(ADOPT_REFUSE, "the recorded QEMU is not the launcher's child");
        if (in->qemu_start != r->qemu_start)
                DECIDE(ADOPT_REFUSE, "the recorded QEMU's start time differs (pid reused)");
        if (!in->qemu_exe || !streq(in->qemu_exe, r->qemu_exe))
                DECIDE(ADOPT_REFUSE, "the recorded QEMU runs another executable");
        DECIDE(ADOPT_ATTACH, "the recorded QEMU runs under its launcher");
#undef DECIDE
}
