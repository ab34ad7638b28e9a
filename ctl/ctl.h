/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vmsupctl: shared declarations of the client's parts. */
#pragma once

#include <jansson.h>
#include <systemd/sd-bus.h>

#include "macro.h"

/* Exit statuses; vmsupctl(1) documents them. */
enum {
        CTL_EXIT_OK = 0,
        CTL_EXIT_FAILURE = 1,       /* any other failure */
        CTL_EXIT_USAGE = 2,         /* bad command line, or arguments the supervisor refused as invalid */
        CTL_EXIT_NOT_RUNNING = 3,   /* the method needs a running VM */
        CTL_EXIT_ACCESS_DENIED = 4, /* the caller lacks a privilege, or the bus policy refused */
        CTL_EXIT_NO_VM = 5,         /* no supervisor serves that VM name on the bus */
};

#define VM_BUS_PREFIX "org.vmsup.VM."
#define VM_OBJECT "/org/vmsup/VM"
#define VM_IFACE "org.vmsup.VM1"
#define MONITOR_IFACE "org.vmsup.Monitor1"
#define AGENT_IFACE "org.vmsup.Agent1"

/* Options given on the command line (vmsupctl.c). */
typedef struct CtlArgs {
        const char *bus;
        int direct;                /* -1 the direct socket when it answers, else the bus; 0 the bus; 1 direct only */
        const char *runtime_dir;   /* where the supervisors' direct sockets are */
        bool json;
        uint64_t count;
        uint64_t timeout_sec;
        bool force;
        uint64_t offset, length;
        bool append;
        uint64_t hold_ms;
        bool names_only;
        bool paused;
        const char *listen;
        uint64_t since;
        bool have_since;
        uint64_t max_bandwidth, downtime_limit_ms;
        bool have_max_bandwidth, have_downtime_limit, auto_converge, local_disk;
        bool have_timeout; /* --timeout given (migrate, migrate-in: the migration's "timeout") */
        bool openmetrics; /* metrics --format openmetrics */
} CtlArgs;
extern CtlArgs arg;

/* ctl-bus.c */
int ctl_bus_open(sd_bus **ret);
/* A connection for the calls to VM name: its direct socket (RUNTIME/NAME.bus, vmsupd(8))
 * when it completes the handshake, else the bus (arg.direct says whether either alone). */
int ctl_bus_open_vm(const char *name, sd_bus **ret);
/* The destination of a message on bus: dest, or none on a direct connection. */
const char *ctl_dest(sd_bus *bus, const char *dest);
/* Calls METHOD on VM NAME's object; on error prints one line and returns the exit status (> 0).
 * The reply is optional. TYPES/... append the arguments. */
int ctl_call(sd_bus *bus, const char *name, const char *iface, const char *method, uint64_t timeout_usec,
             sd_bus_message **ret_reply, const char *types, ...);
int ctl_error_status(const char *name, const sd_bus_error *e, int r);
const char *ctl_error_meaning(const char *error_name, int *ret_status);
int ctl_json_from_message(sd_bus_message *m, json_t **ret);
int ctl_print_json(json_t *j, bool pretty);
int ctl_bus_fail(int r, const char *what);

/* ctl-vm.c: org.vmsup.VM1 */
int verb_list(char **args, size_t n);
int verb_status(char **args, size_t n);
int verb_simple(char **args, size_t n, const char *method);
int verb_shutdown(char **args, size_t n);
int verb_start(char **args, size_t n);
int verb_reboot(char **args, size_t n);
int verb_sendkey(char **args, size_t n);

/* ctl-stats.c: statistics */
int verb_stats(char **args, size_t n);
int verb_metrics(char **args, size_t n);

/* ctl-io.c: monitor, agent, signals, files */
int verb_monitor(char **args, size_t n);
int verb_qmp(char **args, size_t n);
int verb_agent(char **args, size_t n);
int verb_events(char **args, size_t n);
int verb_read_file(char **args, size_t n);
int verb_write_file(char **args, size_t n);

/* ctl-migrate.c: live migration over a command's standard input and output */
int verb_migrate(char **args, size_t n);
int verb_migrate_in(char **args, size_t n);

/* ctl-console.c: serial console, VNC, screenshots */
int verb_console(char **args, size_t n);
int verb_vnc(char **args, size_t n);
int verb_screenshot(char **args, size_t n);
