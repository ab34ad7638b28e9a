/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Live migration over passed streams: see migration.h. Everything is driven by QMP replies,
 * QMP events and timers on the loop; nothing here blocks. */

#include <fcntl.h>
#include <stdarg.h>
#include <sys/epoll.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bus-errors.h"
#include "bus-fds.h"
#include "log.h"
#include "migration.h"
#include "vm-state.h"
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

/* The target's bridge between the caller's disk stream and QEMU's NBD server: bytes are
 * copied both ways on the loop, through a bounded buffer per direction. */
typedef struct Splice {
        Migration *m;
        int fd[2];                /* 0: the caller's stream, 1: our connection to QEMU's NBD server */
        sd_event_source *src[2];
        struct {
                uint8_t buf[MIGRATION_SPLICE_BUF];
                size_t start, len;
                bool eof;         /* fd[i] said EOF: nothing more to read */
                bool shut;        /* and the other end was told (SHUT_WR) */
        } dir[2];                 /* dir[i]: read from fd[i], written to fd[1 - i] */
} Splice;

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
        uint64_t last_progress_usec; /* the last progress, or the start (0: not started) */
        uint64_t cancel_sent_usec;   /* source: when migrate_cancel was sent (0: not) */
        bool receiving;         /* target: QEMU reads the RAM stream (its status went past setup) */
        bool finishing;         /* the end is being handled */
        bool cancelled;         /* a caller's MigrateCancel, or the stall bound */
        char *error;            /* why it failed */
        json_t *last;           /* the last query-migrate answer */
        MigrationDirection last_dir;

        /* The local disk (disk-fd). */
        int disk_fd;            /* until QEMU (source) or the splice (target) has it */
        bool disk;              /* this migration carries the disk */
        unsigned disk_stage;    /* source: 1 mirroring, 2 mirror ready */
        uint64_t disk_offset, disk_len; /* the mirror's progress */
        char *disk_device;      /* the drive's id, also the NBD export's name */
        bool nbd_node;          /* source: our NBD client node exists (cleaned up on failure) */
        bool mirror_job;        /* source: our mirror job exists */
        Splice *splice;         /* target */
};

static Splice *splice_free(Splice *sp);

static void migration_reset(Migration *m) {
        m->dir = MIGRATION_NONE;
        if (m->disk_fd >= 0)
                bus_fds_close_async(m->disk_fd);
        m->disk_fd = -EBADF;
        m->disk = false;
        m->disk_stage = 0;
        m->disk_device = mfree(m->disk_device);
        m->splice = splice_free(m->splice);
        m->reply = sd_bus_message_unref(m->reply);
        if (m->fd >= 0)
                bus_fds_close_async(m->fd);
        m->fd = -EBADF;
        m->poll_timer = sd_event_source_disable_unref(m->poll_timer);
        m->settle_timer = sd_event_source_disable_unref(m->settle_timer);
        m->settle_tries = 0;
        m->last_progress_usec = m->cancel_sent_usec = 0;
        m->receiving = false;
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

/* ---- the disk ---- */

/* The VM's one writable drive (disk-fd carries one NBD connection, so one drive): its index,
 * or -EOPNOTSUPP when there are none or several. */
static int writable_drive(Vm *vm) {
        int found = -EOPNOTSUPP;

        for (size_t i = 0; i < vm->config->n_drives; i++) {
                if (vm->config->drives[i].readonly)
                        continue;
                if (found >= 0)
                        return -EOPNOTSUPP;
                found = (int) i;
        }
        return found;
}

/* Takes disk_fd (may be -EBADF), also on failure. */
static int disk_prepare(Migration *m, int disk_fd) {
        _cleanup_close_ int fd = disk_fd;
        int i = writable_drive(m->vm);

        if (i < 0)
                return i;
        if (asprintf(&m->disk_device, "drive%d", i) < 0)
                return -ENOMEM;
        m->disk = true;
        m->disk_fd = TAKE_FD(fd);
        return 0;
}

static void splice_update(Splice *sp) {
        for (unsigned i = 0; i < 2; i++) {
                uint32_t ev = 0;

                if (!sp->src[i])
                        continue;
                if (!sp->dir[i].eof && sp->dir[i].start + sp->dir[i].len < MIGRATION_SPLICE_BUF)
                        ev |= EPOLLIN;
                if (sp->dir[1 - i].len > 0)
                        ev |= EPOLLOUT;
                (void) sd_event_source_set_io_events(sp->src[i], ev);
                (void) sd_event_source_set_enabled(sp->src[i], ev ? SD_EVENT_ON : SD_EVENT_OFF);
        }
}

/* Moves what fd i has to give and what it takes. 0, or -errno when the bridge failed. */
static int splice_step(Splice *sp, unsigned i, uint32_t revents) {
        typeof(sp->dir[0]) *in = &sp->dir[i], *out = &sp->dir[1 - i];

        if ((revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) && !in->eof) {
                if (in->len == 0)
                        in->start = 0;
                size_t room = MIGRATION_SPLICE_BUF - in->start - in->len;
                if (room > 0) {
                        ssize_t k = read(sp->fd[i], in->buf + in->start + in->len, room);
                        if (k > 0) {
                                in->len += (size_t) k;
                                if (sp->m->last_progress_usec > 0)
                                        sp->m->last_progress_usec = now_usec(CLOCK_MONOTONIC);
                        }
                        else if (k == 0)
                                in->eof = true;
                        else if (!IN_SET(errno, EAGAIN, EINTR))
                                return -errno;
                }
        }
        if ((revents & EPOLLOUT) && out->len > 0) {
                ssize_t k = send(sp->fd[i], out->buf + out->start, out->len, MSG_DONTWAIT | MSG_NOSIGNAL);
                if (k > 0) {
                        out->start += (size_t) k;
                        out->len -= (size_t) k;
                        if (out->len == 0)
                                out->start = 0; /* all of it is through: the whole buffer is free again */
                } else if (k < 0 && !IN_SET(errno, EAGAIN, EINTR))
                        return -errno;
        }
        /* The other side ended and all it sent is through: this one is told. */
        if (out->eof && out->len == 0 && !out->shut) {
                (void) shutdown(sp->fd[i], SHUT_WR);
                out->shut = true;
        }
        return 0;
}

static int on_splice_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Splice *sp = userdata;
        unsigned i = fd == sp->fd[0] ? 0 : 1;
        int r;

        r = splice_step(sp, i, revents);
        if (r >= 0)
                r = splice_step(sp, 1 - i, EPOLLOUT);
        if (r < 0 || (sp->dir[0].shut && sp->dir[1].shut)) {
                if (r < 0)
                        log_warning_errno(r, "VM %s: the disk stream failed: %m", sp->m->vm->config->name);
                sp->m->splice = splice_free(sp);
                return 0;
        }
        splice_update(sp);
        return 0;
}

static Splice *splice_free(Splice *sp) {
        if (!sp)
                return NULL;
        for (unsigned i = 0; i < 2; i++) {
                sd_event_source_disable_unref(sp->src[i]);
                if (sp->fd[i] >= 0)
                        bus_fds_close_async(sp->fd[i]);
        }
        free(sp);
        return NULL;
}

/* Bridges the caller's stream (taken) and conn (taken). */
static int splice_new(Migration *m, int caller, int conn, Splice **ret) {
        Splice *sp = calloc(1, sizeof *sp);
        int r;

        if (!sp) {
                safe_close(caller);
                safe_close(conn);
                return -ENOMEM;
        }
        sp->m = m;
        sp->fd[0] = caller;
        sp->fd[1] = conn;
        for (unsigned i = 0; i < 2; i++) {
                int flags = fcntl(sp->fd[i], F_GETFL);
                if (flags < 0 || fcntl(sp->fd[i], F_SETFL, flags | O_NONBLOCK) < 0) {
                        r = -errno;
                        goto fail;
                }
                r = sd_event_add_io(m->vm->event, &sp->src[i], sp->fd[i], EPOLLIN, on_splice_io, sp);
                if (r < 0)
                        goto fail;
        }
        splice_update(sp);
        *ret = sp;
        return 0;
fail:
        splice_free(sp);
        return r;
}

/* ---- source ---- */

static void out_failed_settled(Migration *m, const char *status);
static void out_setup_failed(Migration *m, const char *what, const char *desc);

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
        /* The mirror to the target goes; its NBD node goes once the job has ended. */
        if (vm->qmp && m->mirror_job) {
                _cleanup_(json_decrefp) json_t *args = json_pack("{s:s, s:b}", "device", MIGRATION_MIRROR_JOB, "force", 1);
                if (args)
                        (void) qmp_send(vm->qmp, "block-job-cancel", args, 0, NULL, NULL, NULL);
        } else if (vm->qmp && m->nbd_node) {
                _cleanup_(json_decrefp) json_t *args = json_pack("{s:s}", "node-name", MIGRATION_NBD_NODE);
                if (args)
                        (void) qmp_send(vm->qmp, "blockdev-del", args, 0, NULL, NULL, NULL);
                m->nbd_node = false;
        }
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

/* Progress is counted here; the bounds are the poll's (on_poll_timer()): a query QEMU does
 * not answer, or answers with an error, is no progress. */
static void on_out_query(QmpClient *c, int error, json_t *result, const char *err_class, const char *err_desc,
                         void *userdata) {
        Migration *m = userdata;
        uint64_t transferred;

        if (m->dir != MIGRATION_OUT || error < 0)
                return;
        keep_last(m, result);
        out_end(m, result);
        if (m->finishing)
                return;
        transferred = (uint64_t) json_integer_value(json_object_get(json_object_get(result, "ram"), "transferred"));
        if (transferred != m->last_transferred) {
                m->last_transferred = transferred;
                m->last_progress_usec = now_usec(CLOCK_MONOTONIC);
        }
}

static void on_jobs_query(QmpClient *c, int error, json_t *result, const char *err_class, const char *err_desc,
                          void *userdata) {
        Migration *m = userdata;
        size_t i;
        json_t *job;

        if (m->dir != MIGRATION_OUT || m->disk_stage != 1 || error < 0 || m->finishing)
                return;
        json_array_foreach(result, i, job) {
                if (!streq_ptr(json_string_value(json_object_get(job, "device")), MIGRATION_MIRROR_JOB))
                        continue;
                m->disk_len = (uint64_t) json_integer_value(json_object_get(job, "len"));
                uint64_t off = (uint64_t) json_integer_value(json_object_get(job, "offset"));
                if (off != m->disk_offset) {
                        m->disk_offset = off;
                        m->last_progress_usec = now_usec(CLOCK_MONOTONIC);
                }
        }
}

static void in_fail(Migration *m, const char *what, const char *desc);

/* No progress for the bound: the source cancels (the disk mirror stage ends its job), the
 * target fails. */
static void migration_stalled(Migration *m, uint64_t now) {
        _cleanup_free_ char *why = NULL;
        unsigned sec = (unsigned) (m->opts.stall_usec / USEC_PER_SEC);

        if (m->dir == MIGRATION_IN) {
                log_warning("VM %s: no migration data arrived for %u s, giving up the incoming migration",
                            m->vm->config->name, sec);
                if (asprintf(&why, "no migration data for %u s", sec) < 0)
                        why = NULL;
                in_fail(m, "migrate-incoming", why ?: "no migration data");
                return;
        }
        if (asprintf(&why, "no progress for %u s", sec) < 0)
                why = NULL;
        if (m->disk_stage == 1) {
                log_warning("VM %s: the disk mirror made no progress for %u s, giving up", m->vm->config->name, sec);
                out_setup_failed(m, "drive-mirror", why ?: "no progress");
                return;
        }
        log_warning("VM %s: the outgoing migration made no progress for %u s, cancelling it", m->vm->config->name, sec);
        set_error(m, why ?: "no progress");
        m->cancelled = true;
        m->cancel_sent_usec = now;
        /* Unsent (QEMU's queue full): the cancel's bound ends the migration all the same. */
        (void) qmp_send(m->vm->qmp, "migrate_cancel", NULL, 0, NULL, NULL, NULL);
}

/* QEMU did not confirm a cancel: the migration is failed without its word. The VM's state
 * is the one it had before; what QEMU last said is logged. */
static void out_give_up(Migration *m) {
        const char *last = json_string_value(json_object_get(m->last, "status"));
        _cleanup_free_ char *why = NULL;

        log_error("VM %s: QEMU did not confirm the migration's cancel within %u s (its last status: %s); "
                  "failing the migration", m->vm->config->name, (unsigned) (MIGRATION_CANCEL_USEC / USEC_PER_SEC),
                  last ?: "none");
        if (asprintf(&why, "%s%sQEMU did not confirm the cancel within %u s", m->error ?: "", m->error ? "; " : "",
                     (unsigned) (MIGRATION_CANCEL_USEC / USEC_PER_SEC)) >= 0) {
                free(m->error);
                m->error = TAKE_PTR(why);
        }
        m->finishing = true;
        m->poll_timer = sd_event_source_disable_unref(m->poll_timer);
        out_failed_settled(m, NULL);
}

static void on_in_query(QmpClient *c, int error, json_t *result, const char *err_class, const char *err_desc,
                        void *userdata);

static int on_poll_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Migration *m = userdata;
        VmMigrationWatchInput in = {
                .now_usec = now_usec(CLOCK_MONOTONIC),
                .last_progress_usec = m->last_progress_usec,
                .cancel_sent_usec = m->cancel_sent_usec,
                .stall_usec = m->opts.stall_usec,
                .cancel_usec = MIGRATION_CANCEL_USEC,
        };

        /* QEMU gone, the end being handled, or (the target) QEMU reading the stream: a
         * source that stops sending then is the source's to bound (its cancel closes the
         * stream, and QEMU here fails). */
        if (m->dir == MIGRATION_NONE || m->finishing || !m->vm->qmp || (m->dir == MIGRATION_IN && m->receiving)) {
                m->poll_timer = sd_event_source_disable_unref(m->poll_timer);
                return 0;
        }
        switch (vm_migration_watch(&in)) {
        case VM_MIGRATION_CANCEL:
                migration_stalled(m, in.now_usec);
                if (m->dir != MIGRATION_OUT || m->finishing) {
                        /* failed, or ending */
                        m->poll_timer = sd_event_source_disable_unref(m->poll_timer);
                        return 0;
                }
                break;
        case VM_MIGRATION_GIVE_UP:
                out_give_up(m);
                return 0;
        default:
                break;
        }
        if (m->dir == MIGRATION_IN)
                (void) qmp_send(m->vm->qmp, "query-migrate", NULL, 0, on_in_query, m, NULL);
        else if (m->disk_stage == 1)
                (void) qmp_send(m->vm->qmp, "query-block-jobs", NULL, 0, on_jobs_query, m, NULL);
        else
                (void) qmp_send(m->vm->qmp, "query-migrate", NULL, 0, on_out_query, m, NULL);
        (void) sd_event_source_set_time_relative(s, MIGRATION_POLL_USEC);
        return 0;
}

/* The watch: every MIGRATION_POLL_USEC from now, the bounds counted from now. */
static void watch_start(Migration *m) {
        m->last_progress_usec = now_usec(CLOCK_MONOTONIC);
        if (!m->poll_timer &&
            sd_event_add_time_relative(m->vm->event, &m->poll_timer, CLOCK_MONOTONIC, MIGRATION_POLL_USEC, 0,
                                       on_poll_timer, m) >= 0)
                (void) sd_event_source_set_enabled(m->poll_timer, SD_EVENT_ON);
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
        m->last_transferred = 0;
        watch_start(m);
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

/* The RAM: capabilities, parameters, getfd, migrate. */
static int out_start_ram(Migration *m) {
        _cleanup_(json_decrefp) json_t *args = capabilities(m->opts.auto_converge, true);

        if (!args)
                return -ENOMEM;
        return qmp_send(m->vm->qmp, "migrate-set-capabilities", args, 0, on_out_caps, m, NULL);
}

static void on_mirror_started(QmpClient *c, int error, json_t *result, const char *err_class, const char *err_desc,
                              void *userdata) {
        Migration *m = userdata;

        if (m->dir != MIGRATION_OUT)
                return;
        if (error < 0)
                return out_setup_failed(m, "blockdev-mirror", err_desc);
        m->mirror_job = true;
        m->disk_stage = 1;
        watch_start(m);
}

static void on_nbd_added(QmpClient *c, int error, json_t *result, const char *err_class, const char *err_desc,
                         void *userdata) {
        Migration *m = userdata;
        _cleanup_(json_decrefp) json_t *args = NULL;

        if (m->dir != MIGRATION_OUT)
                return;
        if (error < 0)
                return out_setup_failed(m, "blockdev-add (NBD to the target)", err_desc);
        m->nbd_node = true;
        /* Active mirroring: once the copy has converged (BLOCK_JOB_READY), every guest write
         * reaches the target before it completes, so the disk is whole there when the RAM
         * switches over. */
        args = json_pack("{s:s, s:s, s:s, s:s, s:s}", "job-id", MIGRATION_MIRROR_JOB, "device", m->disk_device,
                         "target", MIGRATION_NBD_NODE, "sync", "full", "copy-mode", "write-blocking");
        if (!args || qmp_send(c, "blockdev-mirror", args, 0, on_mirror_started, m, NULL) < 0)
                out_setup_failed(m, "blockdev-mirror", "cannot be sent");
}

static void on_disk_getfd(QmpClient *c, int error, json_t *result, const char *err_class, const char *err_desc,
                          void *userdata) {
        Migration *m = userdata;
        _cleanup_(json_decrefp) json_t *args = NULL;

        if (m->dir != MIGRATION_OUT)
                return;
        if (error < 0)
                return out_setup_failed(m, "getfd", err_desc);
        args = json_pack("{s:s, s:s, s:{s:s, s:s}, s:s}", "driver", "nbd", "node-name", MIGRATION_NBD_NODE, "server",
                         "type", "fd", "str", MIGRATION_NBD_FDNAME, "export", m->disk_device);
        if (!args || qmp_send(c, "blockdev-add", args, 0, on_nbd_added, m, NULL) < 0)
                out_setup_failed(m, "blockdev-add", "cannot be sent");
}

int migration_out(Migration *m, sd_bus_message *msg, int fd, int disk_fd, const MigrationOptions *o) {
        _cleanup_close_ int stream = fd, disk = disk_fd;
        Vm *vm = m->vm;
        int r;

        if (m->dir != MIGRATION_NONE)
                return -EBUSY;
        if (!vm_is_running(vm))
                return -ESRCH;
        if (!IN_SET(vm->state, VM_RUNNING, VM_PAUSED))
                return -EBUSY;
        m->opts = *o;
        if (disk >= 0) {
                _cleanup_(json_decrefp) json_t *args = json_pack("{s:s}", "fdname", MIGRATION_NBD_FDNAME);
                r = disk_prepare(m, -EBADF);
                if (r >= 0 && !args)
                        r = -ENOMEM;
                if (r >= 0)
                        r = qmp_send_fd(vm->qmp, "getfd", args, TAKE_FD(disk), 0, on_disk_getfd, m, NULL);
        } else
                r = out_start_ram(m);
        if (r < 0) {
                migration_reset(m);
                return r;
        }
        json_decref(m->last);
        m->last = NULL;
        m->disk_offset = m->disk_len = 0;
        m->dir = MIGRATION_OUT;
        m->reply = sd_bus_message_ref(msg);
        m->fd = TAKE_FD(stream);
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
        if (m->disk_stage == 1) {
                /* The disk is still being mirrored and no RAM migration exists yet for
                 * migrate_cancel to end: end the mirror (the call fails "cancelled"). */
                m->cancelled = true;
                r = sd_bus_reply_method_return(msg, NULL);
                out_setup_failed(m, "drive-mirror", "cancelled");
                return r;
        }
        r = qmp_send(m->vm->qmp, "migrate_cancel", NULL, 0, NULL, NULL, NULL);
        if (r < 0)
                return r;
        m->cancelled = true;
        if (m->cancel_sent_usec == 0)
                m->cancel_sent_usec = now_usec(CLOCK_MONOTONIC); /* QEMU confirms it within a bound */
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

/* The target's status: past none and setup, QEMU reads the stream. */
static void in_status(Migration *m, const char *st) {
        if (m->dir == MIGRATION_IN && st && !IN_SET_STR(st, "none", "setup"))
                m->receiving = true;
}

static void on_in_query(QmpClient *c, int error, json_t *result, const char *err_class, const char *err_desc,
                        void *userdata) {
        Migration *m = userdata;

        if (error < 0)
                return;
        keep_last(m, result);
        in_status(m, json_string_value(json_object_get(result, "status")));
}

static void on_in_started(QmpClient *c, int error, json_t *result, const char *err_class, const char *err_desc,
                          void *userdata) {
        Migration *m = userdata;

        if (m->dir != MIGRATION_IN)
                return;
        if (error < 0)
                return in_fail(m, "migrate-incoming", err_desc);
        /* Until the source's first bytes: the stall bound (disk bytes through the splice count). */
        watch_start(m);
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

static void in_start_ram(Migration *m) {
        _cleanup_(json_decrefp) json_t *args = capabilities(false, false);

        if (!args || qmp_send(m->vm->qmp, "migrate-set-capabilities", args, 0, on_in_caps, m, NULL) < 0)
                in_fail(m, "migrate-set-capabilities", "cannot be sent");
}

/* RUNTIME/NAME/nbd.sock: only the supervisor can reach it (0700 directory). */
static int nbd_socket_path(Vm *vm, struct sockaddr_un *ret) {
        *ret = (struct sockaddr_un) { .sun_family = AF_UNIX };
        int k = snprintf(ret->sun_path, sizeof ret->sun_path, "%s/nbd.sock", vm->runtime_dir);
        return k < 0 || (size_t) k >= sizeof ret->sun_path ? -ENAMETOOLONG : 0;
}

static void on_export_added(QmpClient *c, int error, json_t *result, const char *err_class, const char *err_desc,
                            void *userdata) {
        Migration *m = userdata;
        _cleanup_close_ int conn = -EBADF;
        struct sockaddr_un sa;
        int r;

        if (m->dir != MIGRATION_IN)
                return;
        if (error < 0)
                return in_fail(m, "block-export-add", err_desc);
        /* QEMU listens already: the backlog takes us at once. */
        r = nbd_socket_path(m->vm, &sa);
        if (r >= 0) {
                conn = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
                if (conn < 0 || connect(conn, (struct sockaddr *) &sa, sizeof sa) < 0)
                        r = -errno;
        }
        (void) unlink(sa.sun_path);
        if (r >= 0)
                r = splice_new(m, TAKE_FD(m->disk_fd), TAKE_FD(conn), &m->splice);
        if (r < 0)
                return in_fail(m, "the disk stream", strerror(-r));
        in_start_ram(m);
}

static void on_in_query_block(QmpClient *c, int error, json_t *result, const char *err_class, const char *err_desc,
                              void *userdata) {
        Migration *m = userdata;
        _cleanup_(json_decrefp) json_t *args = NULL;
        const char *node = NULL;
        json_t *dev;
        size_t i;

        if (m->dir != MIGRATION_IN)
                return;
        if (error < 0)
                return in_fail(m, "query-block", err_desc);
        json_array_foreach(result, i, dev)
                if (streq_ptr(json_string_value(json_object_get(dev, "device")), m->disk_device))
                        node = json_string_value(json_object_get(json_object_get(dev, "inserted"), "node-name"));
        if (!node)
                return in_fail(m, "query-block", "the drive has no node");
        args = json_pack("{s:s, s:s, s:s, s:s, s:b}", "type", "nbd", "id", MIGRATION_NBD_NODE, "node-name", node, "name",
                         m->disk_device, "writable", 1);
        if (!args || qmp_send(c, "block-export-add", args, 0, on_export_added, m, NULL) < 0)
                in_fail(m, "block-export-add", "cannot be sent");
}

static void on_nbd_server(QmpClient *c, int error, json_t *result, const char *err_class, const char *err_desc,
                          void *userdata) {
        Migration *m = userdata;

        if (m->dir != MIGRATION_IN)
                return;
        if (error < 0)
                return in_fail(m, "nbd-server-start", err_desc);
        if (qmp_send(c, "query-block", NULL, 0, on_in_query_block, m, NULL) < 0)
                in_fail(m, "query-block", "cannot be sent");
}

static void on_nbd_listen_getfd(QmpClient *c, int error, json_t *result, const char *err_class,
                                const char *err_desc, void *userdata) {
        Migration *m = userdata;
        _cleanup_(json_decrefp) json_t *args = NULL;

        if (m->dir != MIGRATION_IN)
                return;
        if (error < 0)
                return in_fail(m, "getfd", err_desc);
        args = json_pack("{s:{s:s, s:{s:s}}, s:i}", "addr", "type", "fd", "data", "str", MIGRATION_NBD_FDNAME,
                         "max-connections", 1);
        if (!args || qmp_send(c, "nbd-server-start", args, 0, on_nbd_server, m, NULL) < 0)
                in_fail(m, "nbd-server-start", "cannot be sent");
}

/* The target's NBD server, on a listening socket only the supervisor can connect to (QEMU's
 * NBD server listens on the descriptor it is given, so the caller's connected stream cannot
 * be it): the supervisor connects and bridges the caller's stream to that connection. */
static void in_start_disk(Migration *m) {
        _cleanup_(json_decrefp) json_t *args = json_pack("{s:s}", "fdname", MIGRATION_NBD_FDNAME);
        _cleanup_close_ int fd = -EBADF;
        struct sockaddr_un sa;
        int r;

        r = nbd_socket_path(m->vm, &sa);
        if (r >= 0 && !args)
                r = -ENOMEM;
        if (r >= 0) {
                fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (fd < 0)
                        r = -errno;
        }
        if (r >= 0) {
                (void) unlink(sa.sun_path);
                if (bind(fd, (struct sockaddr *) &sa, sizeof sa) < 0 || chmod(sa.sun_path, 0600) < 0 ||
                    listen(fd, 1) < 0)
                        r = -errno;
        }
        if (r >= 0)
                r = qmp_send_fd(m->vm->qmp, "getfd", args, TAKE_FD(fd), 0, on_nbd_listen_getfd, m, NULL);
        if (r < 0)
                in_fail(m, "the NBD listener", strerror(-r));
}

static void on_incoming_ready(Vm *vm, void *userdata) {
        Migration *m = userdata;

        if (m->dir != MIGRATION_IN)
                return;
        if (m->disk)
                in_start_disk(m);
        else
                in_start_ram(m);
}

int migration_in(Migration *m, sd_bus_message *msg, int fd, int disk_fd, const MigrationOptions *o) {
        _cleanup_close_ int stream = fd, disk = disk_fd;
        int r;

        if (m->dir != MIGRATION_NONE || vm_is_active(m->vm) || vm_is_starting(m->vm))
                return -EBUSY;
        if (disk >= 0) {
                r = disk_prepare(m, TAKE_FD(disk));
                if (r < 0) {
                        migration_reset(m);
                        return r;
                }
        }
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

/* The source's mirror job: READY starts the RAM; an error before the end fails the
 * migration; once the job is gone after a failure, its NBD node goes too. */
static void on_mirror_event(Migration *m, const char *name, json_t *data) {
        Vm *vm = m->vm;

        if (IN_SET_STR(name, "BLOCK_JOB_COMPLETED", "BLOCK_JOB_CANCELLED")) {
                m->mirror_job = false;
                if (m->dir == MIGRATION_NONE && m->nbd_node && vm->qmp) {
                        _cleanup_(json_decrefp) json_t *args = json_pack("{s:s}", "node-name", MIGRATION_NBD_NODE);
                        if (args)
                                (void) qmp_send(vm->qmp, "blockdev-del", args, 0, NULL, NULL, NULL);
                        m->nbd_node = false;
                        return;
                }
        }
        if (m->dir != MIGRATION_OUT || m->finishing)
                return;
        if (streq(name, "BLOCK_JOB_READY") && m->disk_stage == 1 && !m->cancelled) {
                m->disk_stage = 2;
                m->disk_len = (uint64_t) json_integer_value(json_object_get(data, "len"));
                m->disk_offset = (uint64_t) json_integer_value(json_object_get(data, "offset"));
                log_info("VM %s: the disk is mirrored to the target (%" PRIu64 " bytes), moving the RAM",
                         vm->config->name, m->disk_len);
                if (out_start_ram(m) < 0)
                        out_setup_failed(m, "migrate-set-capabilities", "cannot be sent");
                return;
        }
        if (IN_SET_STR(name, "BLOCK_JOB_COMPLETED", "BLOCK_JOB_CANCELLED", "BLOCK_JOB_ERROR")) {
                const char *e = json_string_value(json_object_get(data, "error"));
                if (streq(name, "BLOCK_JOB_ERROR"))
                        e = "I/O error on the target";
                out_setup_failed(m, "drive-mirror", e ?: "the job ended");
        }
}

static void on_vm_event(Vm *vm, const char *name, json_t *data, void *userdata) {
        Migration *m = userdata;
        const char *st;

        if (startswith(name, "BLOCK_JOB_") &&
            streq_ptr(json_string_value(json_object_get(data, "device")), MIGRATION_MIRROR_JOB)) {
                on_mirror_event(m, name, data);
                return;
        }
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
        in_status(m, st);
        if (streq(st, "completed")) {
                (void) qmp_send(vm->qmp, "query-migrate", NULL, 0, on_in_query, m, NULL);
                /* The source finished writing the disk before its last RAM pages: the export
                 * goes before the guest runs here. */
                if (m->disk)
                        (void) qmp_send(vm->qmp, "nbd-server-stop", NULL, 0, NULL, NULL, NULL);
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

/* The supervisor exits and frees the VM before the bus object that owns this. */
static void on_vm_freed(Vm *vm, void *userdata) {
        Migration *m = userdata;

        m->vm = NULL;
}

static const VmMigrationHooks hooks = {
        .incoming_ready = on_incoming_ready,
        .event = on_vm_event,
        .ended = on_vm_ended,
        .vm_freed = on_vm_freed,
};

int migration_new(Vm *vm, Migration **ret) {
        Migration *m = calloc(1, sizeof *m);

        if (!m)
                return -ENOMEM;
        m->vm = vm;
        m->fd = -EBADF;
        m->disk_fd = -EBADF;
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
        if (m->vm && m->vm->migration_userdata == m) {
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
        json_t *ram = json_object_get(q, "ram");
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
        if (k >= 0 && m->disk_len > 0 && d == MIGRATION_OUT)
                k = sd_bus_message_append(r, "{sv}{sv}{sv}", "disk-transferred-bytes", "t", m->disk_offset,
                                          "disk-remaining-bytes", "t", m->disk_offset < m->disk_len ? m->disk_len - m->disk_offset : 0,
                                          "disk-total-bytes", "t", m->disk_len);
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
