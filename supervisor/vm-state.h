/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The VM's state machine as pure functions: what a QMP event does to the state,
 * and which state and reason QEMU's exit leaves. They read only their arguments
 * and touch nothing; vm.c applies what they decide. */

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "vm.h"

/* What vm.c knows when an event arrives. */
typedef struct VmEventInput {
        VmState state;
        bool pause_requested;  /* a caller's stop is in flight */
        bool resume_requested; /* a caller's cont is in flight */
        bool have_agent;       /* the VM has an agent channel */
} VmEventInput;

/* What the event does. Everything false/NULL: nothing. */
typedef struct VmEventEffect {
        bool set_state;              /* move to state with reason (also the same state, a new reason) */
        VmState state;
        const char *reason;          /* static, or inside the event's data */
        bool start_completed;        /* the VM runs: a Start is answered (set_state says running) */
        bool query_status;           /* an unrequested pause: ask QEMU's query-status why */
        bool clear_pause_requested;  /* the requested stop (if any) arrived */
        bool clear_resume_requested; /* the requested cont (if any) arrived */
        const char *shutdown_reason; /* SHUTDOWN: QEMU's reason, kept for the final state */
        bool save_state_before_shutdown; /* remember the current state (a timed-out Shutdown returns to it) */
        bool guest_panicked;         /* the guest panicked during this run */
        bool agent_handles_reset;    /* a new boot, or agent, numbers file handles afresh */
        bool guest_reset;            /* the guest restarts in place (a reboot, or system_reset) */
        int agent_port;              /* the guest's agent port: 1 opened, 0 closed, -1 no news */
} VmEventEffect;

/* Decides what the QMP event name (with its data, may be NULL) does in the situation
 * in. Unknown events do nothing. Returns true when name is one of the table's. */
bool vm_state_event(const VmEventInput *in, const char *name, json_t *data, VmEventEffect *ret);

/* The events the table knows, for tests: NULL past the last. */
const char *vm_state_event_name(size_t i);

/* What vm.c knows when QEMU's process is gone. */
typedef struct VmExitInput {
        VmState state;               /* when it exited */
        int code;                    /* siginfo si_code: CLD_EXITED, CLD_KILLED, CLD_DUMPED */
        int status;                  /* siginfo si_status: the exit status, or the signal */
        unsigned stop_phase;         /* a Stop's progress: 0 none, 1 quit sent, 2 SIGTERM, 3 SIGKILL */
        const char *kill_reason;     /* why the supervisor had to kill QEMU, or NULL */
        const char *shutdown_reason; /* the SHUTDOWN event's reason, or NULL */
        const char *stderr_last;     /* QEMU's last stderr line, or NULL/"" */
        bool guest_panicked;         /* a GUEST_PANICKED event came */
        bool incoming;               /* an incoming migration's run that had not completed */
        bool migrated_out;           /* the outgoing migration completed */
} VmExitInput;

typedef struct VmExitOutcome {
        VmState state;      /* stopped or crashed */
        const char *reason; /* StateReason: into the input's strings or the buffers below */
        bool start_failed;  /* it never ran: a Start is answered with reason */
        char status[48];    /* "exit-status-N" or "killed-by-signal-N" */
        char text[VM_STDERR_TAIL + 64];
} VmExitOutcome;

/* Decides the final state and reason after QEMU's exit. */
void vm_state_exit(const VmExitInput *in, VmExitOutcome *ret);


/* What vm.c knows once QEMU's exit is decided (vm_state_exit). */
typedef struct VmRestartInput {
        VmState state;               /* the outcome's state: stopped or crashed */
        bool start_failed;           /* it never ran */
        bool host_requested;         /* a caller's Stop or Shutdown, or the supervisor exits */
        bool reboot_requested;       /* a caller's Reboot is waiting for the new run */
        const char *shutdown_reason; /* the SHUTDOWN event's reason, or NULL */
        VmLifecycleAction on_poweroff, on_reboot, on_crash;
        uint64_t now_usec;           /* CLOCK_MONOTONIC */
        const uint64_t *recent;      /* when the automatic restarts happened, any order */
        size_t n_recent;
} VmRestartInput;

typedef struct VmRestartDecision {
        bool restart;        /* start QEMU afresh */
        bool counted;        /* the restart counts against the bound (record now_usec) */
        bool limited;        /* a restart was due but the bound refused it */
        unsigned n_in_window; /* automatic restarts within the window before this one */
} VmRestartDecision;

/* Decides whether QEMU starts again after its exit. A caller's Reboot always restarts
 * (uncounted); a caller's Stop or Shutdown never does; otherwise on_poweroff, on_reboot
 * and on_crash decide, within the bound. */
void vm_state_restart(const VmRestartInput *in, VmRestartDecision *ret);

/* A live migration's watch, asked every poll (migration.c). */
typedef enum VmMigrationWatch {
        VM_MIGRATION_WAIT,    /* progress, or not past a bound yet */
        VM_MIGRATION_CANCEL,  /* no progress for the stall bound: cancel it (the target: fail it) */
        VM_MIGRATION_GIVE_UP, /* a cancel QEMU did not confirm within its bound: fail it anyway */
} VmMigrationWatch;

typedef struct VmMigrationWatchInput {
        uint64_t now_usec;           /* CLOCK_MONOTONIC */
        uint64_t last_progress_usec; /* the last progress, or the migration's start; 0: not started */
        uint64_t cancel_sent_usec;   /* when migrate_cancel was sent (a caller's or the stall's); 0: not */
        uint64_t stall_usec;         /* no progress this long cancels; 0: no bound */
        uint64_t cancel_usec;        /* a cancel unconfirmed this long gives up */
} VmMigrationWatchInput;

/* Decides what a migration's watch does. A query QEMU did not answer (or answered with an
 * error) is no progress: the bounds run on whatever QEMU says or does not say. */
VmMigrationWatch vm_migration_watch(const VmMigrationWatchInput *in);
