/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* QMP events and QEMU's exit → the VM's state and reason. Pure: see vm-state.h. */

#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "macro.h"
#include "vm-state.h"

static void set(VmEventEffect *e, VmState state, const char *reason) {
        e->set_state = true;
        e->state = state;
        e->reason = reason;
}

static void on_stop(const VmEventInput *in, json_t *data, VmEventEffect *e) {
        if (IN_SET(in->state, VM_RUNNING, VM_SUSPENDED)) {
                set(e, VM_PAUSED, in->pause_requested ? "host-qmp-stop" : "paused");
                /* Unrequested pauses (I/O error, watchdog, debugger) say why in query-status. */
                e->query_status = !in->pause_requested;
        }
        e->clear_pause_requested = true;
}

static void on_resume(const VmEventInput *in, json_t *data, VmEventEffect *e) {
        if (in->state == VM_STARTING) {
                set(e, VM_RUNNING, "started");
                e->start_completed = true;
        } else if (IN_SET(in->state, VM_PAUSED, VM_SUSPENDED))
                set(e, VM_RUNNING, in->resume_requested ? "host-qmp-cont" : "resumed");
        e->clear_resume_requested = true;
}

static void on_shutdown(const VmEventInput *in, json_t *data, VmEventEffect *e) {
        json_t *r = json_object_get(data, "reason");
        const char *reason = json_is_string(r) ? json_string_value(r) : "shutdown";

        e->shutdown_reason = reason;
        if (!IN_SET(in->state, VM_STOPPING, VM_STARTING)) {
                e->save_state_before_shutdown = in->state != VM_SHUTTING_DOWN;
                set(e, VM_SHUTTING_DOWN, reason);
        }
}

static void on_suspend(const VmEventInput *in, json_t *data, VmEventEffect *e) {
        if (IN_SET(in->state, VM_RUNNING, VM_PAUSED))
                set(e, VM_SUSPENDED, "guest-suspend");
}

static void on_suspend_disk(const VmEventInput *in, json_t *data, VmEventEffect *e) {
        if (IN_SET(in->state, VM_RUNNING, VM_PAUSED))
                set(e, VM_SUSPENDED, "guest-suspend-disk");
}

static void on_wakeup(const VmEventInput *in, json_t *data, VmEventEffect *e) {
        if (in->state == VM_SUSPENDED)
                set(e, VM_RUNNING, "wakeup");
}

static void on_reset(const VmEventInput *in, json_t *data, VmEventEffect *e) {
        e->agent_handles_reset = true; /* a new boot numbers handles afresh */
        e->guest_reset = true;
}

static void on_guest_panicked(const VmEventInput *in, json_t *data, VmEventEffect *e) {
        e->guest_panicked = true;
        if (in->state == VM_PAUSED)
                set(e, VM_PAUSED, "guest-panicked");
}

static void on_vserport_change(const VmEventInput *in, json_t *data, VmEventEffect *e) {
        json_t *id = json_object_get(data, "id"), *open = json_object_get(data, "open");

        if (in->have_agent && json_is_string(id) && streq(json_string_value(id), VMSUP_QGA_PORT_ID) &&
            json_is_boolean(open)) {
                e->agent_port = json_is_true(open);
                e->agent_handles_reset = true; /* the agent (re)started or went away */
        }
}

static const struct {
        const char *name;
        void (*apply)(const VmEventInput *in, json_t *data, VmEventEffect *e);
} event_table[] = {
        { "STOP", on_stop },
        { "RESUME", on_resume },
        { "SHUTDOWN", on_shutdown },
        { "SUSPEND", on_suspend },
        { "SUSPEND_DISK", on_suspend_disk },
        { "WAKEUP", on_wakeup },
        { "RESET", on_reset },
        { "GUEST_PANICKED", on_guest_panicked },
        { "VSERPORT_CHANGE", on_vserport_change },
};

bool vm_state_event(const VmEventInput *in, const char *name, json_t *data, VmEventEffect *ret) {
        *ret = (VmEventEffect) { .state = in->state, .agent_port = -1 };
        for (size_t i = 0; i < ELEMENTSOF(event_table); i++)
                if (streq(name, event_table[i].name)) {
                        event_table[i].apply(in, data, ret);
                        return true;
                }
        return false;
}

const char *vm_state_event_name(size_t i) {
        return i < ELEMENTSOF(event_table) ? event_table[i].name : NULL;
}

void vm_state_exit(const VmExitInput *in, VmExitOutcome *ret) {
        bool exited = in->code == CLD_EXITED;
        /* The supervisor sent SIGTERM or SIGKILL itself (a Stop past its quit). */
        bool signalled_by_us = in->stop_phase >= 2;

        *ret = (VmExitOutcome) {};
        (void) snprintf(ret->status, sizeof(ret->status), exited ? "exit-status-%d" : "killed-by-signal-%d",
                        in->status);

        if (in->migrated_out) {
                /* The VM runs elsewhere now, however its QEMU here ended. */
                ret->state = VM_STOPPED;
                ret->reason = "migrated";
        } else if (in->incoming) {
                /* Nothing ran here: the migration failed (QEMU says why as it exits). */
                const char *why = in->kill_reason ?:
                                  (in->stderr_last && in->stderr_last[0] ? in->stderr_last :
                                   in->stop_phase > 0 ? "stopped by a caller" : ret->status);

                (void) snprintf(ret->text, sizeof(ret->text), "migration-failed: %s", why);
                ret->state = VM_STOPPED;
                ret->reason = ret->text;
                ret->start_failed = true;
        } else if (in->state == VM_STARTING) {
                const char *why = in->kill_reason ?:
                                  (in->stderr_last && in->stderr_last[0] ? in->stderr_last : ret->status);

                (void) snprintf(ret->text, sizeof(ret->text), "start-failed: %s", why);
                ret->state = VM_STOPPED;
                ret->reason = ret->text;
                ret->start_failed = true;
        } else if (in->kill_reason) {
                /* The supervisor had to end it (monitor lost, start timeout). */
                ret->state = VM_CRASHED;
                ret->reason = in->kill_reason;
        } else if ((!exited && !signalled_by_us) || (exited && in->status != 0 && in->stop_phase == 0)) {
                /* Died on its own, also in the middle of a shutdown. */
                ret->state = VM_CRASHED;
                ret->reason = ret->status;
        } else if (in->guest_panicked || streq_ptr(in->shutdown_reason, "guest-panic")) {
                ret->state = VM_CRASHED;
                ret->reason = "guest-panicked";
        } else {
                ret->state = VM_STOPPED;
                ret->reason = in->shutdown_reason ?: ret->status;
        }
}

void vm_state_restart(const VmRestartInput *in, VmRestartDecision *ret) {
        VmLifecycleAction action;

        *ret = (VmRestartDecision) {};
        if (in->start_failed || in->host_requested)
                return;
        if (in->reboot_requested) {
                /* Reboot's power-down ended the run: start the next one. A run that crashed
                 * on the way falls to on_crash like any other. */
                if (in->state == VM_STOPPED) {
                        ret->restart = true;
                        return;
                }
        }
        if (in->state == VM_CRASHED)
                action = in->on_crash;
        else if (in->shutdown_reason && strlen(in->shutdown_reason) >= strlen("-reset") &&
                 streq(in->shutdown_reason + strlen(in->shutdown_reason) - strlen("-reset"), "-reset"))
                /* Only with on_reboot=destroy (-action reboot=shutdown) does a reset end QEMU:
                 * the guest's (guest-reset) or a caller's Reset (host-qmp-system-reset). */
                action = in->on_reboot;
        else if (in->shutdown_reason)
                action = in->on_poweroff;
        else
                return; /* ended by a signal the supervisor did not send, yet stopped: nothing to do */
        if (action != VM_ACTION_RESTART)
                return;

        for (size_t i = 0; i < in->n_recent; i++)
                if (in->recent[i] != 0 && in->recent[i] <= in->now_usec &&
                    in->now_usec - in->recent[i] < VM_RESTART_WINDOW_USEC)
                        ret->n_in_window++;
        if (ret->n_in_window >= VM_RESTART_BURST) {
                ret->limited = true;
                return;
        }
        ret->restart = true;
        ret->counted = true;
}

VmMigrationWatch vm_migration_watch(const VmMigrationWatchInput *in) {
        if (in->cancel_sent_usec > 0)
                return in->now_usec - in->cancel_sent_usec >= in->cancel_usec ? VM_MIGRATION_GIVE_UP : VM_MIGRATION_WAIT;
        if (in->stall_usec == 0 || in->last_progress_usec == 0)
                return VM_MIGRATION_WAIT;
        return in->now_usec - in->last_progress_usec >= in->stall_usec ? VM_MIGRATION_CANCEL : VM_MIGRATION_WAIT;
}
