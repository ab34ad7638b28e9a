/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* org.vmsup.Migration1 on /org/vmsup/VM: the handlers read and check the arguments, authorize,
 * and hand over to migration.c. */

#include <fcntl.h>
#include <stdio.h>
#include <sys/socket.h>

#include "bus-errors.h"
#include "migration-dbus.h"
#include "migration.h"
#include "vm.h"

typedef struct MigrationBus {
        VmBus *bus;
        Migration *migration;
} MigrationBus;

static int state_new(VmBus *b, void **ret) {
        MigrationBus *mb = calloc(1, sizeof *mb);
        int r;

        if (!mb)
                return -ENOMEM;
        mb->bus = b;
        r = migration_new(b->vm, &mb->migration);
        if (r < 0) {
                free(mb);
                return r;
        }
        *ret = mb;
        return 0;
}

static void state_free(void *state) {
        MigrationBus *mb = state;

        if (!mb)
                return;
        migration_free(mb->migration);
        free(mb);
}

/* Reads a{sv}: max-bandwidth t, downtime-limit-ms t, auto-converge b, disk-fd h, timeout u. Each at most
 * once; unknown keys and wrong types are InvalidArgs. *ret_disk_fd is the message's (not
 * ours), or -1. */
static int read_options(sd_bus_message *m, MigrationOptions *o, int *ret_disk_fd, sd_bus_error *error) {
        bool seen[5] = {};
        unsigned n = 0;
        int r;

        *o = (MigrationOptions) {
                .max_bandwidth = MIGRATION_DEFAULT_MAX_BANDWIDTH,
                .downtime_limit_ms = MIGRATION_DEFAULT_DOWNTIME_MS,
                .stall_usec = MIGRATION_STALL_USEC,
        };
        *ret_disk_fd = -1;
        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        for (;;) {
                static const struct {
                        const char *name;
                        const char *type;
                } known[] = {
                        { "max-bandwidth", "t" },
                        { "downtime-limit-ms", "t" },
                        { "auto-converge", "b" },
                        { "disk-fd", "h" },
                        { "timeout", "u" },
                };
                const char *key;
                size_t i;

                r = sd_bus_message_enter_container(m, 'e', "sv");
                if (r < 0)
                        return r;
                if (r == 0)
                        break;
                if (++n > MIGRATION_OPTIONS_MAX)
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "At most %u options.",
                                                 MIGRATION_OPTIONS_MAX);
                r = sd_bus_message_read(m, "s", &key);
                if (r < 0)
                        return r;
                for (i = 0; i < ELEMENTSOF(known); i++)
                        if (streq(key, known[i].name))
                                break;
                if (i == ELEMENTSOF(known)) {
                        char safe[64];

                        text_sanitize(safe, sizeof safe, key, strlen(key), 0);
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "Unknown migration option \"%s\" (known: max-bandwidth, "
                                                 "downtime-limit-ms, auto-converge, disk-fd, timeout).", safe);
                }
                if (seen[i])
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "The option \"%s\" is given twice.",
                                                 known[i].name);
                seen[i] = true;
                r = sd_bus_message_enter_container(m, 'v', known[i].type);
                if (r < 0)
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "The option \"%s\" has the type %s.",
                                                 known[i].name, known[i].type);
                switch (i) {
                case 0:
                        r = sd_bus_message_read(m, "t", &o->max_bandwidth);
                        if (r >= 0 && (o->max_bandwidth == 0 || o->max_bandwidth > (uint64_t) INT64_MAX))
                                return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS,
                                                        "max-bandwidth is 1 to 2^63-1 bytes per second.");
                        break;
                case 1:
                        r = sd_bus_message_read(m, "t", &o->downtime_limit_ms);
                        if (r >= 0 && o->downtime_limit_ms > MIGRATION_DOWNTIME_MS_MAX)
                                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                         "downtime-limit-ms is at most %llu.", MIGRATION_DOWNTIME_MS_MAX);
                        break;
                case 2: {
                        int b = 0;
                        r = sd_bus_message_read(m, "b", &b);
                        o->auto_converge = b;
                        break;
                }
                case 3:
                        r = sd_bus_message_read(m, "h", ret_disk_fd);
                        break;
                default: {
                        uint32_t sec = 0;
                        r = sd_bus_message_read(m, "u", &sec);
                        if (r >= 0 && sec > MIGRATION_TIMEOUT_SEC_MAX)
                                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                         "timeout is at most %u seconds (0: no bound).",
                                                         MIGRATION_TIMEOUT_SEC_MAX);
                        o->stall_usec = (uint64_t) sec * USEC_PER_SEC;
                        break;
                }
                }
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
        }
        return sd_bus_message_exit_container(m);
}

static bool fd_is_stream_socket(int fd) {
        int type = -1;
        socklen_t l = sizeof type;

        return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l) == 0 && type == SOCK_STREAM;
}

/* The stream and the options, checked; then VM.Migrate. Returns 0 with our own copy of the
 * stream in *ret_fd, or a negative errno with error set. */
static int read_call(MigrationBus *mb, sd_bus_message *m, bool out, MigrationOptions *o, int *ret_fd,
                     int *ret_disk_fd, sd_bus_error *error) {
        int fd, disk_fd, copy, disk_copy = -EBADF, r;

        r = sd_bus_message_read(m, "h", &fd);
        if (r < 0)
                return r;
        r = read_options(m, o, &disk_fd, error);
        if (r < 0)
                return r;
        r = migration_check_fd(fd, out, error);
        if (r < 0)
                return r;
        if (disk_fd >= 0) {
                /* NBD talks both ways: a stream socket only. */
                r = migration_check_fd(disk_fd, out, error);
                if (r < 0)
                        return r;
                if (!fd_is_stream_socket(disk_fd))
                        return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS,
                                                "disk-fd must be a stream socket (AF_UNIX or TCP): NBD talks both ways.");
        }
        r = bus_require(mb->bus, m, PRIV_VM_MIGRATE, error);
        if (r < 0)
                return r;
        copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (copy < 0)
                return -errno;
        if (disk_fd >= 0) {
                disk_copy = fcntl(disk_fd, F_DUPFD_CLOEXEC, 3);
                if (disk_copy < 0) {
                        r = -errno;
                        safe_close(copy);
                        return r;
                }
        }
        *ret_fd = copy;
        *ret_disk_fd = disk_copy;
        return 0;
}

static int method_migrate_out(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        MigrationBus *mb = userdata;
        Vm *vm = mb->bus->vm;
        MigrationOptions o;
        int fd = -EBADF, disk_fd = -EBADF, r;

        r = read_call(mb, m, true, &o, &fd, &disk_fd, error);
        if (r < 0)
                return r;
        r = migration_out(mb->migration, m, fd, disk_fd, &o);
        if (r == -EOPNOTSUPP)
                return sd_bus_error_set(error, SD_BUS_ERROR_NOT_SUPPORTED,
                                        "disk-fd carries one drive: the VM needs exactly one writable drive.");
        if (r == -ESRCH)
                return sd_bus_error_set(error, VMSUP_ERROR_NOT_RUNNING, "The VM is not running.");
        if (r == -EBUSY)
                return sd_bus_error_setf(error, VMSUP_ERROR_BUSY, "The VM cannot migrate now: it is %s%s.",
                                         vm_state_to_string(vm->state),
                                         migration_direction(mb->migration) != MIGRATION_NONE ? " (a migration runs)" : "");
        if (r < 0)
                return bus_error_set_errno(error, BUS_ERROR_QMP_SEND, r, NULL, NULL);
        return 1;
}

static int method_migrate_in(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        MigrationBus *mb = userdata;
        Vm *vm = mb->bus->vm;
        MigrationOptions o;
        int fd = -EBADF, disk_fd = -EBADF, r;

        r = read_call(mb, m, false, &o, &fd, &disk_fd, error);
        if (r < 0)
                return r;
        r = migration_in(mb->migration, m, fd, disk_fd, &o);
        if (r == -EOPNOTSUPP)
                return sd_bus_error_set(error, SD_BUS_ERROR_NOT_SUPPORTED,
                                        "disk-fd carries one drive: the VM needs exactly one writable drive.");
        if (r == -EBUSY)
                return sd_bus_error_setf(error, VMSUP_ERROR_ALREADY_RUNNING,
                                         "The VM is %s here; only a stopped VM can receive a migration.",
                                         vm_state_to_string(vm->state));
        if (r < 0)
                return sd_bus_error_setf(error, VMSUP_ERROR_MIGRATION_FAILED, "QEMU could not be started: %s.",
                                         vm->state_reason && *vm->state_reason ? vm->state_reason : strerror(-r));
        return 1;
}

static int method_migrate_cancel(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        MigrationBus *mb = userdata;
        int r;

        r = bus_require(mb->bus, m, PRIV_VM_MIGRATE, error);
        if (r < 0)
                return r;
        r = migration_cancel(mb->migration, m);
        if (r == -ESRCH)
                return sd_bus_error_set(error, VMSUP_ERROR_NOT_RUNNING, "No outgoing migration is in progress.");
        if (r < 0)
                return bus_error_set_errno(error, BUS_ERROR_QMP_SEND, r, NULL, NULL);
        return 1;
}

static int method_get_migration_status(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        MigrationBus *mb = userdata;
        int r;

        r = bus_require(mb->bus, m, PRIV_VM_AUDIT, error);
        if (r < 0)
                return r;
        return migration_status(mb->migration, m);
}

static const sd_bus_vtable migration_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD_WITH_ARGS("MigrateOut", SD_BUS_ARGS("h", fd, "a{sv}", options), SD_BUS_NO_RESULT,
                                method_migrate_out, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("MigrateIn", SD_BUS_ARGS("h", fd, "a{sv}", options), SD_BUS_NO_RESULT,
                                method_migrate_in, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("MigrateCancel", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_migrate_cancel,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetMigrationStatus", SD_BUS_NO_ARGS, SD_BUS_RESULT("a{sv}", status),
                                method_get_migration_status, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

const BusInterface migration_bus_interface = {
        .name = MIGRATION_INTERFACE,
        .vtable = migration_vtable,
        .state_new = state_new,
        .state_free = state_free,
};
