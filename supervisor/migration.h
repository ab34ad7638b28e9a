/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Live migration over byte streams the caller passes (org.vmsup.Migration1, migration-dbus.c).
 *
 * No tunnel and no listener of our own: the orchestrator brings a connected stream (ssh,
 * socat, a proxy) and each supervisor hands its end to QEMU with getfd; the URI is
 * "fd:" MIGRATION_FDNAME on both ends.
 *
 * Source (migration_out): the VM runs or is paused. Capabilities and parameters are set for
 * this migration (they persist in QEMU, so every one is set, defaults included), then getfd
 * and migrate; the state is migrating. QEMU's MIGRATION events (and a poll of query-migrate
 * every MIGRATION_POLL_USEC) follow it. completed: QEMU is quit, the VM ends stopped,
 * "migrated", and the call returns. failed or cancelled: QEMU resumes a VM that ran (it is
 * sent "cont" if it did not), the state is running or paused again with the reason
 * "migration-failed: <QEMU's error-desc>" or "migration-cancelled", and the call fails
 * MigrationFailed with QEMU's reason. No progress for MIGRATION_STALL_USEC (or the
 * "timeout" option): cancelled; a query QEMU does not answer is no progress. A cancel QEMU
 * does not confirm within MIGRATION_CANCEL_USEC fails the migration without its word (the VM
 * keeps the state it had before, logged with QEMU's last status).
 *
 * Target (migration_in): the VM is stopped. QEMU starts with -incoming defer through the
 * launcher (so it is confined, recorded and adoptable like any run); once QMP is up the
 * state is incoming, then the "events" capability, getfd and migrate-incoming. When QEMU says
 * completed, "cont", and the VM is running, "migrated". A QEMU that fails to load the stream
 * exits with its reason; the VM is then stopped, "migration-failed: <reason>", and the call
 * fails MigrationFailed. A caller's Stop ends a waiting incoming migration. No data for
 * MIGRATION_STALL_USEC (or the "timeout" option) after migrate-incoming (until QEMU reports
 * the stream active; disk bytes through the splice count): QEMU is stopped, the call fails.
 *
 * A local disk (a second stream, disk-fd): the source mirrors its one writable drive into an
 * NBD client node on that stream (blockdev-mirror, write-blocking) and starts the RAM once
 * the job is READY; the target exports the drive from QEMU's NBD server, listening on
 * RUNTIME/NAME/nbd.sock, which the supervisor connects to and bridges to the caller's stream
 * (Splice); nbd-server-stop before cont. */

#include <systemd/sd-bus.h>

#include "vm.h"

#define MIGRATION_FDNAME "vmsup-migration"
/* Local disks (disk-fd): the source's NBD client node and mirror job, QEMU's name of the
 * disk stream (source) or of the NBD listener (target). */
#define MIGRATION_NBD_NODE "vmsup-migration-nbd"
#define MIGRATION_MIRROR_JOB "vmsup-migration-mirror"
#define MIGRATION_NBD_FDNAME "vmsup-migration-disk"
/* The target's bridge between the disk stream and QEMU's NBD server: bytes buffered per
 * direction. */
#define MIGRATION_SPLICE_BUF (256U * 1024U)
/* query-migrate while a migration runs on the source: progress, and the stall bound. */
#define MIGRATION_POLL_USEC (1U * USEC_PER_SEC)
#define MIGRATION_STALL_USEC (60U * USEC_PER_SEC)
/* The "timeout" option (seconds; 0: no bound) replaces MIGRATION_STALL_USEC: at most a day. */
#define MIGRATION_TIMEOUT_SEC_MAX 86400U
/* A migrate_cancel (the stall's or a caller's) QEMU has not confirmed after this: the
 * migration fails all the same. */
#define MIGRATION_CANCEL_USEC (10U * USEC_PER_SEC)
/* QEMU's own defaults, set explicitly when the caller names none (a previous migration's
 * values would persist otherwise). */
#define MIGRATION_DEFAULT_MAX_BANDWIDTH (128ULL * 1024ULL * 1024ULL)
#define MIGRATION_DEFAULT_DOWNTIME_MS 300ULL
/* downtime-limit-ms as QEMU accepts it (2000 s). */
#define MIGRATION_DOWNTIME_MS_MAX 2000000ULL
/* After a failed migration QEMU restarts the VM from its cleanup: query-status is asked
 * again this often, this many times, while it still says finish-migrate. */
#define MIGRATION_SETTLE_RETRY_USEC (50U * USEC_PER_MSEC)
#define MIGRATION_SETTLE_RETRIES 100U
/* The same for the totals of a completed migration. */
#define MIGRATION_TOTALS_RETRY_USEC (5U * USEC_PER_MSEC)

typedef struct MigrationOptions {
        uint64_t max_bandwidth;     /* bytes/s */
        uint64_t downtime_limit_ms;
        bool auto_converge;
        uint64_t stall_usec;        /* no progress this long fails the migration; 0: no bound */
} MigrationOptions;

typedef enum MigrationDirection {
        MIGRATION_NONE,
        MIGRATION_OUT,
        MIGRATION_IN,
} MigrationDirection;

typedef struct Migration Migration;

int migration_new(Vm *vm, Migration **ret);
/* Answers a waiting call (the supervisor is exiting). Accepts NULL. */
Migration *migration_free(Migration *m);

MigrationDirection migration_direction(Migration *m);

/* Starts an outgoing migration into fd (taken); msg answered when it ended. disk_fd (taken,
 * or -1): the VM's one writable drive is mirrored into it first (NBD). Returns 0, -ESRCH
 * (not running or paused), -EBUSY (a migration runs, or the VM is in a state that cannot
 * migrate), -EOPNOTSUPP (disk_fd, and not exactly one writable drive), or -errno. */
int migration_out(Migration *m, sd_bus_message *msg, int fd, int disk_fd, const MigrationOptions *o);
/* Starts QEMU for an incoming migration from fd (taken); msg answered once the VM runs or the
 * migration failed. Returns 0, -EBUSY (QEMU runs), or -errno (the state says why). */
int migration_in(Migration *m, sd_bus_message *msg, int fd, int disk_fd, const MigrationOptions *o);
/* migrate_cancel for the outgoing migration; msg answered when QEMU took it. -ESRCH: none. */
int migration_cancel(Migration *m, sd_bus_message *msg);
/* Answers msg with the status (a{sv}): from query-migrate while QEMU runs, else the last one. */
int migration_status(Migration *m, sd_bus_message *msg);

/* Whether fd can carry a migration stream: a stream socket (AF_UNIX, TCP), or a pipe or FIFO
 * open for writing (out) or reading (in). 0, or InvalidArgs in error. */
int migration_check_fd(int fd, bool out, sd_bus_error *error);
