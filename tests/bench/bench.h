/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* vmsup-bench: the supervisor measured against the raw protocols it wraps.
 *
 * Every timed figure has its baseline measured in the same process, in the
 * same run, interleaved in small batches so that a noisy neighbour hurts both
 * sides alike. Every timed answer is checked (a reply that does not say what
 * it must fails the section): nothing is skipped on either side. */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>
#include <systemd/sd-bus.h>

#include "macro.h"

#define BUS_VM_PREFIX "org.vmsup.VM."
#define BUS_VM_PATH "/org/vmsup/VM"

/* ---- configuration (environment, see run.sh) ---- */

typedef struct BenchConfig {
        const char *dir;         /* scratch directory: vms/, run/, logs/, raw/ */
        const char *bus_address; /* the private dbus-daemon */
        const char *vmsupd;
        const char *qemu;
        const char *guest_dir;
        const char *out_json;
        const char *user;        /* a non-root caller the bench VM's ACL knows (may be NULL) */
        const char *flood_user;  /* another one, with the same rights, that floods (may be NULL) */
        const char *none_user;   /* a caller with no right at all, that floods (may be NULL) */
        pid_t dbus_pid;
        bool quick;
        bool strict;             /* a missed goal fails the run */
        char **only;             /* sections to run (NULL: all) */

        unsigned warmup;         /* latency rows: untimed calls per side first */
        unsigned iterations;     /* latency rows: timed calls per side */
        unsigned batch;          /* latency rows: calls per side before switching */
        unsigned clients;        /* throughput row */
        double seconds;          /* throughput row: measured duration */
        unsigned starts;         /* Start row: timed starts per side */
        unsigned fleet;          /* VMs in the fleet rows */
        unsigned fleet_rounds;   /* listing rounds */
        unsigned stress_rounds;  /* stress: rounds of cfg.fleet concurrent starts */
        unsigned readfile_runs;  /* ReadFile: transfers per side */
        unsigned readfile_mib;   /* ReadFile: size of the guest file */
        unsigned guest_mib;      /* ReadFile: guest RAM */
        unsigned migrations;     /* migration: runs per side */
        unsigned agent_iterations; /* agent rows: timed commands per side */
} BenchConfig;

extern BenchConfig cfg;

bool section_enabled(const char *name);

/* ---- time and statistics ---- */

uint64_t now_ns(void);

typedef struct Samples {
        uint64_t *v; /* nanoseconds (or any unit) */
        size_t n, cap;
        bool sorted;
} Samples;

void samples_add(Samples *s, uint64_t v);
/* p in [0, 100]; nearest-rank on the sorted samples. NAN when empty. */
double samples_pct(Samples *s, double p);
double samples_mean(const Samples *s);
void samples_free(Samples *s);
/* {"n":..,"p50":..,"p99":..,"mean":..,"min":..,"max":..} in the given unit (values / div). */
json_t *samples_json(Samples *s, double div);

/* ---- results and the report ---- */

typedef enum Verdict {
        VERDICT_MET,
        VERDICT_MISSED,
        VERDICT_INFO,  /* no goal */
        VERDICT_ERROR, /* the measurement failed */
} Verdict;

/* One line of the table. Strings are copied. */
typedef struct Row {
        const char *id;
        char *figure;
        char *sup;   /* "through vmsupd" cell */
        char *raw;   /* "raw baseline" cell, or "—" */
        char *ratio; /* ratio / overhead cell */
        char *goal;
        Verdict verdict;
        json_t *data; /* everything measured, for results.json (reference taken) */
} Row;

void row_add(const char *id, const char *figure, const char *sup, const char *raw, const char *ratio,
             const char *goal, Verdict verdict, json_t *data);
void row_error(const char *id, const char *figure, const char *goal, const char *fmt, ...) _printf_(4, 5);
void note_add(const char *fmt, ...) _printf_(1, 2);
/* The table and the notes on stdout; counts of missed goals and failed measurements. */
void report_print(size_t *ret_missed, size_t *ret_errors);
int report_write_json(const char *path);
char *strf(const char *fmt, ...) _printf_(1, 2);

/* ---- processes ---- */

/* Starts `vmsupd NAME` on the private bus (definitions in DIR/vms), killed with the harness
 * (PR_SET_PDEATHSIG). Returns the pid or -errno. */
pid_t vmsupd_spawn(const char *name);
/* Waits until every pid in pids sent READY=1 (bus name owned; with autostart, QMP
 * negotiated and the VM running). Returns 0, -ETIMEDOUT, or -ECHILD when one exited. */
int vmsupd_wait_ready(const pid_t *pids, size_t n, uint64_t timeout_usec);
/* SIGTERM, then SIGKILL after grace_usec; reaps. */
void processes_stop(const pid_t *pids, size_t n, uint64_t grace_usec);
/* Remembers a child so that it is killed when the harness exits. */
void child_track(pid_t pid);
void child_untrack(pid_t pid);
void children_kill_all(void);

/* /proc/PID/smaps_rollup: Pss and Rss in KiB. */
int proc_smaps_rollup(pid_t pid, uint64_t *ret_pss_kib, uint64_t *ret_rss_kib);
/* /proc/PID/status: a "Vm*:" field in KiB (e.g. "VmHWM"). */
int proc_status_kib(pid_t pid, const char *field, uint64_t *ret_kib);
/* Resets VmHWM to the current RSS (clear_refs 5). */
int proc_reset_hwm(pid_t pid);
/* CPU time of the process so far, ns (all threads: utime+stime from /proc/PID/stat). */
int proc_cpu_ns(pid_t pid, uint64_t *ret);

/* Writes a VM definition DIR/vms/NAME.json. */
int define_vm(const char *name, const char *json_text);

/* ---- the bus ---- */

int bus_open(sd_bus **ret);
/* A direct (peer-to-peer) connection to supervisor name's own socket, DIR/run/NAME.bus (the
 * handshake completes with the first call). Messages on it carry no destination. */
int direct_open(const char *name, sd_bus **ret);
/* A connection authenticated as user (a name): a caller that is not root. */
int bus_open_as(const char *user, sd_bus **ret);
/* Properties.Get(org.vmsup.VM1, prop) as a string; checks it equals want when want != NULL.
 * Returns 0, -EBADMSG on a wrong answer, else -errno (error message in *ret_err if given). */
int bus_get_state(sd_bus *bus, const char *dest, const char *want);
int bus_get_u32(sd_bus *bus, const char *dest, const char *prop, uint32_t *ret);
int bus_get_bool(sd_bus *bus, const char *dest, const char *prop, bool *ret);
/* Agent1.Command; returns the parsed JSON "return" (new reference). */
int bus_agent_command(sd_bus *bus, const char *dest, const char *json_cmd, json_t **ret, char **ret_error);
/* The bus name of VM name. */
char *vm_dest(const char *name);

/* ---- raw QMP (blocking client on QEMU's own socket) ---- */

/* Newline-framed input from a blocking socket. */
typedef struct RawLineBuf {
        int fd;
        char *buf;
        size_t start, scan, len, cap;
} RawLineBuf;

/* The next line, NUL-terminated in place, valid until the next call. ff_resets: a 0xFF byte
 * voids what came before it (the agent's delimiter). timeout_usec 0 = 60 s. */
int rawline_next(RawLineBuf *b, bool ff_resets, uint64_t timeout_usec, char **ret_line, size_t *ret_len);
void rawline_discard(RawLineBuf *b);
void rawline_free(RawLineBuf *b);

typedef struct RawQmp {
        RawLineBuf in;
        uint64_t next_id;
} RawQmp;

/* Reads the greeting and negotiates (qmp_capabilities). */
int raw_qmp_handshake(RawQmp *q, int fd);
/* One command; the "return" value (new reference) in *ret (may be NULL). -EREMOTEIO on a QMP
 * error, -EPROTO on garbage, else -errno. Events are skipped. */
int raw_qmp_command(RawQmp *q, const char *execute, json_t *arguments, json_t **ret);
/* The same with fd passed (SCM_RIGHTS with the first byte), for getfd. */
int raw_qmp_command_fd(RawQmp *q, const char *execute, json_t *arguments, int fd, json_t **ret);
void raw_qmp_close(RawQmp *q);

/* A QEMU started by the harness itself, with exactly the argv the supervisor would use for
 * definition NAME (vm_config_build_argv), its listening sockets in DIR/raw/NAME/. */
struct VmConfig;
typedef struct RawQemu {
        struct VmConfig *config;
        char *binary;
        char *sockdir;
        pid_t pid;
        RawQmp qmp;
        int qga_fd; /* connected agent socket (when the definition has an agent device), or -1 */
        bool incoming; /* raw_qemu_launch adds -incoming defer and sends no "cont" */
} RawQemu;

/* Loads definition NAME and resolves the binary: what the supervisor does before any Start. */
int raw_qemu_prepare(const char *name, RawQemu *ret);
/* What the supervisor's Start does: creates the sockets, builds the argv, execs QEMU,
 * negotiates QMP and sends "cont". Returns once "cont" is answered. */
int raw_qemu_launch(RawQemu *q);
/* raw_qemu_prepare + raw_qemu_launch. */
int raw_qemu_start(const char *name, RawQemu *ret);
/* QMP quit, wait (SIGKILL after a grace); raw_qemu_launch may follow. */
void raw_qemu_stop(RawQemu *q);
void raw_qemu_free(RawQemu *q);

/* ---- raw QGA (blocking client on the agent socket) ---- */

typedef struct RawQga {
        RawLineBuf in;
        uint64_t sync_id;
} RawQga;

void raw_qga_init(RawQga *g, int fd);
/* guest-sync-delimited with a fresh id; waits at most timeout_usec. */
int raw_qga_sync(RawQga *g, uint64_t timeout_usec);
/* Syncs, then sends one command; the "return" (new reference) in *ret. cmd_line is the
 * complete command without its newline. -EREMOTEIO on an agent error. */
int raw_qga_command(RawQga *g, const char *cmd_line, json_t **ret);
/* The same without the sync: the command alone, its reply the next line. */
int raw_qga_command_nosync(RawQga *g, const char *cmd_line, json_t **ret);
/* Syncs, sends, and hands back the reply line unparsed (valid until the next call). */
int raw_qga_command_line(RawQga *g, const char *cmd_line, char **ret_line, size_t *ret_len);
void raw_qga_close(RawQga *g);

/* ---- checksums ---- */

/* CRC-32 (IEEE, reflected; zlib's and busybox crc32's). Start with crc = 0. */
uint32_t crc32_update(uint32_t crc, const void *data, size_t len);

/* A memory row for supervisor sup (and, beside it, its QEMU). */
void memory_row(const char *id, const char *figure, pid_t sup, pid_t qemu);

/* ---- sections ---- */

void bench_latency(void);     /* State, HumanCommand, GetStatus, 16 clients, idle memory */
void bench_start(void);       /* Start vs exec → QMP negotiated */
void bench_fleet(void);       /* 100 supervisors */
void bench_stress(void);      /* rounds of 100 concurrent starts and stops (only when named) */
void bench_readfile(void);    /* ReadFile vs the agent socket, peak RSS */
void bench_migrate(void);     /* live migration through two supervisors vs two raw QEMUs */
void bench_agent(void);       /* Agent1.Command round trips vs the agent socket */
