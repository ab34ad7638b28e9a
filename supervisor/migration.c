/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Live migration over passed streams: see migration.h. Everything is driven by QMP replies,
 * QMP events and timers on the loop; nothing here blocks. */

#include <fcntl.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bus-errors.h"
#include "bus-fds.h"
#include "log.h"
#include "migration.h"
#include "vm.h"

/* Whether s is one of the strings that follow (NULL-terminated). */
static bool str_in(const char *s, ...) {
        va_list ap;
        const char *x;
        bool found = false;

        va_start(ap, s);
        while ((x = va_arg(ap, const char *)))
                if (!found && s && streq(s, x))
                        found = true;
        va_end(ap);
        return found;
}
#define IN_SET_STR(s, ...) str_in(s, __VA_ARGS__, (const char *) NULL)

struct Migration {
        Vm *vm;
        MigrationDirection dir;
        sd_bus_message *reply;  /* MigrateOut / MigrateIn, answered at the end */
        int fd;                 /* the stream, until QEMU has it */
        MigrationOptions opts;
        VmState state_before;   /* source: running or paused */
        sd_event_source *poll_timer;
        sd_event_source *settle_timer;
        unsigned settle_tries;
        uint64_t last_transferred;
        uint64_t last_progress_usec;
        bool finishing;         /* the end is being handled */
        bool cancelled;         /* a caller's MigrateCancel, or the stall bound */
        char *error;            /* why it failed */
        json_t *last;           /* the last query-migrate answer */
        MigrationDirection last_dir;
};

static void migration_reset(Migration *m) {
        m->dir = MIGRATION_NONE;
        m->reply = sd_bus_message_unref(m->reply);
        if (m->fd >= 0)
                bus_fds_close_async(m->fd);
        m->fd = -EBADF;
        m->poll_timer = sd_event_source_disable_unref(m->poll_timer);
        m->settle_timer = sd_event_source_disable_unref(m->settle_timer);
        m->settle_tries = 0;
        m->finishing = m->cancelled = false;
        m->error = mfree(m->error);
}

static void set_error(Migration *m, const char *why) {
        char safe[512];

        if (m->error)
                return;
        text_sanitize(safe, sizeof safe, why ?: "unknown error", strlen(why ?: "unknown error"), 0);
        m->error = strdup(safe);
}

/* Answers the waiting call: success, or MigrationFailed with the reason. */
static void migration_answer(Migration *m, bool ok, const char *why) {
        if (m->reply) {
                if (ok)
                        (void) sd_bus_reply_method_return(m->reply, NULL);
                else
                        (void) sd_bus_reply_method_errorf(m->reply, VMSUP_ERROR_MIGRATION_FAILED, "The migration failed: %.400s.",
                                                          why ?: m->error ?: "unknown error");
        }
        migration_reset(m);
}

static void keep_last(Migration *m, json_t *result) {
        if (!json_is_object(result))
                return;
        json_decref(m->last);
        m->last = json_incref(result);
        m->last_dir = m->dir;
}

/* ---- source ---- */

static void out_failed_settled(Migration *m, const char *status);

static void on_settle_status(QmpClient *c, int error, json_t *result, const char *err_class, const char *err_desc,
                             void *userdata);

static int on_settle_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Migration *m = userdata;

        m->settle_timer = sd_event_source_disable_unref(m->settle_timer);
        if (m->dir != MIGRATION_OUT || !m->vm->qmp ||
            qmp_send(m->vm->qmp, "query-status", NULL, 0, on_settle_status, m, NULL) < 0)
                out_failed_settled(m, NULL);
        return 0;
}

static void on_settle_cont(QmpClient *c, int error, json_t *result, const char *err_class, const char *err_desc,
                           void *userdata) {
        Migration *m = userdata;

        if (m->dir != MIGRATION_OUT)
                return;
        out_failed_settled(m, error < 0 ? "paused" : "running");
}

static void on_settle_status(QmpClient *c, int error, json_t *result, const char *err_class, const char *err_desc,
                             void *userdata) {
        Migration *m = userdata;
        const char *st = error >= 0 ? json_string_value(json_object_get(result, "status")) : NULL;

        if (m->dir != MIGRATION_OUT)
                return;
        if (st && streq(st, "finish-migrate") && m->settle_tries++ < MIGRATION_SETTLE_RETRIES) {
                /* QEMU's cleanup has not restarted the VM yet. */
                if (sd_event_add_time_relative(m->vm->event, &m->settle_timer, CLOCK_MONOTONIC,
                                               MIGRATION_SETTLE_RETRY_USEC, 0, on_settle_timer, m) >= 0)
                        return;
        }
        if (st && !streq(st, "running") && m->state_before == VM_RUNNING &&
            IN_SET_STR(st, "postmigrate", "paused", "finish-migrate") &&
            qmp_send(m->vm->qmp, "cont", NULL, 0, on_settle_cont, m, NULL) >= 0)
                return; /* the VM ran before: it runs again */
        out_failed_settled(m, st);
}

/* The source's QEMU says what it does after a failed migration: the state follows, and the
 * call fails. */
static void out_failed_settled(Migration *m, const char *status) {
        Vm *vm = m->vm;
        _cleanup_free_ char *reason = NULL;
        VmState state;

        if (status && streq(status, "running"))
                state = VM_RUNNING;
        else if (status)
                state = VM_PAUSED;
        else
                state = m->state_before;
        if (m->cancelled && !m->error)
                reason = strdup("migration-cancelled");
        else if (asprintf(&reason, "migration-failed: %s", m->error ?: "unknown error") < 0)
                reason = NULL;
        if (vm_is_active(vm) && vm->state == VM_MIGRATING)
                vm_set_migration_state(vm, state, reason ?: "migration-failed");
        log_info("VM %s: outgoing migration failed: %s", vm->config->name, m->error ?: "cancelled");
        migration_answer(m, false, m->error ?: "it was cancelled");
}

static void on_out_query(QmpClient *c, int error, json_t *result, const char *err_class, const char *err_desc,
                         void *userdata);

static int on_totals_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Migration *m = userdata;

        m->settle_timer = sd_event_source_disable_unref(m->settle_timer);
        if (m->dir == MIGRATION_OUT && m->vm->qmp)
                (void) qmp_send(m->vm->qmp, "query-migrate", NULL, 0, on_out_query, m, NULL);
        return 0;
}

static void out_end(Migration *m, json_t *result) {
        const char *st = json_string_value(json_object_get(result, "status"));

        if (m->finishing || !st)
                return;
        if (streq(st, "completed")) {
                /* QEMU reports completed a moment before it has computed the totals (total
                 * time, downtime): those are the migration's record, so ask again for them. */
                if (!json_integer_value(json_object_get(result, "total-time")) &&
                    m->settle_tries++ < MIGRATION_SETTLE_RETRIES && !m->settle_timer &&
                    sd_event_add_time_relative(m->vm->event, &m->settle_timer, CLOCK_MONOTONIC,
                                               MIGRATION_TOTALS_RETRY_USEC, 0, on_totals_timer, m) >= 0)
                        return;
                m->finishing = true;
                m->poll_timer = sd_event_source_disable_unref(m->poll_timer);
                log_info("VM %s: outgoing migration completed, quitting QEMU", m->vm->config->name);
                vm_finish_migration_out(m->vm); /* the end of the run answers (on_vm_ended) */
                return;
        }
        if (!IN_SET_STR(st, "failed", "cancelled"))
                return;
        m->finishing = true;
        m->poll_timer = sd_event_source_disable_unref(m->poll_timer);
        if (!m->cancelled || json_is_string(json_object_get(result, "error-desc")))
                set_error(m, json_string_value(json_object_get(result, "error-desc")) ?:
                                     (streq(st, "cancelled") ? "it was cancelled" : "QEMU gave no reason"));
        if (!m->vm->qmp || qmp_send(m->vm->qmp, "query-status", NULL, 0, on_settle_status, m, NULL) < 0)
                out_failed_settled(m, NULL);
}

static void on_cancel_sent(QmpClient *c, int error, json_t *result, const char *err_class, const char *err_desc,
                           void *userdata) {
}

static void on_out_query(QmpClient *c, int error, json_t *result, const char *err_class, const char *err_desc,
                         void *userdata) {
        Migration *m = userdata;
        json_t *ram;
        uint64_t now, transferred;

        if (m->dir != MIGRATION_OUT || error < 0)
                return;
        keep_last(m, result);
        out_end(m, result);
        if (m->finishing)
                return;
        now = now_usec(CLOCK_MONOTONIC);
        ram = json_object_get(result, "ram");
        transferred = (uint64_t) json_integer_value(json_object_get(ram, "transferred"));
        if (transferred != m->last_transferred || m->last_progress_usec == 0) {
                m->last_transferred = transferred;
                m->last_progress_usec = now;
        } else if (now - m->last_progress_usec > MIGRATION_STALL_USEC && !m->cancelled) {
                log_warning("VM %s: the outgoing migration made no progress for %u s, cancelling it",
                            m->vm->config->name, (unsigned) (MIGRATION_STALL_USEC / USEC_PER_SEC));
                set_error(m, "no progress for 60 s");
                m->cancelled = true;
                (void) qmp_send(m->vm->qmp, "migrate_cancel", NULL, 0, on_cancel_sent, m, NULL);
        }
}

static int on_poll_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Migration *m = userdata;

        if (m->dir == MIGRATION_OUT && m->vm->qmp)
                (void) qmp_send(m->vm->qmp, "query-migrate", NULL, 0, on_out_query, m, NULL);
        (void) sd_event_source_set_time_relative(s, MIGRATION_POLL_USEC);
        return 0;
}

/* A step before the migration ran failed: the VM is as it was. */
static void out_setup_failed(Migration *m, const char *what, const char *desc) {
        _cleanup_free_ char *why = NULL;

        if (asprintf(&why, "%s: %s", what, desc ?: "QEMU went away") < 0)
                why = NULL;
        set_error(m, why ?: what);
        m->finishing = true;
        if (!m->vm->qmp || qmp_send(m->vm->qmp, "query-status", NULL, 0, on_settle_status, m, NULL) < 0)
                out_failed_settled(m, NULL);
}

static void on_migrate_reply(QmpClient *c, int error, json_t *result, const char *err_class, const char *err_desc,
                             void *userdata) {
        Migration *m = userdata;

        if (m->dir != MIGRATION_OUT)
                return;
        if (error < 0)
                return out_setup_failed(m, "migrate", err_desc);
        m->last_progress_usec = now_usec(CLOCK_MONOTONIC);
        if (sd_event_add_time_relative(m->vm->event, &m->poll_timer, CLOCK_MONOTONIC, MIGRATION_POLL_USEC, 0,
                                       on_poll_timer, m) >= 0)
                (void) sd_event_source_set_enabled(m->poll_timer, SD_EVENT_ON);
}

static void on_out_getfd(QmpClient *c, int error, json_t *result, const char *err_class, const char *err_desc,
                         void *userdata) {
        Migration *m = userdata;
        _cleanup_(json_decrefp) json_t *args = NULL;

        if (m->dir != MIGRATION_OUT)
                return;
        if (error < 0)
                return out_setup_failed(m, "getfd", err_desc);
        args = json_pack("{s:s}", "uri", "fd:" MIGRATION_FDNAME);
        if (!args || qmp_send(c, "migrate", args, 0, on_migrate_reply, m, NULL) < 0)
                out_setup_failed(m, "migrate", "cannot be sent");
}

static void on_out_params(QmpClient *c, int error, json_t *result, const char *err_class, const char *err_desc,
                          void *userdata) {
        Migration *m = userdata;
        _cleanup_(json_decrefp) json_t *args = NULL;

        if (m->dir != MIGRATION_OUT)
                return;
        if (error < 0)
                return out_setup_failed(m, "migrate-set-parameters", err_desc);
        args = json_pack("{s:s}", "fdname", MIGRATION_FDNAME);
        if (!args || qmp_send_fd(c, "getfd", args, TAKE_FD(m->fd), 0, on_out_getfd, m, NULL) < 0)
                out_setup_failed(m, "getfd", "cannot be sent");
}

static void on_out_caps(QmpClient *c, int error, json_t *result, const char *err_class, const char *err_desc,
                        void *userdata) {
        Migration *m = userdata;
        _cleanup_(json_decrefp) json_t *args = NULL;

        if (m->dir != MIGRATION_OUT)
                return;
        if (error < 0)
                return out_setup_failed(m, "migrate-set-capabilities", err_desc);
        args = json_pack("{s:I, s:I}", "max-bandwidth", (json_int_t) m->opts.max_bandwidth, "downtime-limit",
                         (json_int_t) m->opts.downtime_limit_ms);
        if (!args || qmp_send(c, "migrate-set-parameters", args, 0, on_out_params, m, NULL) < 0)
                out_setup_failed(m, "migrate-set-parameters", "cannot be sent");
}

static json_t *capabilities(bool auto_converge, bool out) {
        if (!out)
                return json_pack("{s:[{s:s, s:b}]}", "capabilities", "capability", "events", "state", 1);
        return json_pack("{s:[{s:s, s:b}, {s:s, s:b}]}", "capabilities", "capability", "events", "state", 1,
                         "capability", "auto-converge", "state", auto_converge);
}

int migration_out(Migration *m, sd_bus_message *msg, int fd, const MigrationOptions *o) {
        _cleanup_close_ int stream = fd;
        _cleanup_(json_decrefp) json_t *args = NULL;
        Vm *vm = m->vm;
        int r;

        if (m->dir != MIGRATION_NONE)
                return -EBUSY;
        if (!vm_is_running(vm))
                return -ESRCH;
        if (!IN_SET(vm->state, VM_RUNNING, VM_PAUSED))
                return -EBUSY;
        args = capabilities(o->auto_converge, true);
        if (!args)
                return -ENOMEM;
        r = qmp_send(vm->qmp, "migrate-set-capabilities", args, 0, on_out_caps, m, NULL);
        if (r < 0)
                return r;
        json_decref(m->last);
        m->last = NULL;
        m->dir = MIGRATION_OUT;
        m->reply = sd_bus_message_ref(msg);
        m->fd = TAKE_FD(stream);
        m->opts = *o;
        m->state_before = vm->state;
        m->last_transferred = 0;
        m->last_progress_usec = 0;
        log_info("VM %s: outgoing migration (max-bandwidth %" PRIu64 " B/s, downtime-limit %" PRIu64 " ms%s)",
                 vm->config->name, o->max_bandwidth, o->downtime_limit_ms, o->auto_converge ? ", auto-converge" : "");
        vm_set_migration_state(vm, VM_MIGRATING, "migrate-out");
        return 0;
}

int migration_cancel(Migration *m, sd_bus_message *msg) {
        int r;

        if (m->dir != MIGRATION_OUT || m->finishing || !m->vm->qmp)
                return -ESRCH;
        r = qmp_send(m->vm->qmp, "migrate_cancel", NULL, 0, NULL, NULL, NULL);
        if (r < 0)
                return r;
        m->cancelled = true;
        return sd_bus_reply_method_return(msg, NULL);
}

/* ---- target ---- */

static void in_fail(Migration *m, const char *what, const char *desc) {
        _cleanup_free_ char *why = NULL;

        if (asprintf(&why, "%s: %s", what, desc ?: "QEMU went away") < 0)
                why = NULL;
        set_error(m, why ?: what);
        /* QEMU's end answers the call (on_vm_ended) with the state's reason. */
        vm_abort_run(m->vm, m->error ?: what);
}

static void on_in_cont(QmpClient *c, int error, json_t *result, const char *err_class, const char *err_desc,
                       void *userdata) {
        Migration *m = userdata;

        if (m->dir != MIGRATION_IN)
                return;
        if (error < 0)
                return in_fail(m, "cont", err_desc);
        log_info("VM %s: incoming migration completed, the VM runs", m->vm->config->name);
        vm_incoming_done(m->vm);
        migration_answer(m, true, NULL);
}

static void on_in_query(QmpClient *c, int error, json_t *result, const char *err_class, const char *err_desc,
                        void *userdata) {
        Migration *m = userdata;

        if (error >= 0)
                keep_last(m, result);
}

static void on_in_started(QmpClient *c, int error, json_t *result, const char *err_class, const char *err_desc,
                          void *userdata) {
        Migration *m = userdata;

        if (m->dir == MIGRATION_IN && error < 0)
                in_fail(m, "migrate-incoming", err_desc);
}

static void on_in_getfd(QmpClient *c, int error, json_t *result, const char *err_class, const char *err_desc,
                        void *userdata) {
        Migration *m = userdata;
        _cleanup_(json_decrefp) json_t *args = NULL;

        if (m->dir != MIGRATION_IN)
                return;
        if (error < 0)
                return in_fail(m, "getfd", err_desc);
        args = json_pack("{s:s}", "uri", "fd:" MIGRATION_FDNAME);
        if (!args || qmp_send(c, "migrate-incoming", args, 0, on_in_started, m, NULL) < 0)
                in_fail(m, "migrate-incoming", "cannot be sent");
}

static void on_in_caps(QmpClient *c, int error, json_t *result, const char *err_class, const char *err_desc,
                       void *userdata) {
        Migration *m = userdata;
        _cleanup_(json_decrefp) json_t *args = NULL;

        if (m->dir != MIGRATION_IN)
                return;
        if (error < 0)
                return in_fail(m, "migrate-set-capabilities", err_desc);
        args = json_pack("{s:s}", "fdname", MIGRATION_FDNAME);
        if (!args || qmp_send_fd(c, "getfd", args, TAKE_FD(m->fd), 0, on_in_getfd, m, NULL) < 0)
                in_fail(m, "getfd", "cannot be sent");
}

static void on_incoming_ready(Vm *vm, void *userdata) {
        Migration *m = userdata;
        _cleanup_(json_decrefp) json_t *args = NULL;

        if (m->dir != MIGRATION_IN)
                return;
        args = capabilities(false, false);
        if (!args || qmp_send(vm->qmp, "migrate-set-capabilities", args, 0, on_in_caps, m, NULL) < 0)
                in_fail(m, "migrate-set-capabilities", "cannot be sent");
}

int migration_in(Migration *m, sd_bus_message *msg, int fd, const MigrationOptions *o) {
        _cleanup_close_ int stream = fd;
        int r;

        if (m->dir != MIGRATION_NONE || vm_is_active(m->vm))
                return -EBUSY;
        json_decref(m->last);
        m->last = NULL;
        m->dir = MIGRATION_IN;
        m->reply = sd_bus_message_ref(msg);
        m->fd = TAKE_FD(stream);
        m->opts = *o;
        r = vm_start_incoming(m->vm);
        if (r < 0) {
                m->reply = sd_bus_message_unref(m->reply); /* the handler answers */
                migration_reset(m);
                return r;
        }
        return 0;
}

/* ---- both ---- */

static void on_vm_event(Vm *vm, const char *name, json_t *data, void *userdata) {
        Migration *m = userdata;
        const char *st;

        if (!streq(name, "MIGRATION") || m->dir == MIGRATION_NONE)
                return;
        st = json_string_value(json_object_get(data, "status"));
        if (!st)
                return;
        if (m->dir == MIGRATION_OUT) {
                if (IN_SET_STR(st, "completed", "failed", "cancelled"))
                        (void) qmp_send(vm->qmp, "query-migrate", NULL, 0, on_out_query, m, NULL);
                return;
        }
        /* Incoming. A failure ends QEMU by itself, with its reason on stderr. */
        if (streq(st, "completed")) {
                (void) qmp_send(vm->qmp, "query-migrate", NULL, 0, on_in_query, m, NULL);
                if (qmp_send(vm->qmp, "cont", NULL, 0, on_in_cont, m, NULL) < 0)
                        in_fail(m, "cont", "cannot be sent");
        }
}

static void on_vm_ended(Vm *vm, void *userdata) {
        Migration *m = userdata;
        _cleanup_free_ char *why = NULL;

        if (m->dir == MIGRATION_NONE)
                return;
        if (m->dir == MIGRATION_OUT && streq_ptr(vm->state_reason, "migrated")) {
                log_info("VM %s: migrated away", vm->config->name);
                return migration_answer(m, true, NULL);
        }
        if (m->dir == MIGRATION_IN) {
                const char *r = vm->state_reason ?: "";
                return migration_answer(m, false, startswith(r, "migration-failed: ") ? r + strlen("migration-failed: ") : r);
        }
        if (asprintf(&why, "QEMU ended during the migration (%s)", vm->state_reason ?: "") < 0)
                why = NULL;
        migration_answer(m, false, why ?: "QEMU ended during the migration");
}

static const VmMigrationHooks hooks = {
        .incoming_ready = on_incoming_ready,
        .event = on_vm_event,
        .ended = on_vm_ended,
};

int migration_new(Vm *vm, Migration **ret) {
        Migration *m = calloc(1, sizeof *m);

        if (!m)
                return -ENOMEM;
        m->vm = vm;
        m->fd = -EBADF;
        vm->migration_hooks = &hooks;
        vm->migration_userdata = m;
        *ret = m;
        return 0;
}

Migration *migration_free(Migration *m) {
        if (!m)
                return NULL;
        if (m->reply)
                (void) sd_bus_reply_method_errorf(m->reply, VMSUP_ERROR_NOT_RUNNING, "The supervisor is exiting.");
        migration_reset(m);
        if (m->vm->migration_userdata == m) {
                m->vm->migration_hooks = NULL;
                m->vm->migration_userdata = NULL;
        }
        json_decref(m->last);
        free(m);
        return NULL;
}

MigrationDirection migration_direction(Migration *m) {
        return m->dir;
}

/* ---- status ---- */

static int append_u64(sd_bus_message *r, const char *key, json_t *v) {
        if (!json_is_integer(v) || json_integer_value(v) < 0)
                return 0;
        return sd_bus_message_append(r, "{sv}", key, "t", (uint64_t) json_integer_value(v));
}

static int status_reply(Migration *m, sd_bus_message *msg, json_t *q) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *r = NULL;
        json_t *ram = json_object_get(q, "ram"), *disk = json_object_get(q, "disk");
        const char *st = json_string_value(json_object_get(q, "status")) ?: "none";
        MigrationDirection d = m->dir != MIGRATION_NONE ? m->dir : q ? m->last_dir : MIGRATION_NONE;
        int k;

        k = sd_bus_message_new_method_return(msg, &r);
        if (k < 0)
                return k;
        k = sd_bus_message_open_container(r, 'a', "{sv}");
        if (k < 0)
                return k;
        k = sd_bus_message_append(r, "{sv}{sv}", "status", "s", st, "direction", "s",
                                  d == MIGRATION_OUT ? "out" : d == MIGRATION_IN ? "in" : "none");
        if (k >= 0)
                k = append_u64(r, "transferred-bytes", json_object_get(ram, "transferred"));
        if (k >= 0)
                k = append_u64(r, "remaining-bytes", json_object_get(ram, "remaining"));
        if (k >= 0)
                k = append_u64(r, "total-bytes", json_object_get(ram, "total"));
        if (k >= 0)
                k = append_u64(r, "dirty-pages-rate", json_object_get(ram, "dirty-pages-rate"));
        if (k >= 0 && json_is_number(json_object_get(ram, "mbps")))
                k = sd_bus_message_append(r, "{sv}", "throughput-mbps", "d",
                                          json_number_value(json_object_get(ram, "mbps")));
        if (k >= 0)
                k = append_u64(r, "total-time-ms", json_object_get(q, "total-time"));
        if (k >= 0)
                k = append_u64(r, "expected-downtime-ms", json_object_get(q, "expected-downtime"));
        if (k >= 0)
                k = append_u64(r, "downtime-ms", json_object_get(q, "downtime"));
        if (k >= 0)
                k = append_u64(r, "setup-time-ms", json_object_get(q, "setup-time"));
        if (k >= 0)
                k = append_u64(r, "disk-transferred-bytes", json_object_get(disk, "transferred"));
        if (k >= 0)
                k = append_u64(r, "disk-remaining-bytes", json_object_get(disk, "remaining"));
        if (k >= 0)
                k = append_u64(r, "disk-total-bytes", json_object_get(disk, "total"));
        if (k >= 0 && json_is_string(json_object_get(q, "error-desc"))) {
                char safe[512];
                const char *e = json_string_value(json_object_get(q, "error-desc"));
                text_sanitize(safe, sizeof safe, e, strlen(e), 0);
                k = sd_bus_message_append(r, "{sv}", "error", "s", safe);
        }
        if (k < 0)
                return k;
        k = sd_bus_message_close_container(r);
        if (k < 0)
                return k;
        return sd_bus_send(NULL, r, NULL);
}

typedef struct StatusCall {
        Migration *m;
        sd_bus_message *msg;
} StatusCall;

static void on_status_query(QmpClient *c, int error, json_t *result, const char *err_class, const char *err_desc,
                            void *userdata) {
        StatusCall *s = userdata;

        if (error < 0)
                (void) status_reply(s->m, s->msg, s->m->last);
        else {
                if (s->m->dir != MIGRATION_NONE)
                        keep_last(s->m, result);
                (void) status_reply(s->m, s->msg, result);
        }
        sd_bus_message_unref(s->msg);
        free(s);
}

int migration_status(Migration *m, sd_bus_message *msg) {
        Vm *vm = m->vm;
        StatusCall *s;
        int r;

        /* A QEMU that runs answers for itself; once it is gone, the last word it said. */
        if (!vm_is_active(vm) || !vm->qmp || !qmp_client_is_ready(vm->qmp) || (m->dir == MIGRATION_NONE && m->last))
                return status_reply(m, msg, m->last);
        s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        s->m = m;
        s->msg = sd_bus_message_ref(msg);
        r = qmp_send(vm->qmp, "query-migrate", NULL, 0, on_status_query, s, NULL);
        if (r < 0) {
                sd_bus_message_unref(s->msg);
                free(s);
                return status_reply(m, msg, m->last);
        }
        return 1;
}

/* ---- the stream ---- */

int migration_check_fd(int fd, bool out, sd_bus_error *error) {
        struct statx st;
        int flags, acc;

        flags = fcntl(fd, F_GETFL);
        if (flags < 0)
                return -errno;
        if (flags & O_PATH)
                return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS, "An O_PATH descriptor cannot carry a migration.");
        acc = flags & O_ACCMODE;
        /* The type only, from what the kernel has: a stat that asked a FUSE server would block. */
        if (statx(fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, STATX_TYPE, &st) < 0)
                return -errno;
        if (S_ISFIFO(st.stx_mode)) {
                if (out ? acc == O_RDONLY : acc == O_WRONLY)
                        return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS,
                                                out ? "The pipe must be open for writing." : "The pipe must be open for reading.");
                return 0;
        }
        if (S_ISSOCK(st.stx_mode)) {
                int domain = -1, type = -1;
                socklen_t l1 = sizeof domain, l2 = sizeof type;

                if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &l1) < 0 ||
                    getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l2) < 0)
                        return -errno;
                if (type == SOCK_STREAM && IN_SET(domain, AF_UNIX, AF_INET, AF_INET6))
                        return 0;
                return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS,
                                        "A socket must be a stream socket (AF_UNIX or TCP), not datagram or seqpacket.");
        }
        return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS,
                                "The stream must be a stream socket (AF_UNIX or TCP), a pipe or a FIFO.");
}
