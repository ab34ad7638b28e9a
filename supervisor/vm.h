/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <sys/types.h>

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "config.h"
#include "console.h"
#include "list.h"
#include "qga.h"
#include "qmp.h"

/* How long QEMU may take from exec to a negotiated QMP and "cont". */
#define VM_START_TIMEOUT_USEC (30U * USEC_PER_SEC)
/* Stop: QMP quit, then SIGTERM, then SIGKILL, each after this grace. */
#define VM_STOP_GRACE_USEC (5U * USEC_PER_SEC)
/* After QMP's EOF, QEMU's exit is waited for this long before it is killed. */
#define VM_QMP_LOST_GRACE_USEC (2U * USEC_PER_SEC)
/* Automatic restarts (on_crash, on_poweroff = restart): at most VM_RESTART_BURST within
 * VM_RESTART_WINDOW_USEC, so a guest that crashes at every boot stops being restarted
 * and its state says why (vm-state.h, vm_state_restart). */
#define VM_RESTART_BURST 5U
#define VM_RESTART_WINDOW_USEC (60U * USEC_PER_SEC)
/* QEMU's stderr kept for start failure messages. */
#define VM_STDERR_TAIL 1024

typedef enum VmState {
        VM_STOPPED,
        VM_STARTING,
        VM_RUNNING,
        VM_PAUSED,
        VM_SUSPENDED,
        VM_SHUTTING_DOWN,
        VM_STOPPING,
        VM_CRASHED,
        VM_MIGRATING, /* the source of a live migration: the guest runs (or stays paused) meanwhile */
        VM_INCOMING,  /* the target: QEMU waits for, or receives, the migration stream */
        _VM_STATE_MAX,
        _VM_STATE_INVALID = -EINVAL,
} VmState;

const char *vm_state_to_string(VmState s);

typedef enum VmWaitKind {
        VM_WAIT_START,    /* until running (or the start failed) */
        VM_WAIT_EXIT,     /* until the process is reaped (Stop, forced Shutdown) */
        VM_WAIT_SHUTDOWN, /* until reaped, or the timeout */
        VM_WAIT_REBOOT,   /* until the guest runs again (RESET, or the next run started), or the timeout */
} VmWaitKind;

typedef struct Vm Vm;

/* What a migration (migration.h) hears of the VM's run. */
typedef struct VmMigrationHooks {
        /* QMP is negotiated on a run started by vm_start_incoming(): the state is incoming. */
        void (*incoming_ready)(Vm *vm, void *userdata);
        /* Every QMP event, after the state machine saw it. */
        void (*event)(Vm *vm, const char *name, json_t *data, void *userdata);
        /* QEMU's process is gone and the final state is set. */
        void (*ended)(Vm *vm, void *userdata);
        /* The VM is being freed (the supervisor exits): forget it. */
        void (*vm_freed)(Vm *vm, void *userdata);
} VmMigrationHooks;

typedef struct VmWaiter {
        Vm *vm;
        VmWaitKind kind;
        sd_bus_message *message;
        sd_event_source *timer;
        bool force;
        LIST_FIELDS(struct VmWaiter);
} VmWaiter;

struct Vm {
        sd_event *event;
        sd_bus *bus; /* where the signals go (vm-dbus.h); NULL before vm_set_bus() */
        struct VmEvents *events; /* the subscribers and the event ring (vm-events.h), with the bus */
        VmConfig *config;
        AclEntry *host_acl;
        size_t n_host_acl;
        char *acl_path;         /* the host ACL's file, for reloads (reload.h) */
        VmConfig *pending;      /* reloaded QEMU settings the next start applies, or NULL */
        char **pending_keys;    /* their top-level keys (PendingChanges); NULL when none */
        struct VmReload *reload; /* a reload waiting for the launcher, and who waits (reload.c) */
        char *runtime_dir; /* RUNTIME/NAME, 0700 */

        VmState state;
        char *state_reason;
        char *qemu_version;
        uint64_t started_at_usec; /* CLOCK_REALTIME */
        uint64_t started_at_mono;

        pid_t pid;
        int pidfd;
        sd_event_source *child_source;
        int stderr_fd;
        sd_event_source *stderr_source;
        char stderr_tail[VM_STDERR_TAIL];  /* the line being read */
        char stderr_last[VM_STDERR_TAIL];  /* the last complete line, for start failures */
        size_t stderr_len;

        QmpClient *qmp;
        /* While starting, for the flight recorder's account of a start that fails: a
         * duplicate of our end of the QMP connection (what is unread on either side?). */
        int start_qmp_fd;
        bool flight_noted;  /* this run's failure was recorded */
        bool flight_dumped; /* and written out */
        QgaClient *qga;
        Console *console; /* NULL for machine none (no serial port) */
        bool agent_connected;
        bool agent_port_open; /* the guest opened its end (VSERPORT_CHANGE) */
        /* Counts the moments the guest's agent, or the guest, started afresh: what the
         * agent numbered before (file handles) means nothing after. */
        uint64_t agent_generation;

        /* Facts about the current run that decide the final state. */
        char *shutdown_reason; /* from the SHUTDOWN event */
        char *kill_reason;     /* why the supervisor had to kill QEMU */
        bool guest_panicked;
        bool start_paused;        /* this run stays paused once QMP is up (StartWithOptions paused) */
        bool host_stop_requested; /* a caller's Stop or Shutdown ends this run: no automatic restart */
        bool reboot_pending;      /* a caller's Reboot waits for the guest to run again */
        uint64_t restart_times[VM_RESTART_BURST]; /* CLOCK_MONOTONIC of the last automatic restarts */
        unsigned restart_next;
        bool pause_requested, resume_requested;
        VmState state_before_shutdown;
        unsigned stop_phase; /* 0 none, 1 quit sent, 2 SIGTERM sent, 3 SIGKILL sent */
        sd_event_source *stop_timer;
        sd_event_source *start_timer;
        sd_event_source *qmp_lost_timer;

        LIST_HEAD(VmWaiter) waiters;

        /* Set by SIGTERM: leave the loop once the VM is down. */
        bool exit_when_stopped;
        /* Called when the VM reached stopped/crashed (readiness, exit). */
        void (*on_settled)(Vm *vm);
        /* Called when a reload ended, taken or refused (readiness). */
        void (*on_reloaded)(Vm *vm);
        /* An automatic restart waits for the launcher's answer to a reload. */
        bool start_after_reload;
        bool ready_notified;
        /* Taking over a QEMU a previous supervisor left (vm_adopt()): until QEMU said
         * whether it runs. */
        bool adopting;
        bool launching;          /* a start request is with the launcher (no QEMU yet) */

        /* This run was started for an incoming migration that has not completed yet: its end
         * is "migration-failed: …" rather than a start failure or a crash. */
        bool incoming;
        /* The outgoing migration completed: QEMU's exit ends the VM here, "migrated". */
        bool migrated_out;
        const VmMigrationHooks *migration_hooks;
        void *migration_userdata;
};

int vm_new(sd_event *event, VmConfig *config, AclEntry *host_acl, size_t n_host_acl,
           const char *runtime_root, Vm **ret);
Vm *vm_free(Vm *vm);
/* A reload ended (reload.c): an automatic restart that waited for it runs now, unless one
 * more reload is in flight (then after that one). */
void vm_reload_ended(Vm *vm);
DEFINE_TRIVIAL_CLEANUP_FUNC(Vm *, vm_free);

/* True while a QEMU process exists. */
bool vm_is_active(Vm *vm);
/* Start asked, not answered yet: with the launcher, or QEMU up and QMP being negotiated. */
bool vm_is_starting(const Vm *vm);
/* True when QMP is negotiated and the VM accepts commands (running, paused, suspended, shutting-down). */
bool vm_is_running(Vm *vm);

/* Launches QEMU. m (may be NULL) is answered when running or when the start failed.
 * Returns 0, -EBUSY (already running) or -errno. */
int vm_start(Vm *vm, sd_bus_message *m);
/* The same; paused: the CPUs stay stopped, the state is paused (start-paused). */
int vm_start_with(Vm *vm, sd_bus_message *m, bool paused);
/* Reboot: guest-shutdown mode reboot through the agent when it answers, else ACPI
 * power-down and a fresh QEMU. m answered once the VM runs again, or with Timeout.
 * -ESRCH: not running; -EBUSY: not in a state that can reboot (paused, shutting down). */
int vm_reboot(Vm *vm, unsigned timeout_sec, sd_bus_message *m);
struct LaunchAdoption;
/* Takes over the QEMU a previous supervisor left running (its launcher's descriptors, which
 * are taken): resynchronizes QMP, reconnects the agent, asks QEMU whether the VM runs and
 * settles in running or paused with the reason "reattached". Returns 0 or -errno. */
int vm_adopt(Vm *vm, struct LaunchAdoption *a, const char *version);
/* QEMU ended while no supervisor ran: the final state as if we had seen it end. */
void vm_adopt_exited(Vm *vm, pid_t pid, int code, int status);

/* Hard stop; m (may be NULL) is answered when the process is reaped. -ESRCH if not running. */
int vm_stop(Vm *vm, sd_bus_message *m);
/* Graceful shutdown; m answered on exit, or with Timeout (force=false) after timeout_sec. */
int vm_shutdown(Vm *vm, unsigned timeout_sec, bool force, sd_bus_message *m);

/* Launches QEMU with -incoming defer for a migration's target: no answer, no "cont"; once QMP
 * is negotiated the state is incoming and migration_hooks->incoming_ready runs. Returns 0,
 * -EBUSY when QEMU runs, or -errno (the state then says migration-failed and why). */
int vm_start_incoming(Vm *vm);
/* The incoming migration completed and the guest runs: state running, reason "migrated";
 * the agent (whose port the guest opened on the source) is synchronized afresh. */
void vm_incoming_done(Vm *vm);
/* Ends the run at once (SIGKILL), no automatic restart; the reason goes into the final state
 * (for an incoming run "migration-failed: <reason>"). */
void vm_abort_run(Vm *vm, const char *reason);
/* The outgoing migration completed: QEMU is quit (then SIGTERM, SIGKILL after the grace) and
 * the VM ends stopped, reason "migrated". */
void vm_finish_migration_out(Vm *vm);
/* A migration moves the VM to state with reason (migrating, and back to running or paused). */
void vm_set_migration_state(Vm *vm, VmState state, const char *reason);

/* The bus the VM's signals go to (referenced). */
void vm_set_bus(Vm *vm, sd_bus *bus);
/* A caller asked QEMU to pause / resume: the STOP / RESUME event that follows says
 * host-qmp-stop / host-qmp-cont rather than paused / resumed. */
void vm_note_pause_requested(Vm *vm);
void vm_note_resume_requested(Vm *vm);
