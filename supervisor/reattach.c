/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Finding the QEMU a previous supervisor left (see reattach.h). */

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "reattach.h"

void reattach_prepare(const char *runtime_dir, const char *name, Reattach *ret) {
        AdoptInput in = { .our_uid = geteuid() };
        AdoptDecision d;
        const char *why = NULL;
        char exe[RUN_RECORD_EXE_MAX];
        int r;

        *ret = (Reattach) { .launcher = { .sock = -EBADF, .pidfd = -EBADF, .exit_fd = -EBADF, .qmp_fd = -EBADF } };
        in.record_error = run_record_read(runtime_dir, &ret->record, &why);
        if (in.record_error == -ENOENT) {
                ret->verdict = ADOPT_NOTHING;
                return;
        }
        if (in.record_error < 0) {
                log_error("VM %s: refusing the run record %s/%s: %s. Nothing is adopted.", name, runtime_dir,
                          RUN_RECORD_FILE, why ?: strerror(-in.record_error));
                ret->verdict = ADOPT_REFUSE;
                return;
        }
        in.record = &ret->record;

        r = launch_adopt(runtime_dir, &ret->launcher);
        in.launcher_reached = r >= 0 || r == -EPERM;
        in.launcher_pid = ret->launcher.launcher_pid;
        in.launcher_uid = ret->launcher.launcher_uid;
        if (r == -ETIMEDOUT) {
                /* It accepts only while it has no supervisor. */
                log_error("VM %s: the launcher in %s does not answer: another supervisor serves this VM.",
                          name, runtime_dir);
                ret->busy = true;
                ret->verdict = ADOPT_REFUSE;
                return;
        }
        if (r < 0 && r != -EPERM) {
                uint64_t t;
                log_debug_errno(r, "VM %s: no launcher answers in %s: %m", name, runtime_dir);
                in.qemu_proc_error = proc_start_time(ret->record.qemu_pid, &t);
                ret->launcher.pid = ret->record.qemu_pid;
        }
        if (r >= 0) {
                in.launcher_start_error = proc_start_time(in.launcher_pid, &in.launcher_start);
                in.qemu_alive = ret->launcher.alive;
                in.qemu_pid = ret->launcher.pid;
                in.exit_code = ret->launcher.code;
                in.exit_status = ret->launcher.status;
                if (in.qemu_alive) {
                        in.qemu_proc_error = proc_start_time(in.qemu_pid, &in.qemu_start);
                        if (in.qemu_proc_error >= 0)
                                in.qemu_proc_error = proc_parent(in.qemu_pid, &in.qemu_ppid);
                        if (in.qemu_proc_error >= 0 && proc_exe_argv0(in.qemu_pid, exe, sizeof exe) >= 0)
                                in.qemu_exe = exe;
                }
        }
        adopt_decide(&in, &d);
        ret->verdict = d.verdict;
        switch (d.verdict) {
        case ADOPT_ATTACH:
                log_info("VM %s: adopting QEMU pid %d: %s.", name, (int) in.qemu_pid, d.why);
                break;
        case ADOPT_CRASHED:
                log_warning("VM %s: %s.", name, d.why);
                run_record_remove(runtime_dir);
                break;
        case ADOPT_REFUSE:
                log_error("VM %s: not adopting the QEMU of the run record (pid %d, launcher %d): %s. Nothing is killed.",
                          name, (int) ret->record.qemu_pid, (int) ret->record.launcher_pid, d.why);
                break;
        case ADOPT_NOTHING:
                break;
        }
}

void reattach_apply(Vm *vm, Reattach *ra) {
        if (ra->verdict == ADOPT_CRASHED)
                vm_adopt_exited(vm, ra->launcher.pid, ra->launcher.code, ra->launcher.status);
        else if (ra->verdict == ADOPT_ATTACH) {
                if (vm_adopt(vm, &ra->launcher, NULL) < 0)
                        launch_adoption_release(&ra->launcher);
        }
        launch_adoption_release(&ra->launcher);
}
