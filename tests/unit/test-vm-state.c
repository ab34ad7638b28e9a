/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The state machine: every QMP event of the table from every state, and every way
 * QEMU's process can end (vm-state.c). */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <signal.h>
#include <string.h>
#include <sys/wait.h>

#include "vm-state.h"

static const VmState all_states[] = {
        VM_STOPPED, VM_STARTING, VM_RUNNING, VM_PAUSED, VM_SUSPENDED, VM_SHUTTING_DOWN, VM_STOPPING, VM_CRASHED,
        VM_MIGRATING, VM_INCOMING,
};

static const char *state_name(VmState s) {
        static const char * const names[] = { "stopped", "starting", "running", "paused", "suspended",
                                               "shutting-down", "stopping", "crashed", "migrating", "incoming" };
        return s >= 0 && (size_t) s < ELEMENTSOF(names) ? names[s] : "?";
}

/* ---- QMP events ---- */

typedef struct EventCase {
        const char *name;
        const char *data; /* JSON, or NULL */
        VmState state;
        bool pause_requested, resume_requested;
        bool no_agent;
        /* Expected */
        bool set_state;
        VmState new_state;
        const char *reason;
        bool start_completed, query_status, clear_pause, clear_resume, save_before, panicked, handles_reset;
        const char *shutdown_reason;
        int agent_port; /* 1, 0, or -1 (written as 0 in the table: see AP_NONE) */
} EventCase;

#define EV(n, d, s) .name = (n), .data = (d), .state = (s)
#define AP_NONE 2 /* the table's zero must not mean "closed" */
#define OPEN_OURS "{\"id\":\"" VMSUP_QGA_PORT_ID "\",\"open\":true}"
#define CLOSE_OURS "{\"id\":\"" VMSUP_QGA_PORT_ID "\",\"open\":false}"

static const EventCase event_cases[] = {
        /* STOP: running or suspended → paused; a caller's stop says so, any other asks QEMU why. */
        { EV("STOP", NULL, VM_RUNNING), .set_state = true, .new_state = VM_PAUSED, .reason = "paused",
          .query_status = true, .clear_pause = true },
        { EV("STOP", NULL, VM_RUNNING), .pause_requested = true, .set_state = true, .new_state = VM_PAUSED,
          .reason = "host-qmp-stop", .clear_pause = true },
        { EV("STOP", NULL, VM_SUSPENDED), .set_state = true, .new_state = VM_PAUSED, .reason = "paused",
          .query_status = true, .clear_pause = true },
        { EV("STOP", NULL, VM_SUSPENDED), .pause_requested = true, .set_state = true, .new_state = VM_PAUSED,
          .reason = "host-qmp-stop", .clear_pause = true },
        { EV("STOP", NULL, VM_STARTING), .clear_pause = true },
        { EV("STOP", NULL, VM_PAUSED), .pause_requested = true, .clear_pause = true },
        { EV("STOP", NULL, VM_SHUTTING_DOWN), .clear_pause = true },
        { EV("STOP", NULL, VM_STOPPING), .clear_pause = true },
        { EV("STOP", NULL, VM_STOPPED), .clear_pause = true },
        { EV("STOP", NULL, VM_CRASHED), .clear_pause = true },

        /* RESUME: the end of a start, or paused/suspended → running. */
        { EV("RESUME", NULL, VM_STARTING), .set_state = true, .new_state = VM_RUNNING, .reason = "started",
          .start_completed = true, .clear_resume = true },
        { EV("RESUME", NULL, VM_PAUSED), .set_state = true, .new_state = VM_RUNNING, .reason = "resumed",
          .clear_resume = true },
        { EV("RESUME", NULL, VM_PAUSED), .resume_requested = true, .set_state = true, .new_state = VM_RUNNING,
          .reason = "host-qmp-cont", .clear_resume = true },
        { EV("RESUME", NULL, VM_SUSPENDED), .set_state = true, .new_state = VM_RUNNING, .reason = "resumed",
          .clear_resume = true },
        { EV("RESUME", NULL, VM_SUSPENDED), .resume_requested = true, .set_state = true, .new_state = VM_RUNNING,
          .reason = "host-qmp-cont", .clear_resume = true },
        { EV("RESUME", NULL, VM_RUNNING), .resume_requested = true, .clear_resume = true },
        { EV("RESUME", NULL, VM_SHUTTING_DOWN), .clear_resume = true },
        { EV("RESUME", NULL, VM_STOPPING), .clear_resume = true },
        { EV("RESUME", NULL, VM_STOPPED), .clear_resume = true },
        { EV("RESUME", NULL, VM_CRASHED), .clear_resume = true },

        /* SHUTDOWN: QEMU's reason is kept; the state becomes shutting-down unless stopping/starting. */
        { EV("SHUTDOWN", "{\"guest\":true,\"reason\":\"guest-shutdown\"}", VM_RUNNING), .set_state = true,
          .new_state = VM_SHUTTING_DOWN, .reason = "guest-shutdown", .save_before = true,
          .shutdown_reason = "guest-shutdown" },
        { EV("SHUTDOWN", "{\"guest\":false,\"reason\":\"host-qmp-system-reset\"}", VM_PAUSED), .set_state = true,
          .new_state = VM_SHUTTING_DOWN, .reason = "host-qmp-system-reset", .save_before = true,
          .shutdown_reason = "host-qmp-system-reset" },
        { EV("SHUTDOWN", "{\"reason\":\"guest-panic\"}", VM_SUSPENDED), .set_state = true,
          .new_state = VM_SHUTTING_DOWN, .reason = "guest-panic", .save_before = true,
          .shutdown_reason = "guest-panic" },
        { EV("SHUTDOWN", NULL, VM_RUNNING), .set_state = true, .new_state = VM_SHUTTING_DOWN, .reason = "shutdown",
          .save_before = true, .shutdown_reason = "shutdown" },
        { EV("SHUTDOWN", "{\"reason\":7}", VM_RUNNING), .set_state = true, .new_state = VM_SHUTTING_DOWN,
          .reason = "shutdown", .save_before = true, .shutdown_reason = "shutdown" },
        /* A second SHUTDOWN keeps the state from before the first. */
        { EV("SHUTDOWN", "{\"reason\":\"guest-shutdown\"}", VM_SHUTTING_DOWN), .set_state = true,
          .new_state = VM_SHUTTING_DOWN, .reason = "guest-shutdown", .shutdown_reason = "guest-shutdown" },
        { EV("SHUTDOWN", "{\"reason\":\"host-qmp-quit\"}", VM_STOPPING), .shutdown_reason = "host-qmp-quit" },
        { EV("SHUTDOWN", "{\"reason\":\"host-signal\"}", VM_STARTING), .shutdown_reason = "host-signal" },
        { EV("SHUTDOWN", "{\"reason\":\"guest-shutdown\"}", VM_STOPPED), .set_state = true,
          .new_state = VM_SHUTTING_DOWN, .reason = "guest-shutdown", .save_before = true,
          .shutdown_reason = "guest-shutdown" },

        /* SUSPEND, SUSPEND_DISK: running or paused → suspended. */
        { EV("SUSPEND", NULL, VM_RUNNING), .set_state = true, .new_state = VM_SUSPENDED, .reason = "guest-suspend" },
        { EV("SUSPEND", NULL, VM_PAUSED), .set_state = true, .new_state = VM_SUSPENDED, .reason = "guest-suspend" },
        { EV("SUSPEND", NULL, VM_SUSPENDED) },
        { EV("SUSPEND", NULL, VM_STARTING) },
        { EV("SUSPEND", NULL, VM_SHUTTING_DOWN) },
        { EV("SUSPEND", NULL, VM_STOPPING) },
        { EV("SUSPEND_DISK", NULL, VM_RUNNING), .set_state = true, .new_state = VM_SUSPENDED,
          .reason = "guest-suspend-disk" },
        { EV("SUSPEND_DISK", NULL, VM_PAUSED), .set_state = true, .new_state = VM_SUSPENDED,
          .reason = "guest-suspend-disk" },
        { EV("SUSPEND_DISK", NULL, VM_SUSPENDED) },
        { EV("SUSPEND_DISK", NULL, VM_STOPPING) },

        /* WAKEUP: suspended → running. */
        { EV("WAKEUP", NULL, VM_SUSPENDED), .set_state = true, .new_state = VM_RUNNING, .reason = "wakeup" },
        { EV("WAKEUP", NULL, VM_RUNNING) },
        { EV("WAKEUP", NULL, VM_PAUSED) },
        { EV("WAKEUP", NULL, VM_SHUTTING_DOWN) },

        /* RESET: the state stays; agent file handles start afresh. */
        { EV("RESET", "{\"guest\":true,\"reason\":\"guest-reset\"}", VM_RUNNING), .handles_reset = true },
        { EV("RESET", NULL, VM_PAUSED), .handles_reset = true },

        /* GUEST_PANICKED: remembered for the final state; a paused VM says why. */
        { EV("GUEST_PANICKED", "{\"action\":\"pause\"}", VM_PAUSED), .set_state = true, .new_state = VM_PAUSED,
          .reason = "guest-panicked", .panicked = true },
        { EV("GUEST_PANICKED", "{\"action\":\"poweroff\"}", VM_RUNNING), .panicked = true },
        { EV("GUEST_PANICKED", NULL, VM_SHUTTING_DOWN), .panicked = true },

        /* VSERPORT_CHANGE: only the agent's own port, only with an agent, only a boolean "open". */
        { EV("VSERPORT_CHANGE", OPEN_OURS, VM_RUNNING), .agent_port = 1, .handles_reset = true },
        { EV("VSERPORT_CHANGE", CLOSE_OURS, VM_RUNNING), .agent_port = 0, .handles_reset = true },
        { EV("VSERPORT_CHANGE", CLOSE_OURS, VM_PAUSED), .agent_port = 0, .handles_reset = true },
        { EV("VSERPORT_CHANGE", OPEN_OURS, VM_RUNNING), .no_agent = true, .agent_port = AP_NONE },
        { EV("VSERPORT_CHANGE", "{\"id\":\"other-port\",\"open\":true}", VM_RUNNING), .agent_port = AP_NONE },
        { EV("VSERPORT_CHANGE", "{\"id\":\"" VMSUP_QGA_PORT_ID "\",\"open\":1}", VM_RUNNING), .agent_port = AP_NONE },
        { EV("VSERPORT_CHANGE", "{\"id\":\"" VMSUP_QGA_PORT_ID "\"}", VM_RUNNING), .agent_port = AP_NONE },
        { EV("VSERPORT_CHANGE", "{\"id\":5,\"open\":true}", VM_RUNNING), .agent_port = AP_NONE },
        { EV("VSERPORT_CHANGE", NULL, VM_RUNNING), .agent_port = AP_NONE },
};

static void check_event_case(size_t i, const EventCase *c) {
        json_t *data = NULL;
        VmEventEffect e;
        int want_port = c->agent_port == AP_NONE ? -1 : c->agent_port;

        /* agent_port's zero is "closed": cases that expect no news say AP_NONE, and the
         * cases of the other events, which leave it zero in the table, expect no news too. */
        if (!streq(c->name, "VSERPORT_CHANGE"))
                want_port = -1;
        if (c->data) {
                data = json_loads(c->data, 0, NULL);
                assert_non_null(data);
        }
        print_message("case %zu: %s %s in %s\n", i, c->name, c->data ?: "", state_name(c->state));
        assert_true(vm_state_event(&(VmEventInput) { .state = c->state, .pause_requested = c->pause_requested,
                                                     .resume_requested = c->resume_requested,
                                                     .have_agent = !c->no_agent },
                                   c->name, data, &e));
        assert_int_equal(e.set_state, c->set_state);
        assert_int_equal(e.state, c->set_state ? c->new_state : c->state);
        if (c->set_state)
                assert_string_equal(e.reason, c->reason);
        assert_int_equal(e.start_completed, c->start_completed);
        assert_int_equal(e.query_status, c->query_status);
        assert_int_equal(e.clear_pause_requested, c->clear_pause);
        assert_int_equal(e.clear_resume_requested, c->clear_resume);
        assert_int_equal(e.save_state_before_shutdown, c->save_before);
        assert_int_equal(e.guest_panicked, c->panicked);
        assert_int_equal(e.agent_handles_reset, c->handles_reset);
        assert_int_equal(e.agent_port, want_port);
        if (c->shutdown_reason)
                assert_string_equal(e.shutdown_reason, c->shutdown_reason);
        else
                assert_null(e.shutdown_reason);
        json_decref(data);
}

static void test_event_cases(void **state) {
        for (size_t i = 0; i < ELEMENTSOF(event_cases); i++)
                check_event_case(i, &event_cases[i]);
}

/* Every event of the table has cases above, and the cases name no event the table lacks. */
static void test_event_table_covered(void **state) {
        size_t n = 0;

        for (const char *name; (name = vm_state_event_name(n)); n++) {
                bool found = false;
                for (size_t i = 0; i < ELEMENTSOF(event_cases); i++)
                        found = found || streq(event_cases[i].name, name);
                print_message("event %s\n", name);
                assert_true(found);
        }
        assert_int_equal(n, 9);
        for (size_t i = 0; i < ELEMENTSOF(event_cases); i++) {
                bool known = false;
                for (size_t j = 0; vm_state_event_name(j); j++)
                        known = known || streq(event_cases[i].name, vm_state_event_name(j));
                assert_true(known);
        }
}

/* Events outside the table change nothing, in any state, also with odd data. */
static void test_unknown_events(void **state) {
        static const char * const names[] = { "BLOCK_JOB_COMPLETED", "stop", "STOP ", "", "POWERDOWN",
                                              "DEVICE_DELETED", "RTC_CHANGE", "WATCHDOG" };
        json_t *data = json_loads("{\"reason\":\"guest-shutdown\",\"id\":\"" VMSUP_QGA_PORT_ID "\",\"open\":true}",
                                  0, NULL);

        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                for (size_t s = 0; s < ELEMENTSOF(all_states); s++) {
                        VmEventEffect e;
                        assert_false(vm_state_event(&(VmEventInput) { .state = all_states[s], .pause_requested = true,
                                                                      .resume_requested = true, .have_agent = true },
                                                    names[i], data, &e));
                        assert_false(e.set_state);
                        assert_int_equal(e.state, all_states[s]);
                        assert_false(e.start_completed || e.query_status || e.clear_pause_requested ||
                                     e.clear_resume_requested || e.save_state_before_shutdown ||
                                     e.guest_panicked || e.agent_handles_reset);
                        assert_null(e.shutdown_reason);
                        assert_int_equal(e.agent_port, -1);
                }
        json_decref(data);
}

/* No event moves a VM out of starting except RESUME, and none reaches stopped or crashed
 * (only the process's exit does). */
static void test_events_never_settle(void **state) {
        json_t *data = json_loads("{\"reason\":\"guest-shutdown\"}", 0, NULL);
        const char *name;

        for (size_t i = 0; (name = vm_state_event_name(i)); i++)
                for (size_t s = 0; s < ELEMENTSOF(all_states); s++) {
                        VmEventEffect e;
                        assert_true(vm_state_event(&(VmEventInput) { .state = all_states[s], .have_agent = true },
                                                   name, data, &e));
                        if (e.set_state)
                                assert_false(IN_SET(e.state, VM_STOPPED, VM_CRASHED, VM_STARTING, VM_STOPPING));
                        if (all_states[s] == VM_STARTING && !streq(name, "RESUME"))
                                assert_false(e.set_state);
                        assert_int_equal(e.start_completed, all_states[s] == VM_STARTING && streq(name, "RESUME"));
                }
        json_decref(data);
}

/* ---- QEMU's exit ---- */

typedef struct ExitCase {
        const char *what;
        VmState state;
        int code, status;
        unsigned stop_phase;
        const char *kill_reason, *shutdown_reason, *stderr_last;
        bool guest_panicked;
        /* Expected */
        VmState final;
        const char *reason;
        bool start_failed;
        const char *status_text;
} ExitCase;

static const ExitCase exit_cases[] = {
        /* Asked for: a graceful Shutdown, a Stop. */
        { "clean exit after a Shutdown (ACPI)", VM_SHUTTING_DOWN, CLD_EXITED, 0, 0, NULL, "guest-shutdown", NULL,
          false, VM_STOPPED, "guest-shutdown", false, "exit-status-0" },
        { "guest powers off by itself, no caller waiting", VM_SHUTTING_DOWN, CLD_EXITED, 0, 0, NULL,
          "guest-shutdown", NULL, false, VM_STOPPED, "guest-shutdown", false, "exit-status-0" },
        { "QEMU quits on SIGINT on the host", VM_SHUTTING_DOWN, CLD_EXITED, 0, 0, NULL, "host-signal", NULL, false,
          VM_STOPPED, "host-signal", false, "exit-status-0" },
        { "Stop: QMP quit obeyed", VM_STOPPING, CLD_EXITED, 0, 1, NULL, "host-qmp-quit", NULL, false, VM_STOPPED,
          "host-qmp-quit", false, "exit-status-0" },
        { "Stop: quit, exit status 1", VM_STOPPING, CLD_EXITED, 1, 1, NULL, NULL, NULL, false, VM_STOPPED,
          "exit-status-1", false, "exit-status-1" },
        { "Stop: ended by our SIGTERM", VM_STOPPING, CLD_KILLED, SIGTERM, 2, NULL, NULL, NULL, false, VM_STOPPED,
          "killed-by-signal-15", false, "killed-by-signal-15" },
        { "Stop: ended by our SIGKILL", VM_STOPPING, CLD_KILLED, SIGKILL, 3, NULL, NULL, NULL, false, VM_STOPPED,
          "killed-by-signal-9", false, "killed-by-signal-9" },
        { "Stop: SIGTERM after a SHUTDOWN event", VM_STOPPING, CLD_KILLED, SIGTERM, 2, NULL, "host-qmp-quit", NULL,
          false, VM_STOPPED, "host-qmp-quit", false, "killed-by-signal-15" },
        { "forced Shutdown: SIGTERM while shutting down", VM_SHUTTING_DOWN, CLD_KILLED, SIGTERM, 2, NULL,
          "guest-shutdown", NULL, false, VM_STOPPED, "guest-shutdown", false, "killed-by-signal-15" },
        { "Stop: exit status 0 after SIGTERM", VM_STOPPING, CLD_EXITED, 0, 2, NULL, NULL, NULL, false, VM_STOPPED,
          "exit-status-0", false, "exit-status-0" },

        /* Not asked for: QEMU died on its own. */
        { "killed by signal 11 while running", VM_RUNNING, CLD_KILLED, SIGSEGV, 0, NULL, NULL, NULL, false,
          VM_CRASHED, "killed-by-signal-11", false, "killed-by-signal-11" },
        { "core dump, signal 6", VM_RUNNING, CLD_DUMPED, SIGABRT, 0, NULL, NULL, NULL, false, VM_CRASHED,
          "killed-by-signal-6", false, "killed-by-signal-6" },
        { "killed by someone else's SIGKILL while paused", VM_PAUSED, CLD_KILLED, SIGKILL, 0, NULL, NULL, NULL,
          false, VM_CRASHED, "killed-by-signal-9", false, "killed-by-signal-9" },
        { "crash while paused, exit status 1", VM_PAUSED, CLD_EXITED, 1, 0, NULL, NULL, NULL, false, VM_CRASHED,
          "exit-status-1", false, "exit-status-1" },
        { "crash while suspended", VM_SUSPENDED, CLD_KILLED, SIGBUS, 0, NULL, NULL, NULL, false, VM_CRASHED,
          "killed-by-signal-7", false, "killed-by-signal-7" },
        { "exit status 3 while running", VM_RUNNING, CLD_EXITED, 3, 0, NULL, NULL, NULL, false, VM_CRASHED,
          "exit-status-3", false, "exit-status-3" },
        { "exit status 255", VM_RUNNING, CLD_EXITED, 255, 0, NULL, NULL, NULL, false, VM_CRASHED, "exit-status-255",
          false, "exit-status-255" },
        { "crash in the middle of a shutdown", VM_SHUTTING_DOWN, CLD_KILLED, SIGSEGV, 0, NULL, "guest-shutdown",
          NULL, false, VM_CRASHED, "killed-by-signal-11", false, "killed-by-signal-11" },
        { "exit status 1 in the middle of a shutdown", VM_SHUTTING_DOWN, CLD_EXITED, 1, 0, NULL, "guest-shutdown",
          NULL, false, VM_CRASHED, "exit-status-1", false, "exit-status-1" },
        { "signal while only quit was sent", VM_STOPPING, CLD_KILLED, SIGSEGV, 1, NULL, "host-qmp-quit", NULL,
          false, VM_CRASHED, "killed-by-signal-11", false, "killed-by-signal-11" },
        { "exit status 0 without a SHUTDOWN event", VM_RUNNING, CLD_EXITED, 0, 0, NULL, NULL, NULL, false,
          VM_STOPPED, "exit-status-0", false, "exit-status-0" },

        /* The guest panicked. */
        { "panic, then QEMU exits (panic action poweroff)", VM_SHUTTING_DOWN, CLD_EXITED, 0, 0, NULL, "guest-panic",
          NULL, false, VM_CRASHED, "guest-panicked", false, "exit-status-0" },
        { "GUEST_PANICKED seen, then a Stop", VM_STOPPING, CLD_EXITED, 0, 1, NULL, "host-qmp-quit", NULL, true,
          VM_CRASHED, "guest-panicked", false, "exit-status-0" },
        { "GUEST_PANICKED seen, then our SIGKILL", VM_STOPPING, CLD_KILLED, SIGKILL, 3, NULL, NULL, NULL, true,
          VM_CRASHED, "guest-panicked", false, "killed-by-signal-9" },
        { "a signal on its own wins over a panic", VM_PAUSED, CLD_KILLED, SIGSEGV, 0, NULL, NULL, NULL, true,
          VM_CRASHED, "killed-by-signal-11", false, "killed-by-signal-11" },

        /* The supervisor had to end it. */
        { "monitor connection lost", VM_RUNNING, CLD_KILLED, SIGKILL, 0, "qmp-connection-lost", NULL, NULL, false,
          VM_CRASHED, "qmp-connection-lost", false, "killed-by-signal-9" },
        { "monitor protocol error, QEMU exits 0", VM_PAUSED, CLD_EXITED, 0, 0, "qmp-protocol-error", NULL, NULL,
          false, VM_CRASHED, "qmp-protocol-error", false, "exit-status-0" },
        { "kill reason wins over a Stop and a SHUTDOWN", VM_STOPPING, CLD_KILLED, SIGKILL, 3, "qmp-connection-lost",
          "host-qmp-quit", NULL, true, VM_CRASHED, "qmp-connection-lost", false, "killed-by-signal-9" },

        /* It never ran: the start failed. */
        { "start: timeout waiting for QMP", VM_STARTING, CLD_KILLED, SIGKILL, 0, "timeout waiting for QMP", NULL,
          "some stderr", false, VM_STOPPED, "start-failed: timeout waiting for QMP", true, "killed-by-signal-9" },
        { "start: cont refused", VM_STARTING, CLD_KILLED, SIGKILL, 0, "start-failed: cont refused", NULL, NULL,
          false, VM_STOPPED, "start-failed: start-failed: cont refused", true, "killed-by-signal-9" },
        { "start: QEMU's last stderr line", VM_STARTING, CLD_EXITED, 1, 0, NULL, NULL,
          "qemu-system-x86_64: -drive file=x: Could not open 'x'", false, VM_STOPPED,
          "start-failed: qemu-system-x86_64: -drive file=x: Could not open 'x'", true, "exit-status-1" },
        { "start: no stderr, exit status 1", VM_STARTING, CLD_EXITED, 1, 0, NULL, NULL, "", false, VM_STOPPED,
          "start-failed: exit-status-1", true, "exit-status-1" },
        { "start: no stderr at all, signal", VM_STARTING, CLD_KILLED, SIGSEGV, 0, NULL, NULL, NULL, false,
          VM_STOPPED, "start-failed: killed-by-signal-11", true, "killed-by-signal-11" },
        { "start: exit status 0 before running", VM_STARTING, CLD_EXITED, 0, 0, NULL, "host-signal", NULL, true,
          VM_STOPPED, "start-failed: exit-status-0", true, "exit-status-0" },
};

static void test_exit_cases(void **state) {
        for (size_t i = 0; i < ELEMENTSOF(exit_cases); i++) {
                const ExitCase *c = &exit_cases[i];
                VmExitOutcome o;

                print_message("case %zu: %s\n", i, c->what);
                vm_state_exit(&(VmExitInput) { .state = c->state, .code = c->code, .status = c->status,
                                               .stop_phase = c->stop_phase, .kill_reason = c->kill_reason,
                                               .shutdown_reason = c->shutdown_reason,
                                               .stderr_last = c->stderr_last, .guest_panicked = c->guest_panicked },
                              &o);
                assert_int_equal(o.state, c->final);
                assert_string_equal(o.reason, c->reason);
                assert_int_equal(o.start_failed, c->start_failed);
                assert_string_equal(o.status, c->status_text);
        }
}

/* A migration's run: the source's QEMU ends "migrated" however it exits once the migration
 * completed; an incoming run that never completed is "migration-failed: <why>", never a
 * crash or a start failure's reason, and is never restarted (start_failed). */
static void test_exit_migration(void **state) {
        static const struct {
                const char *what;
                VmExitInput in;
                VmState final;
                const char *reason;
                bool start_failed;
        } cases[] = {
                { "source: quit after completed", { .state = VM_MIGRATING, .code = CLD_EXITED, .stop_phase = 1,
                                                    .shutdown_reason = "host-qmp-quit", .migrated_out = true },
                  VM_STOPPED, "migrated", false },
                { "source: SIGKILL after completed", { .state = VM_MIGRATING, .code = CLD_KILLED, .status = SIGKILL,
                                                       .stop_phase = 3, .migrated_out = true },
                  VM_STOPPED, "migrated", false },
                { "source: crash while migrating", { .state = VM_MIGRATING, .code = CLD_KILLED, .status = SIGSEGV },
                  VM_CRASHED, "killed-by-signal-11", false },
                { "target: QEMU's load failed", { .state = VM_INCOMING, .code = CLD_EXITED, .status = 1,
                                                  .stderr_last = "load of migration failed: Input/output error",
                                                  .incoming = true },
                  VM_STOPPED, "migration-failed: load of migration failed: Input/output error", true },
                { "target: killed", { .state = VM_INCOMING, .code = CLD_KILLED, .status = SIGKILL, .incoming = true },
                  VM_STOPPED, "migration-failed: killed-by-signal-9", true },
                { "target: QMP never came", { .state = VM_STARTING, .code = CLD_KILLED, .status = SIGKILL,
                                              .kill_reason = "timeout waiting for QMP", .incoming = true },
                  VM_STOPPED, "migration-failed: timeout waiting for QMP", true },
                { "target: a caller's Stop", { .state = VM_STOPPING, .code = CLD_EXITED, .stop_phase = 1,
                                               .shutdown_reason = "host-qmp-quit", .incoming = true },
                  VM_STOPPED, "migration-failed: stopped by a caller", true },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                VmExitOutcome o;

                print_message("case %zu: %s\n", i, cases[i].what);
                vm_state_exit(&cases[i].in, &o);
                assert_int_equal(o.state, cases[i].final);
                assert_string_equal(o.reason, cases[i].reason);
                assert_int_equal(o.start_failed, cases[i].start_failed);
        }
}

/* The longest stderr line the supervisor keeps fits whole in a start failure's reason. */
static void test_exit_long_stderr(void **state) {
        char line[VM_STDERR_TAIL], want[VM_STDERR_TAIL + 64];
        VmExitOutcome o;

        memset(line, 'e', sizeof(line) - 1);
        line[sizeof(line) - 1] = '\0';
        snprintf(want, sizeof(want), "start-failed: %s", line);
        vm_state_exit(&(VmExitInput) { .state = VM_STARTING, .code = CLD_EXITED, .status = 1, .stderr_last = line },
                      &o);
        assert_int_equal(o.state, VM_STOPPED);
        assert_true(o.start_failed);
        assert_string_equal(o.reason, want);
}

/* Whatever the facts, the final state is stopped or crashed, and only a run that
 * never got past starting is a start failure. */
static void test_exit_always_settles(void **state) {
        static const int codes[] = { CLD_EXITED, CLD_KILLED, CLD_DUMPED };
        static const char * const kills[] = { NULL, "qmp-connection-lost" };
        static const char * const shutdowns[] = { NULL, "guest-shutdown", "guest-panic" };

        for (size_t s = 0; s < ELEMENTSOF(all_states); s++)
                for (size_t c = 0; c < ELEMENTSOF(codes); c++)
                        for (unsigned phase = 0; phase <= 3; phase++)
                                for (size_t k = 0; k < ELEMENTSOF(kills); k++)
                                        for (size_t d = 0; d < ELEMENTSOF(shutdowns); d++)
                                                for (int p = 0; p <= 1; p++) {
                                                        VmExitOutcome o;
                                                        vm_state_exit(&(VmExitInput) {
                                                                .state = all_states[s], .code = codes[c],
                                                                .status = codes[c] == CLD_EXITED ? 0 : SIGKILL,
                                                                .stop_phase = phase, .kill_reason = kills[k],
                                                                .shutdown_reason = shutdowns[d],
                                                                .guest_panicked = p }, &o);
                                                        assert_true(IN_SET(o.state, VM_STOPPED, VM_CRASHED));
                                                        assert_non_null(o.reason);
                                                        assert_true(o.reason[0] != '\0');
                                                        assert_int_equal(o.start_failed,
                                                                         all_states[s] == VM_STARTING);
                                                }
}

/* ---- restart policy ---- */

#define S(x) ((uint64_t) (x) * USEC_PER_SEC)

static VmRestartInput crash_input(VmLifecycleAction on_crash) {
        return (VmRestartInput) { .state = VM_CRASHED, .on_poweroff = VM_ACTION_DESTROY,
                                  .on_reboot = VM_ACTION_RESTART, .on_crash = on_crash, .now_usec = S(1000) };
}

static void test_restart_policy(void **state) {
        VmRestartInput in;
        VmRestartDecision d;

        /* on_crash decides a crash. */
        in = crash_input(VM_ACTION_DESTROY);
        vm_state_restart(&in, &d);
        assert_false(d.restart);
        assert_false(d.limited);
        in = crash_input(VM_ACTION_PRESERVE);
        vm_state_restart(&in, &d);
        assert_false(d.restart);
        in = crash_input(VM_ACTION_RESTART);
        vm_state_restart(&in, &d);
        assert_true(d.restart);
        assert_true(d.counted);

        /* A caller's Stop or Shutdown, or a start that never ran, is never followed by a restart. */
        in = crash_input(VM_ACTION_RESTART);
        in.host_requested = true;
        vm_state_restart(&in, &d);
        assert_false(d.restart);
        in = crash_input(VM_ACTION_RESTART);
        in.start_failed = true;
        in.state = VM_STOPPED;
        vm_state_restart(&in, &d);
        assert_false(d.restart);

        /* The guest powered off: on_poweroff. */
        in = crash_input(VM_ACTION_RESTART);
        in.state = VM_STOPPED;
        in.shutdown_reason = "guest-shutdown";
        vm_state_restart(&in, &d);
        assert_false(d.restart);
        in.on_poweroff = VM_ACTION_RESTART;
        vm_state_restart(&in, &d);
        assert_true(d.restart);
        assert_true(d.counted);

        /* The guest rebooted and QEMU exited (on_reboot=destroy): stays stopped. */
        in = crash_input(VM_ACTION_RESTART);
        in.state = VM_STOPPED;
        in.shutdown_reason = "guest-reset";
        in.on_poweroff = VM_ACTION_RESTART;
        in.on_reboot = VM_ACTION_DESTROY;
        vm_state_restart(&in, &d);
        assert_false(d.restart);

        /* ... and a caller's Reset, which also ends QEMU then. */
        in.shutdown_reason = "host-qmp-system-reset";
        vm_state_restart(&in, &d);
        assert_false(d.restart);
        /* The guest's power-off after all: on_poweroff. */
        in.shutdown_reason = "guest-shutdown";
        vm_state_restart(&in, &d);
        assert_true(d.restart);

        /* A caller's Reboot: the power-down's exit is followed by a fresh start, uncounted,
         * whatever on_poweroff says. */
        in = crash_input(VM_ACTION_DESTROY);
        in.state = VM_STOPPED;
        in.shutdown_reason = "guest-shutdown";
        in.reboot_requested = true;
        vm_state_restart(&in, &d);
        assert_true(d.restart);
        assert_false(d.counted);
        /* ... but a crash on the way is a crash. */
        in.state = VM_CRASHED;
        vm_state_restart(&in, &d);
        assert_false(d.restart);
        /* ... and a caller's Stop in between wins. */
        in.state = VM_STOPPED;
        in.host_requested = true;
        vm_state_restart(&in, &d);
        assert_false(d.restart);

        /* QEMU ended without a SHUTDOWN event yet stopped (a signal nobody sent): nothing. */
        in = crash_input(VM_ACTION_RESTART);
        in.state = VM_STOPPED;
        in.on_poweroff = VM_ACTION_RESTART;
        vm_state_restart(&in, &d);
        assert_false(d.restart);
}

static void test_restart_bound(void **state) {
        uint64_t recent[VM_RESTART_BURST] = {};
        VmRestartInput in = crash_input(VM_ACTION_RESTART);
        VmRestartDecision d;
        unsigned next = 0, n = 0;

        in.recent = recent;
        in.n_recent = VM_RESTART_BURST;
        /* Crashes one second apart: VM_RESTART_BURST restarts, then the bound. */
        for (;; n++) {
                in.now_usec = S(1000 + n);
                vm_state_restart(&in, &d);
                if (!d.restart)
                        break;
                assert_true(d.counted);
                assert_int_equal(d.n_in_window, n);
                recent[next] = in.now_usec;
                next = (next + 1) % VM_RESTART_BURST;
        }
        assert_int_equal(n, VM_RESTART_BURST);
        assert_true(d.limited);
        assert_int_equal(d.n_in_window, VM_RESTART_BURST);

        /* Once the oldest restart leaves the window, one more is allowed. */
        in.now_usec = S(1000) + VM_RESTART_WINDOW_USEC;
        vm_state_restart(&in, &d);
        assert_true(d.restart);
        assert_int_equal(d.n_in_window, VM_RESTART_BURST - 1);
        in.now_usec = S(1000) + VM_RESTART_WINDOW_USEC - 1;
        vm_state_restart(&in, &d);
        assert_false(d.restart);
        assert_true(d.limited);

        /* Timestamps from the future (a bad clock) and empty slots count as nothing. */
        for (size_t i = 0; i < VM_RESTART_BURST; i++)
                recent[i] = i % 2 ? 0 : S(5000);
        in.now_usec = S(1000);
        vm_state_restart(&in, &d);
        assert_true(d.restart);
        assert_int_equal(d.n_in_window, 0);

        /* The bound never applies to a caller's Reboot. */
        for (size_t i = 0; i < VM_RESTART_BURST; i++)
                recent[i] = S(999);
        in.state = VM_STOPPED;
        in.shutdown_reason = "guest-shutdown";
        in.reboot_requested = true;
        vm_state_restart(&in, &d);
        assert_true(d.restart);
        assert_false(d.limited);
}

static void test_migration_watch(void **state) {
        const uint64_t S = 1000000;
        VmMigrationWatchInput in = { .now_usec = 100 * S, .last_progress_usec = 50 * S,
                                     .stall_usec = 60 * S, .cancel_usec = 10 * S };

        /* Within the stall bound: wait; past it (also when no query was answered, which
         * leaves last_progress where it was): cancel. */
        assert_int_equal(vm_migration_watch(&in), VM_MIGRATION_WAIT);
        in.now_usec = 110 * S;
        assert_int_equal(vm_migration_watch(&in), VM_MIGRATION_CANCEL);
        in.now_usec = 500 * S;
        assert_int_equal(vm_migration_watch(&in), VM_MIGRATION_CANCEL);
        /* Not started yet, or no bound: wait. */
        in.last_progress_usec = 0;
        assert_int_equal(vm_migration_watch(&in), VM_MIGRATION_WAIT);
        in.last_progress_usec = 50 * S;
        in.stall_usec = 0;
        assert_int_equal(vm_migration_watch(&in), VM_MIGRATION_WAIT);
        /* A cancel sent: its own bound decides, whatever the progress, also without a stall
         * bound (a caller's MigrateCancel). */
        in.cancel_sent_usec = 495 * S;
        assert_int_equal(vm_migration_watch(&in), VM_MIGRATION_WAIT);
        in.now_usec = 505 * S;
        assert_int_equal(vm_migration_watch(&in), VM_MIGRATION_GIVE_UP);
        in.stall_usec = 60 * S;
        in.last_progress_usec = 504 * S;
        assert_int_equal(vm_migration_watch(&in), VM_MIGRATION_GIVE_UP);
        in.now_usec = 496 * S;
        assert_int_equal(vm_migration_watch(&in), VM_MIGRATION_WAIT);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_event_cases),
                cmocka_unit_test(test_event_table_covered),
                cmocka_unit_test(test_unknown_events),
                cmocka_unit_test(test_events_never_settle),
                cmocka_unit_test(test_exit_cases),
                cmocka_unit_test(test_exit_long_stderr),
                cmocka_unit_test(test_exit_migration),
                cmocka_unit_test(test_exit_always_settles),
                cmocka_unit_test(test_restart_policy),
                cmocka_unit_test(test_restart_bound),
                cmocka_unit_test(test_migration_watch),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
